"""Building the stock sources from a config, on the clients the daemon shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.clock import FakeClock
from syncd.config import load_config
from syncd.integrations import build_clients, build_stock_sources
from syncd.sources.activeants import ActiveAntsStockSource
from syncd.sources.astral import AstralStockSource
from syncd.wiring import ApiClients

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "syncd.example.toml"
CREDENTIALS = {"CREDENTIALS_DIRECTORY": str(EXAMPLE.parent / "credentials.example")}


@pytest.mark.anyio
async def test_each_enabled_stock_source_is_built_on_its_shared_client() -> None:
    config = load_config(EXAMPLE, environ=CREDENTIALS)
    clients = build_clients(config, clock=FakeClock())
    try:
        activeants, astral = build_stock_sources(config, clients, FakeClock())
        assert isinstance(activeants, ActiveAntsStockSource)
        assert isinstance(astral, AstralStockSource)
        assert (activeants.name, activeants.locations) == ("activeants", ("activeants",))
        assert (astral.name, astral.locations) == ("astral", ("astral:*",))
        assert (astral.stale_after, astral.poll_interval) == (600.0, 30.0)
    finally:
        await clients.aclose()


def test_a_source_without_its_api_client_is_a_wiring_error() -> None:
    config = load_config(EXAMPLE, environ=CREDENTIALS)
    with pytest.raises(ValueError, match=r"needs \[apis.activeants\]"):
        build_stock_sources(config, ApiClients(), FakeClock())


def test_only_enabled_stock_sources_are_built(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("secret\n", encoding="utf-8")
    config_path = tmp_path / "syncd.toml"
    config_path.write_text(
        """
[apis.activeants]
base_url = "https://shopapitest.activeants.nl"
username = "shopapi-user"
password_file = "./password"

[sources.activeants]
location = "aa-nl"
stock_field = "freeStock"

[sources.astral]
enabled = false

[[catalog.variants]]
sku = "TEE"
activeants_sku = "AA-TEE"
""",
        encoding="utf-8",
    )
    config = load_config(config_path)
    clients = ApiClients(activeants=build_clients(config, clock=FakeClock()).get("activeants"))
    [source] = build_stock_sources(config, clients, FakeClock())
    assert isinstance(source, ActiveAntsStockSource)
    assert source.locations == ("aa-nl",)
