"""The health verdict: failing when syncd cannot do its job, degraded when it needs attention."""

from __future__ import annotations

from syncd.status.health import ChannelFacts, HealthFacts, SourceFacts, assess_health


def fresh(name: str) -> SourceFacts:
    return SourceFacts(name=name, stale=False, age_s=3.0, stale_after=600.0)


def test_everything_fresh_and_quiet_is_ok() -> None:
    facts = HealthFacts(
        sources=[fresh("activeants"), fresh("astral")],
        channels=[ChannelFacts("ankorstore"), ChannelFacts("fabric")],
    )
    assert assess_health(facts) == ("ok", [])


def test_a_channel_blocked_by_a_stale_source_is_failing() -> None:
    stale = SourceFacts(name="astral", stale=True, age_s=930.0, stale_after=600.0)
    facts = HealthFacts(
        sources=[fresh("activeants"), stale],
        channels=[ChannelFacts("ankorstore", stale_sources=["astral"]), ChannelFacts("fabric")],
    )
    health, reasons = assess_health(facts)
    assert health == "failing"
    assert reasons == [
        "channel ankorstore blocked: stale source astral (no successful read for 930 s)"
    ]


def test_a_stale_source_that_blocks_nothing_only_degrades() -> None:
    stale = SourceFacts(name="astral", stale=True, age_s=None, stale_after=600.0)
    facts = HealthFacts(
        sources=[stale],
        channels=[ChannelFacts("ankorstore", stale_sources=["astral"], block_on_stale=False)],
    )
    assert assess_health(facts) == ("degraded", ["source astral stale: never read successfully"])


def test_a_source_not_read_since_start_says_so_rather_than_quote_an_untrusted_age() -> None:
    stale = SourceFacts(
        name="astral", stale=True, age_s=40.0, stale_after=600.0, read_since_start=False
    )
    facts = HealthFacts(sources=[stale], channels=[ChannelFacts("ankorstore", ["astral"])])
    assert assess_health(facts) == (
        "failing",
        [
            "channel ankorstore blocked: stale source astral (no successful read since syncd"
            " started (the last one 40 s ago))"
        ],
    )


def test_sources_still_on_their_first_read_do_not_fail_a_fresh_start() -> None:
    starting = SourceFacts(name="astral", stale=True, age_s=None, stale_after=600.0, starting=True)
    facts = HealthFacts(
        sources=[starting], channels=[ChannelFacts("ankorstore", stale_sources=["astral"])]
    )
    assert assess_health(facts) == (
        "degraded",
        ["source astral has not finished its first read yet"],
    )


def test_an_unhealthy_ledger_is_failing() -> None:
    health, reasons = assess_health(HealthFacts(ledger_error="OperationalError: disk I/O error"))
    assert health == "failing"
    assert reasons == ["ledger unhealthy: OperationalError: disk I/O error"]


def test_every_kind_of_trouble_is_named_once() -> None:
    failing_source = SourceFacts(
        name="activeants",
        stale=False,
        age_s=20.0,
        stale_after=900.0,
        consecutive_errors=3,
        last_error="TransportError: connection refused",
        retry_in_s=8.0,
    )
    channel = ChannelFacts(
        "ankorstore", held=1, parked=2, failed_last_round=4, drift=5, readback_error=None
    )
    facts = HealthFacts(
        sources=[failing_source],
        channels=[channel],
        engine_error="ValueError: bad catalog",
        recent_429={"ankorstore": 3, "fabric": 0},
        reload_error="syncd.toml:4: daemon.cycle_interval: must be > 0",
    )
    health, reasons = assess_health(facts)
    assert health == "degraded"
    assert reasons == [
        "source activeants failing (3 attempt(s)): TransportError: connection refused; "
        "retrying in 8 s",
        "recompute failing: ValueError: bad catalog",
        "channel ankorstore: 1 held cycle(s) wait for `syncd confirm ankorstore ID`",
        "channel ankorstore: 2 variant(s) parked (see `syncd status`)",
        "channel ankorstore: 4 update(s) failed in the last round (they are retried)",
        "channel ankorstore: 5 variant(s) show a different number than syncd pushed",
        "ankorstore answered 429 (rate limited) 3 time(s) in the last 15 min",
        "config reload rejected, still running the previous config: "
        "syncd.toml:4: daemon.cycle_interval: must be > 0",
    ]


def test_failing_reasons_come_before_degraded_ones() -> None:
    facts = HealthFacts(
        sources=[SourceFacts("astral", stale=True, age_s=700.0, stale_after=600.0)],
        channels=[ChannelFacts("ankorstore", stale_sources=["astral"], parked=1)],
    )
    health, reasons = assess_health(facts)
    assert health == "failing"
    assert reasons[0].startswith("channel ankorstore blocked")
    assert reasons[1] == "channel ankorstore: 1 variant(s) parked (see `syncd status`)"


def test_a_block_by_a_failing_source_names_the_error_that_stops_it() -> None:
    refused = "AuthError: activeants POST /token: login refused (400 invalid_grant): check it"
    failing = SourceFacts(
        name="activeants",
        stale=True,
        age_s=None,
        stale_after=600.0,
        consecutive_errors=2,
        last_error=refused,
    )
    facts = HealthFacts(
        sources=[failing], channels=[ChannelFacts("fabric", stale_sources=["activeants"])]
    )

    health, reasons = assess_health(facts)

    assert health == "failing"
    assert reasons[0] == (
        f"channel fabric blocked: stale source activeants (never read successfully: {refused})"
    )
