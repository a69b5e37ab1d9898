"""Skipped items are logged with source, item and reason, without flooding the journal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.sources.problems import SkipLog, Skipped


def skipped_events(logs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == "source.item_skipped"]


def test_each_skipped_item_is_logged_with_source_item_and_reason() -> None:
    log = SkipLog("activeants", FakeClock())
    with capture_logs() as logs:
        log.begin_poll()
        log.skip(Skipped("AA-1", "negative availableStock (-2)"))
        summary = log.finish_poll()
    [event] = skipped_events(logs)
    assert event["source"] == "activeants"
    assert event["item"] == "AA-1"
    assert event["reason"] == "negative availableStock (-2)"
    assert event["log_level"] == "warning"
    assert summary.count == 1
    assert summary.problems == ["1 item skipped (negative availableStock (-2)): AA-1"]
    assert summary.extra()["skipped_last_poll"] == "1"


def test_an_item_repeated_within_a_poll_counts_once() -> None:
    log = SkipLog("astral", FakeClock())
    with capture_logs() as logs:
        log.begin_poll()
        for _ in range(3):  # the same unknown variant on three pages
            log.skip(Skipped("v-1", "unknown productVariantId"))
        summary = log.finish_poll()
    assert summary.count == 1
    assert len(skipped_events(logs)) == 1


def test_repeated_warnings_are_rate_limited_across_polls_and_summed_up() -> None:
    clock = FakeClock()
    log = SkipLog("astral", clock, quiet_period=3600)
    with capture_logs() as logs:
        for _ in range(5):
            log.begin_poll()
            log.skip(Skipped("v-1", "unknown productVariantId"))
            log.skip(Skipped("v-2", "unknown productVariantId"))
            summary = log.finish_poll()
            clock.advance(60)
    assert len(skipped_events(logs)) == 2  # once each, not once per poll
    quiet = [e for e in logs if e["event"] == "source.items_skipped"]
    assert len(quiet) == 4
    assert quiet[-1]["not_logged_again"] == 2
    assert quiet[-1]["reasons"] == {"unknown productVariantId": 2}
    # Every poll still reports what it skipped.
    assert summary.count == 2
    assert summary.problems == ["2 items skipped (unknown productVariantId): v-1, v-2"]


def test_a_warning_is_logged_again_after_the_quiet_period() -> None:
    clock = FakeClock()
    log = SkipLog("astral", clock, quiet_period=100)
    with capture_logs() as logs:
        for _ in range(2):
            log.begin_poll()
            log.skip(Skipped("v-1", "unknown productVariantId"))
            log.finish_poll()
            clock.advance(101)
    assert len(skipped_events(logs)) == 2


def test_problem_lines_quote_a_few_items_and_count_the_rest() -> None:
    log = SkipLog("activeants", FakeClock())
    log.begin_poll()
    for index in range(8):
        log.skip(Skipped(f"AA-{index}", "unknown SKU"))
    summary = log.finish_poll()
    assert summary.problems == [
        "8 items skipped (unknown SKU): AA-0, AA-1, AA-2, AA-3, AA-4 and 3 more"
    ]
