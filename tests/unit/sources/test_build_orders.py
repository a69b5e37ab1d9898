"""Building the order sources from a config, as `syncd run` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.config import Config, load_config
from syncd.config.sections import HandoverSection, SourcesSection
from syncd.integrations import build_clients, build_order_sources
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import APIS, SandboxWorld
from syncd.sources.build import build_handover
from syncd.sources.handover import Handover
from syncd.wiring import ApiClients

pytestmark = pytest.mark.anyio


def sandbox_config(tmp_path: Path) -> Config:
    """The sandbox's config, pointing at ports nothing listens on (nothing is sent)."""
    world = SandboxWorld.create(catalog=generate_catalog(10, seed=3))
    world.urls = {api: f"http://127.0.0.1:9/{api}" for api in APIS}
    return load_config(world.write_config(tmp_path))


@asynccontextmanager
async def clients_for(config: Config) -> AsyncIterator[ApiClients]:
    clients = build_clients(config, clock=FakeClock())
    try:
        yield clients
    finally:
        await clients.aclose()


async def test_every_enabled_order_feed_is_built_with_its_section(tmp_path: Path) -> None:
    config = sandbox_config(tmp_path)
    async with clients_for(config) as clients:
        sources = build_order_sources(config, clients, FakeClock())
    assert [s.name for s in sources] == ["ankorstore_orders", "fabric_orders", "fashiontrade"]
    assert all(s.locations == ("activeants",) for s in sources)
    section = config.sources.fashiontrade
    assert section is not None
    assert sources[2].poll_interval == section.poll_interval
    assert sources[2].stale_after == section.stale_after


async def test_handover_follows_the_config(tmp_path: Path) -> None:
    config = sandbox_config(tmp_path)
    clock = FakeClock()
    async with clients_for(config) as clients:
        handover = build_handover(config, clients, clock)
        assert isinstance(handover, Handover)
        assert handover.reference("fabric", "1015") == "1015"

        templated = config.model_copy(
            update={
                "handover": HandoverSection.model_validate(
                    {
                        "match": "external_reference",
                        "reference_templates": {"fabric": "FB-{order_ref}"},
                    }
                )
            }
        )
        handover = build_handover(templated, clients, clock)
        assert handover is not None
        assert handover.reference("fabric", "1015") == "FB-1015"

        off = config.model_copy(update={"handover": HandoverSection(match="none")})
        assert build_handover(off, clients, clock) is None

        with capture_logs() as logs:
            assert build_handover(config, ApiClients(), clock) is None
        assert [e["event"] for e in logs] == ["handover.disabled"]


async def test_no_order_feed_enabled_builds_nothing(tmp_path: Path) -> None:
    config = sandbox_config(tmp_path)
    sources = config.sources
    none = config.model_copy(
        update={
            "sources": SourcesSection(activeants=sources.activeants, astral=sources.astral),
        }
    )
    assert build_order_sources(none, ApiClients(), FakeClock()) == []


async def test_a_missing_client_is_a_wiring_error(tmp_path: Path) -> None:
    config = sandbox_config(tmp_path)
    with pytest.raises(ValueError, match=r"needs \[apis\.ankorstore\]"):
        build_order_sources(config, ApiClients(), FakeClock())


async def test_tuning_keys_reach_the_sources_and_the_handover(tmp_path: Path) -> None:
    config = sandbox_config(tmp_path)
    sources = config.sources
    assert sources.ankorstore_orders is not None
    assert sources.fabric_orders is not None
    assert sources.fashiontrade is not None
    tuned = config.model_copy(
        update={
            "sources": sources.model_copy(
                update={
                    "ankorstore_orders": sources.ankorstore_orders.model_copy(
                        update={"page_size": 7}
                    ),
                    "fabric_orders": sources.fabric_orders.model_copy(
                        update={"orders_path": "/v1/brands/{brand_id}/open-orders/"}
                    ),
                    "fashiontrade": sources.fashiontrade.model_copy(
                        update={"lookback": 3600.0, "max_order_requests": 3}
                    ),
                }
            ),
            "handover": config.handover.model_copy(
                update={"match": "external_reference", "batch_size": 9}
            ),
        }
    )
    async with clients_for(tuned) as clients:
        built = {s.name: s for s in build_order_sources(tuned, clients, FakeClock())}
        handover = build_handover(tuned, clients, FakeClock())
    assert vars(built["ankorstore_orders"])["_page_size"] == 7
    assert vars(built["fabric_orders"])["_path"].endswith("/open-orders/")
    assert vars(built["fashiontrade"])["_lookback"] == 3600.0
    assert vars(built["fashiontrade"])["_max_order_requests"] == 3
    assert handover is not None
    assert vars(handover)["_batch_size"] == 9
