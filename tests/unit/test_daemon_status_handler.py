"""What the running daemon answers on its status socket, built from its real state."""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from syncd.http.client import ClientStats
from syncd.ledger.store import Ledger
from syncd.metrics import Metrics
from syncd.model import now_utc
from syncd.scheduler import Scheduler
from syncd.status_handler import (
    ApiCounters,
    DaemonInfo,
    StatusService,
    status_line,
    window_name,
)
from syncd.status_protocol import CURRENT_CALLER, Caller, StatusRequestError
from syncd.wiring import ApiClients
from tests.unit._daemon_support import SKUS, FakeChannel, FakeSource, make_assembly, wait_for

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(
    tmp_path: Path, sources: list[FakeSource], channels: list[FakeChannel]
) -> AsyncIterator[tuple[StatusService, Scheduler, Ledger]]:
    ledger = await Ledger.open(tmp_path / "ledger.db")
    scheduler = Scheduler(
        make_assembly(ledger, sources, channels),
        Metrics(),
        cycle_interval=0.05,
        debounce=0.01,
        min_backoff=0.05,
    )
    service = StatusService(
        scheduler=lambda: scheduler,
        metrics=scheduler.metrics,
        api_counters=ApiCounters(),
        info=DaemonInfo("/etc/syncd/syncd.toml", now_utc(), time.monotonic()),
        cache_ttl=0.0,
    )
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(scheduler.run)
            yield service, scheduler, ledger
            await scheduler.drain(60.0)
    finally:
        await ledger.close()


async def ask(service: StatusService, request: dict[str, Any]) -> Any:
    return await service.handler()(request)


async def ask_as(service: StatusService, caller: Caller, request: dict[str, Any]) -> Any:
    """As the status server asks: with the connection's kernel-reported caller in context."""
    token = CURRENT_CALLER.set(caller)
    try:
        return await service.handler()(request)
    finally:
        CURRENT_CALLER.reset(token)


ME = Caller(uid=os.getuid(), gid=os.getgid(), pid=os.getpid())
MY_NAME = f"{pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"


