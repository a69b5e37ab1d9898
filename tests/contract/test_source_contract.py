"""The source contract: what every source adapter promises, on a fake and on the sandbox.

One suite, parametrised over every source adapter (Active Ants stock, ASTRAL,
Ankorstore orders, fabric orders, FashionTrade orders) and over two backends:
an in-memory fake of the documented API behind ``httpx.MockTransport``, and
the loopback sandbox simulator. Observations are read from the real SQLite
ledger the source records into: balances for stock sources, open
reservation lines for order feeds.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from syncd.http.errors import HttpError
from syncd.http.retry import RetryPolicy
from syncd.sources.base import PollResult
from syncd.sources.freshness import find_feed
from tests.contract._rig import BACKENDS
from tests.contract._sources import SOURCES, SourceCase, SourceRig, source_rig
from tests.contract._switchboard import Switchboards

pytestmark = pytest.mark.anyio

CASES = [
    pytest.param(
        case,
        kind,
        id=f"{case.feed}-{kind}",
        marks=[pytest.mark.integration] if kind == "sandbox" else [],
    )
    for case in SOURCES
    for kind in BACKENDS
]

POLICY = RetryPolicy()
"""The retry policy every client is built with (none is configured)."""


async def populated(rig: SourceRig) -> None:
    """The remote holds more than one page of items, and the source has read them all."""
    rig.remote.populate()
    await rig.poll_to_end()
    assert await rig.observed() == rig.remote.truth()


async def poll_failing(rig: SourceRig) -> PollResult | None:
    """One poll that is expected to fail: a stock source raises, an order feed reports."""
    try:
        result = await rig.poll()
    except HttpError:
        return None
    assert result.error is not None
    return result


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_full_read_returns_typed_observations(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        rig.remote.populate()
        truth = rig.remote.truth()
        assert truth, "the remote must hold something to read"
        results = await rig.poll_to_end()
        assert [r.feed for r in results] == [case.feed] * len(results)
        assert sum(r.recorded for r in results) >= 1
        assert [(r.skipped, r.problems, r.error) for r in results] == [(0, [], None)] * len(results)
        observed = await rig.observed()
        assert observed == truth
        assert all(type(q) is int and q > 0 for q in observed.values())
        state = find_feed(await rig.ledger.feed_states(), case.feed)
        assert state is not None
        assert state.last_success is not None


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_read_follows_the_pages_to_the_end(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        rig.remote.populate()
        truth = rig.remote.truth()
        units = {case.unit(key) for key in truth}
        mark = rig.wire.mark()
        await rig.poll_to_end()
        requests = rig.data_requests(mark)
        if case.page_size is None:
            # One document holds every product: no paging is documented for it.
            assert requests == 1
        else:
            assert len(units) > case.page_size, "the remote must hold more than one page"
            assert requests >= math.ceil(len(units) / case.page_size)
        assert await rig.observed() == truth


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_read_after_the_cursor_returns_only_what_changed(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        await populated(rig)
        cursor = await rig.ledger.cursor(case.feed)
        before = await rig.observed()
        last = await rig.ledger.last_txn_id()
        changed = rig.remote.change()
        mark = rig.wire.mark()
        await rig.poll_to_end()
        after = await rig.observed()
        assert after == rig.remote.truth()
        assert after != before
        assert await rig.ledger.changed_skus_since(last, [case.feed]) == changed
        case.check_incremental(rig.wire.since(mark, case.data_path), cursor)


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_malformed_item_is_skipped_and_reported_and_the_rest_recorded(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        rig.remote.populate()
        spoiled: list[tuple[str, str]] = []

        def spoil(document: object) -> object:
            document, unit, name = case.spoil(document, rig.catalog)
            spoiled.append((unit, name))
            return document

        rig.wire.spoil_next(case.spoil_path, spoil)
        results = await rig.poll_to_end()
        assert len(spoiled) == 1
        [(unit, name)] = spoiled
        assert sum(r.skipped for r in results) >= 1
        assert any(name in p for r in results for p in r.problems)
        truth, observed = rig.remote.truth(), await rig.observed()
        rest = {k: q for k, q in truth.items() if case.unit(k) != unit}
        assert rest, "the answer must hold more than the spoiled item"
        assert {k: q for k, q in observed.items() if case.unit(k) != unit} == rest
        # Whatever is kept of the spoiled item is a figure the remote really shows.
        assert all(truth.get(k) == q for k, q in observed.items() if case.unit(k) == unit)


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_401_re_authenticates_once(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        await populated(rig)
        rig.remote.revoke()
        rig.remote.change()
        mark = rig.wire.mark()
        if case.token_path is None:
            # An API key cannot be renewed: the poll fails, and the key is not tried again.
            before = await rig.observed()
            await poll_failing(rig)
            assert [e.status for e in rig.wire.since(mark)] == [401]
            assert await rig.observed() == before
            return
        await rig.poll_to_end()
        assert len(rig.wire.since(mark, case.token_path)) == 1
        assert [e.status for e in rig.wire.since(mark) if e.status == 401] == [401]
        assert await rig.observed() == rig.remote.truth()


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_401_to_a_fresh_token_fails_the_read_after_one_re_authentication(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        await populated(rig)
        before = await rig.observed()
        rig.remote.change()
        rig.remote.arm(401, count=-1)
        mark = rig.wire.mark()
        await poll_failing(rig)
        sent = rig.wire.since(mark, case.data_path)
        assert [e.status for e in sent] == [401] * (1 if case.token_path is None else 2)
        if case.token_path is not None:
            assert len(rig.wire.since(mark, case.token_path)) == 1
        assert await rig.observed() == before


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_429_is_waited_out_as_told_and_retried(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        await populated(rig)
        rig.remote.change()
        rig.remote.arm(429, count=1, retry_after=7)
        mark = rig.wire.mark()
        await rig.poll_to_end()
        sent = rig.wire.since(mark)
        refused = next(i for i, e in enumerate(sent) if e.status == 429)
        assert sent[refused + 1 :], "the refused request is sent again"
        # Nothing at all goes to the API before the pause the server asked for is over.
        assert sent[refused + 1].sent_at - sent[refused].sent_at >= 7
        assert [e.status for e in sent].count(429) == 1
        assert await rig.observed() == rig.remote.truth()


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_429_storm_ends_the_read_within_the_retry_limit(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        await populated(rig)
        before = await rig.observed()
        rig.remote.change()
        rig.remote.arm(429, count=-1, retry_after=1)
        mark = rig.wire.mark()
        await poll_failing(rig)
        sent = rig.wire.since(mark, case.data_path)
        assert len(sent) == POLICY.max_rate_limited + 1
        gaps = [b.sent_at - a.sent_at for a, b in itertools.pairwise(sent)]
        assert all(gap >= 1 for gap in gaps)
        assert await rig.observed() == before


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_failed_read_is_never_taken_for_an_empty_one(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        await populated(rig)
        before = await rig.observed()
        rig.remote.arm(503, count=POLICY.max_attempts)
        await poll_failing(rig)
        assert await rig.observed() == before
        state = find_feed(await rig.ledger.feed_states(), case.feed)
        assert state is not None
        assert state.last_error


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_an_empty_read_is_reported_as_empty_never_as_all_zero(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with source_rig(case, kind, tmp_path, boards) as rig:
        await populated(rig)
        before = await rig.observed()
        rig.remote.empty()
        rig.clock.advance(case.full_due_after)
        results = await rig.poll_to_end()
        state = find_feed(await rig.ledger.feed_states(), case.feed)
        assert state is not None
        if case.stock:
            # A full read that lists nothing is refused: the figures stand, and the
            # feed says why instead of reporting every SKU at zero.
            assert await rig.observed() == before
            assert any("nothing recorded" in p for r in results for p in r.problems)
            assert not any(r.complete for r in results)
            # A refused reconciliation leaves the feed followed, and says so in its state.
            said = [state.last_error or "", *state.extra.values()]
            assert any("nothing recorded" in text for text in said)
        else:
            # No open order is a real answer for an order feed: it is recorded as one.
            assert await rig.observed() == {}
            assert [r.error for r in results] == [None] * len(results)
            assert state.extra.get("orders") == "0" or case.feed == "fashiontrade"


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_read_never_sends_more_than_the_configured_rate(
    case: SourceCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    """``requests_per_minute`` of the source's API is a ceiling over any minute, not
    an average: a read that needs more requests waits for the next minute."""
    limit = 3
    async with source_rig(case, kind, tmp_path, boards, requests_per_minute=limit) as rig:
        rig.remote.populate()
        mark = rig.wire.mark()
        sent: list[float] = []
        for _ in range(10):  # reads and re-reads until more than a minute's worth was sent
            await rig.poll_to_end()
            sent = [e.sent_at for e in rig.wire.since(mark) if e.path != case.token_path]
            if len(sent) > 2 * limit:
                break
        assert len(sent) > 2 * limit
        busiest = max(sum(1 for t in sent if start <= t < start + 60.0) for start in sent)
        assert busiest <= limit
        assert await rig.observed() == rig.remote.truth()
