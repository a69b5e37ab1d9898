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
    ActiveAntsApiSection,
    AnkorstoreApiSection,
    ApiSection,
    ApisSection,
    FabricApiSection,
    FashionTradeApiSection,
    Secret,
)
from syncd.config.command import cli_check_config
from syncd.config.load import load_config, load_config_text, read_daemon_section
from syncd.config.problems import ConfigError, ConfigProblem
from syncd.config.root import Config
from syncd.config.sections import (
    ActiveAntsSourceSection,
    AnkorstoreChannelSection,
    AstralSourceSection,
    ChannelSection,
    DaemonSection,
    FabricChannelSection,
    HandoverSection,
    OrderSourceSection,
    SourceSection,
)

__all__ = [
    "ActiveAntsApiSection",
    "ActiveAntsSourceSection",
    "AnkorstoreApiSection",
    "AnkorstoreChannelSection",
    "ApiSection",
    "ApisSection",
    "AstralSourceSection",
    "ChannelSection",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DaemonSection",
    "FabricApiSection",
    "FabricChannelSection",
    "FashionTradeApiSection",
    "HandoverSection",
    "OrderSourceSection",
    "Secret",
    "SourceSection",
    "cli_check_config",
    "load_config",
    "load_config_text",
    "read_daemon_section",
]