async def status_once(
    service: StatusService,
    health: str,
    *,
    reasons: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> Any:
    """The first status reply whose health is ``health`` and that gives a reason starting
    with each of ``reasons``; fails after ``timeout`` s."""
    with anyio.fail_after(timeout):
        while True:
            reply = await ask(service, {"cmd": "status"})
            if reply["health"] == health and all(
                any(r.startswith(wanted) for r in reply["reasons"]) for wanted in reasons
            ):
                return reply
            await anyio.sleep(0.02)


async def test_a_healthy_daemon_reports_its_sources_channels_and_counters(
    tmp_path: Path,
) -> None:
    channel = FakeChannel()
    async with running(tmp_path, [FakeSource()], [channel]) as (service, _, _):
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        reply = await ask(service, {"cmd": "status"})
    assert reply["ok"] is True
    assert reply["health"] == "ok"
    assert reply["reasons"] == []
    assert reply["config"] == "/etc/syncd/syncd.toml"
    assert reply["generated_at"] >= reply["started_at"]
    [source] = reply["sources"]
    assert source["name"] == "activeants"
    assert source["stale"] is False
    assert source["last_error"] is None
    assert source["records"] >= 1
    assert source["age_s"] < 5
    [row] = reply["channels"]
    assert row["name"] == "fabric"
    assert row["queue_depth"] == 0
    assert row["last_push"] is not None
    assert row["pushes"] >= 1
    assert row["variants_pushed"] == len(SKUS)
    assert (row["errors"], row["parked"], row["held"], row["rate_limit"]) == (0, [], [], [])
    assert reply["counters"]["variants_pushed"] == len(SKUS)
    assert {"pushes", "errors", "http_429", "cycles"} <= reply["counters"].keys()
    assert status_line(reply) == "ok: 1 sources fresh, fabric 0 queued"


async def test_a_channel_blocked_by_a_stale_source_makes_the_daemon_failing(
    tmp_path: Path,
) -> None:
    source = FakeSource(stale_after=0.3)
    channel = FakeChannel()
    async with running(tmp_path, [source], [channel]) as (service, _, _):
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        source.always_fail = True
        # Stale once no poll has succeeded for 0.3 s; on a loaded machine that can come
        # before the first failed poll is recorded: wait for the failure too.
        reply = await status_once(
            service, "failing", reasons=("channel fabric blocked", "source activeants failing")
        )
    assert reply["reasons"][0].startswith("channel fabric blocked: stale source activeants")
    assert any(r.startswith("source activeants failing") for r in reply["reasons"])
    assert reply["sources"][0]["stale"] is True
    assert reply["sources"][0]["last_error"] == "RuntimeError: activeants answered 503"
    assert status_line(reply).startswith("failing: 0/1 sources fresh, fabric 0 queued; channel")


async def test_an_order_listing_failing_part_way_degrades_health_and_increases_wait(
    tmp_path: Path,
) -> None:
    """fabric_orders returns its pages with an error: a failing source, named, before it is stale."""
    orders = FakeSource("fabric_orders", location="fabric_orders", poll_interval=0.05)
    stock, channel = FakeSource(), FakeChannel()
    async with running(tmp_path, [stock, orders], [channel]) as (service, scheduler, _):
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        reply = await ask(service, {"cmd": "status"})
        assert (reply["health"], reply["channels"][0]["waiting"]) == ("ok", [])
        orders.partial_error = "HttpError: 502 on page 2"
        stock.levels = {"S01": 12, "S02": 12}  # increases: they wait for the order feed
        await wait_for(lambda: bool(scheduler.channels["fabric"].last_cycle.waiting_reasons))  # type: ignore[union-attr]
        reply = await ask(service, {"cmd": "status"})
        orders.partial_error = None
        await wait_for(lambda: channel.shown["S01"] == channel.shown["S02"] == 12)
        recovered = await ask(service, {"cmd": "status"})
    assert reply["health"] == "degraded"
    assert any(
        r.startswith("source fabric_orders failing") and "HttpError: 502 on page 2" in r
        for r in reply["reasons"]
    ), reply["reasons"]
    assert {s["name"]: s["stale"] for s in reply["sources"]}["fabric_orders"] is False
    [waiting] = reply["channels"][0]["waiting"]
    assert "wait for the channel's own orders" in waiting
    assert "fabric_orders (failing: HttpError: 502 on page 2)" in waiting
    assert recovered["channels"][0]["waiting"] == []


async def test_a_ledger_file_removed_under_the_daemon_makes_it_failing(tmp_path: Path) -> None:
    channel = FakeChannel()
    async with running(tmp_path, [FakeSource()], [channel]) as (service, _, ledger):
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        assert (await ask(service, {"cmd": "status"}))["health"] == "ok"
        ledger.path.rename(tmp_path / "moved.db")
        reply = await ask(service, {"cmd": "status"})
    assert reply["health"] == "failing"
    assert reply["reasons"][0] == (
        f"ledger unhealthy: the ledger file {tmp_path / 'ledger.db'} was removed while syncd"
        " was running"
    )


async def test_parked_variants_and_held_cycles_are_listed(tmp_path: Path) -> None:
    channel = FakeChannel()
    channel.refuse = {"S05": "422: unknown variant"}
    async with running(tmp_path, [FakeSource()], [channel]) as (service, _, ledger):
        await wait_for(lambda: len(channel.shown) == len(SKUS) - 1)
        hold = await ledger.hold_cycle(
            "fabric",
            "would zero 30 of 30 variants",
            {"zeroes": 30, "changes": 30, "published": 30},
            now_utc(),
        )
        reply = await ask(service, {"cmd": "status"})
    [row] = reply["channels"]
    assert row["parked"] == [{"sku": "S05", "reason": "422: unknown variant"}]
    assert row["held"] == [
        {
            "hold_id": hold,
            "reason": "would zero 30 of 30 variants",
            "created_at": row["held"][0]["created_at"],
            "zeroes": 30,
            "changes": 30,
            "variants": 30,
        }
    ]
    assert reply["health"] == "degraded"
    assert "channel fabric: 1 variant(s) parked (see `syncd status`)" in reply["reasons"]


async def test_confirm_releases_a_held_cycle_once(tmp_path: Path) -> None:
    async with running(tmp_path, [FakeSource()], [FakeChannel()]) as (service, _, ledger):
        hold = await ledger.hold_cycle("fabric", "would change 30 of 30", {}, now_utc())
        reply = await ask_as(service, ME, {"cmd": "confirm", "channel": "fabric", "hold_id": hold})
        assert reply == {"ok": True, "channel": "fabric", "confirmed": [hold]}
        # Who confirmed is kept with the hold: the kernel's caller, by name and uid.
        [done] = await ledger.held_cycles("fabric", include_confirmed=True)
        assert done.payload["confirmed_by"] == MY_NAME
        with pytest.raises(StatusRequestError, match=f"hold {hold} is not a held cycle"):
            await ask(service, {"cmd": "confirm", "channel": "fabric", "hold_id": hold})
        with pytest.raises(StatusRequestError, match="unknown channel 'shopify'"):
            await ask(service, {"cmd": "confirm", "channel": "shopify", "hold_id": "all"})
        nothing = await ask(service, {"cmd": "confirm", "channel": "fabric", "hold_id": "all"})
        assert nothing["confirmed"] == []
        assert await ledger.held_cycles("fabric") == []


async def test_unpark_pushes_the_refused_value_once_the_cause_is_fixed(tmp_path: Path) -> None:
    channel = FakeChannel()
    channel.refuse["S02"] = "422 unknown variant"
    source = FakeSource(levels=dict.fromkeys(SKUS, 12))
    async with running(tmp_path, [source], [channel]) as (service, _, ledger):
        await wait_for(lambda: len(channel.shown) == len(SKUS) - 1)
        status = await ask(service, {"cmd": "status"})
        [fabric] = status["channels"]
        assert [p["sku"] for p in fabric["parked"]] == ["S02"]
        channel.refuse.clear()  # the operator mapped the variant
        reply = await ask_as(
            service,
            ME,
            {
                "cmd": "unpark",
                "channel": "fabric",
                "skus": ["S02", "S03"],
                "note": "unparked by mallory: mapped",
            },
        )
        assert reply == {
            "ok": True,
            "channel": "fabric",
            "unparked": ["S02"],
            "not_parked": ["S03"],
        }
        await wait_for(lambda: channel.shown.get("S02") == 12)
        with pytest.raises(StatusRequestError, match="unknown channel 'shopify'"):
            await ask(service, {"cmd": "unpark", "channel": "shopify", "skus": "all"})
        with pytest.raises(StatusRequestError, match="non-empty list"):
            await ask(service, {"cmd": "unpark", "channel": "fabric", "skus": []})
        nothing = await ask(service, {"cmd": "unpark", "channel": "fabric", "skus": "all"})
        assert nothing["unparked"] == []
        log = await ledger.push_log("fabric", "S02")
        assert [e.status for e in log][:3] == ["acknowledged", "sent", "unparked"]
        # The push log names the real caller; the name the client claimed is only a note.
        assert log[2].reply == f"unparked by {MY_NAME}; note: unparked by mallory: mapped"
        status = await ask(service, {"cmd": "status"})
        assert status["channels"][0]["parked"] == []


async def test_explain_answers_from_the_open_ledger(tmp_path: Path) -> None:
    channel = FakeChannel()
    source = FakeSource(levels=dict.fromkeys(SKUS, 12))
    async with running(tmp_path, [source], [channel]) as (service, _, _):
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        reply = await ask(service, {"cmd": "explain", "sku": "S03"})
        with pytest.raises(StatusRequestError, match="unknown SKU 'NOPE'"):
            await ask(service, {"cmd": "explain", "sku": "NOPE"})
        with pytest.raises(StatusRequestError, match="unknown channel 'ankorstore'"):
            await ask(service, {"cmd": "explain", "sku": "S03", "channel": "ankorstore"})
    assert reply["from"] == "daemon"
    [entry] = reply["channels"]
    assert (entry["channel"], entry["published"], entry["acknowledged"]) == ("fabric", 12, 12)
    assert entry["inputs"] == {"activeants/available/": 12}
    assert entry["last_push"]["status"] == "acknowledged"
    assert {p["source"] for p in reply["postings"]} == {"activeants"}
    assert reply["sources"][0]["feed"] == "activeants"


async def test_metrics_carry_labelled_series_and_live_gauges(tmp_path: Path) -> None:
    channel = FakeChannel()
    async with running(tmp_path, [FakeSource()], [channel]) as (service, _, _):
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        reply = await ask(service, {"cmd": "metrics"})
    assert reply["ok"] is True
    assert reply["counters"]['variants_pushed{channel="fabric"}'] == len(SKUS)
    assert reply["counters"]['polls{source="activeants"}'] >= 1
    assert reply["gauges"]['queue_depth{channel="fabric"}'] == 0.0
    assert reply["gauges"]['source_stale{source="activeants"}'] == 0.0
    assert reply["gauges"]["cycle_duration_s"] > 0


async def test_a_burst_of_requests_shares_one_build(tmp_path: Path) -> None:
    async with running(tmp_path, [FakeSource()], [FakeChannel()]) as (service, _, _):
        service._cache_ttl = 60.0
        replies: list[Any] = []

        async def one() -> None:
            replies.append(await service.status())

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        assert len({reply["generated_at"] for reply in replies}) == 1
        service.invalidate()
        assert (await service.status())["generated_at"] != replies[0]["generated_at"]


def test_status_line_names_the_first_reason_and_counts_the_rest() -> None:
    reply = {
        "health": "degraded",
        "reasons": ["source astral stale: no successful read for 930 s", "x", "y"],
        "sources": [{"stale": False}, {"stale": True}, {"enabled": False, "stale": False}],
        "channels": [
            {"name": "ankorstore", "queue_depth": 0},
            {"name": "fabric", "queue_depth": 2},
        ],
    }
    assert status_line(reply) == (
        "degraded: 1/2 sources fresh, ankorstore 0 queued, fabric 2 queued; "
        "source astral stale: no successful read for 930 s (+2 more)"
    )


def test_status_line_shows_the_progress_of_a_channel_working_through_its_queue() -> None:
    progress = {"done": 18, "total": 30, "rate_per_min": 20.0, "eta_s": 36.0}
    reply = {
        "health": "ok",
        "sources": [{"stale": False}],
        "channels": [
            {"name": "ankorstore", "queue_depth": 0, "progress": None},
            {"name": "fabric", "queue_depth": 12, "progress": progress},
        ],
    }
    assert status_line(reply) == (
        "ok: 1 sources fresh, ankorstore 0 queued, fabric 12 queued (18/30 (60%), 20/min, ETA 36s)"
    )


def test_rate_windows_are_named_by_their_length() -> None:
    # Limiters pad windows against clock skew: 62 s is still "the minute limit".
    assert [window_name(s) for s in (60, 62, 3_602, 86_402, 30, 600)] == [
        "minute",
        "minute",
        "hour",
        "day",
        "30s",
        "600s",
    ]


@dataclass
class _FakeClient:
    name: str
    stats: ClientStats = field(default_factory=ClientStats)


@dataclass
class _FakeClients:
    """Just enough of ApiClients for the counters."""

    clients: list[_FakeClient]

    def all(self) -> list[_FakeClient]:
        return self.clients


def test_recent_429s_are_counted_across_a_reload_and_forgotten_after_the_window() -> None:
    clock = [1000.0]
    counters = ApiCounters(window_s=60.0, monotonic=lambda: clock[0])
    old_client = _FakeClient("ankorstore", ClientStats(rate_limited=2))
    old = cast(ApiClients, _FakeClients([old_client]))
    counters.observe(old)
    assert counters.recent_429() == {"ankorstore": 2}
    counters.retire(old)  # SIGHUP: new clients, counting from zero
    new_client = _FakeClient("ankorstore")
    new = cast(ApiClients, _FakeClients([new_client]))
    new_client.stats.rate_limited = 1
    counters.observe(new)
    assert counters.totals(new)["ankorstore"]["rate_limited"] == 3
    assert counters.recent_429() == {"ankorstore": 3}
    clock[0] += 61
    assert counters.recent_429() == {}
