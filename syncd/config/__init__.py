"""syncd's configuration: one TOML file (plus an optional CSV catalog).

Public API::

    load_config(path, *, environ=None) -> Config      # raises ConfigError
    Config.catalog_model() -> syncd.model.Catalog
    Config.channel_rules() -> list[syncd.model.ChannelRule]
    config.apis.ankorstore.secret("client_secret") -> Secret   # resolved at load time
    cli_check_config(args) -> int                     # `syncd check-config --config PATH`

``config/syncd.example.toml`` documents every key.
"""

from __future__ import annotations

from syncd.config.apis import (
    ActiveAntsApi,
    AnkorstoreApi,
    ApiSection,
    ApisSection,
    FabricApi,
    FashionTradeApi,
    Secret,
)
from syncd.config.command import cli_check_config
from syncd.config.load import load_config, load_config_text, read_daemon_section
from syncd.config.problems import ConfigError, ConfigProblem
from syncd.config.root import Config
from syncd.config.sections import (
    ActiveAntsSource,
    AnkorstoreChannel,
    AstralSource,
    ChannelSection,
    DaemonSection,
    FabricChannel,
    HandoverSection,
    OrderSource,
    SourceSection,
)

__all__ = [
    "ActiveAntsApi",
    "ActiveAntsSource",
    "AnkorstoreApi",
    "AnkorstoreChannel",
    "ApiSection",
    "ApisSection",
    "AstralSource",
    "ChannelSection",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DaemonSection",
    "FabricApi",
    "FabricChannel",
    "FashionTradeApi",
    "HandoverSection",
    "OrderSource",
    "Secret",
    "SourceSection",
    "cli_check_config",
    "load_config",
    "load_config_text",
    "read_daemon_section",
]
