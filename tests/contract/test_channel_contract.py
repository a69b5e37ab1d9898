"""The channel contract: what every channel adapter promises, on a fake and on the sandbox.

One suite, parametrised over the Ankorstore and fabric channel adapters and
over two backends: an in-memory fake of the documented API behind
``httpx.MockTransport``, and the loopback sandbox simulator. What the
channel holds is read from the backend itself, never from the adapter.

That nothing negative (or beyond ``MAX_UNITS``) reaches a channel is not a
clause here: quantities are validated once, by the planner, for every
channel (tests/unit/engine/test_plan.py, tests/unit/engine/test_engine.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from syncd.http.retry import RetryPolicy
from tests.contract._channels import CHANNELS, ChannelCase, channel_rig, update
from tests.contract._rig import BACKENDS
from tests.contract._switchboard import Switchboards

pytestmark = pytest.mark.anyio

CASES = [
    pytest.param(
        case,
        kind,
        id=f"{case.name}-{kind}",
        marks=[pytest.mark.integration] if kind == "sandbox" else [],
    )
    for case in CHANNELS
    for kind in BACKENDS
]

POLICY = RetryPolicy()


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_n_values_go_out_in_as_few_requests_as_the_channel_allows(
    case: ChannelCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with channel_rig(case, kind, tmp_path, boards) as rig:
        if case.most_per_write > 1:
            # The planner fills each batch up to the channel's maximum; by default
            # that is all one bulk write can carry.
            assert rig.channel.per_request == case.most_per_write
        skus = rig.skus[: case.batch]
        assert len(skus) == case.batch
        wanted = {sku: rig.value(sku, 3 + n % 5) for n, sku in enumerate(skus)}
        mark = rig.wire.mark()
        results = await rig.push([update(sku, q, n) for n, (sku, q) in enumerate(wanted.items())])
        assert [(r.parked, r.failed) for r in results] == [([], [])] * len(results)
        assert sorted(u.sku for r in results for u in r.acknowledged) == sorted(skus)
        writes = rig.writes(mark)
        assert len(writes) == math.ceil(case.batch / case.most_per_write)
        assert all(len(case.values_in(w)) <= case.most_per_write for w in writes)
        assert sorted(v for w in writes for v in case.values_in(w)) == sorted(wanted.values())
        assert {sku: rig.remote.written(sku) for sku in skus} == wanted


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_refused_item_is_parked_and_only_that_item(
    case: ChannelCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with channel_rig(case, kind, tmp_path, boards) as rig:
        first, *batch = rig.skus[:6]
        # A write has landed before: a refusal now is about the item, not the request.
        [primed] = await rig.push([update(first, rig.value(first, 2))])
        assert [u.sku for u in primed.acknowledged] == [first]
        before = {sku: rig.remote.written(sku) for sku in batch}
        wanted = {sku: rig.value(sku, 4) for sku in batch}
        refused = batch[2]
        rig.remote.refuse(refused, index=2)
        results = await rig.push([update(sku, q) for sku, q in wanted.items()])
        parked = [(u.sku, reason) for r in results for u, reason in r.parked]
        assert [sku for sku, _ in parked] == [refused]
        assert parked[0][1], "a parked item says why"
        assert [r.failed for r in results] == [[]] * len(results)
        assert sorted(u.sku for r in results for u in r.acknowledged) == sorted(
            set(batch) - {refused}
        )
        shown = {sku: rig.remote.written(sku) for sku in batch}
        assert shown == {**wanted, refused: before[refused]}


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_read_live_returns_what_was_written_in_the_written_field(
    case: ChannelCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with channel_rig(case, kind, tmp_path, boards) as rig:
        skus = rig.skus[:5]
        wanted = {sku: rig.value(sku, 6 + n) for n, sku in enumerate(skus)}
        await rig.push([update(sku, q) for sku, q in wanted.items()])
        some = await rig.channel.read_live(skus)
        assert {sku: v.written for sku, v in some.items()} == wanted
        # An order of the channel's own that holds units leaves the written figure
        # as it was (Ankorstore: stockQuantity = available + reserved, seed 000
        # L1180-1190, L1806-1811).
        rig.remote.hold(skus[1], rig.value(skus[1], 1))
        every = await rig.channel.read_live()
        assert {sku: every[sku].written for sku in skus} == wanted
        assert set(every) == set(rig.skus)
        # What the channel holds now, not what syncd remembers writing.
        rig.remote.set_written(skus[0], 1)
        again = await rig.channel.read_live([skus[0]])
        assert again[skus[0]].written == 1


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_pack_sizes_are_the_channels_own(
    case: ChannelCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with channel_rig(case, kind, tmp_path, boards) as rig:
        packs = rig.channel.pack_sizes()
        assert dict(packs) == rig.remote.packs()
        assert all(units >= 1 for units in packs.values())
        # The same mapping until it changes: the engine compares identity.
        assert rig.channel.pack_sizes() is packs
        await rig.channel.read_live()
        assert rig.channel.pack_sizes() is packs
        sku = rig.skus[0]
        if not rig.remote.set_pack(sku, 4):
            return
        await rig.channel.read_live()
        changed = rig.channel.pack_sizes()
        assert changed is not packs
        assert changed[sku] == 4
        assert dict(changed) == rig.remote.packs()


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_429_is_waited_out_as_told(
    case: ChannelCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with channel_rig(case, kind, tmp_path, boards) as rig:
        skus = rig.skus[:3]
        wanted = {sku: rig.value(sku, 5) for sku in skus}
        rig.remote.arm(429, count=1, retry_after=7)
        mark = rig.wire.mark()
        results = await rig.push([update(sku, q) for sku, q in wanted.items()])
        assert sorted(u.sku for r in results for u in r.acknowledged) == sorted(skus)
        sent = rig.wire.since(mark)
        refused = next(i for i, e in enumerate(sent) if e.status == 429)
        # A channel that writes side by side (fabric) may have had others in flight when
        # the 429 came back; nothing leaves later than that until the wait is over.
        later = [e for e in sent[refused + 1 :] if e.sent_at > sent[refused].sent_at]
        assert later
        assert later[0].sent_at - sent[refused].sent_at >= 7
        resent = next(e for e in later if e.path == sent[refused].path)
        assert resent.sent_at - sent[refused].sent_at >= 7
        assert [e.status for e in sent].count(429) == 1
        assert {sku: rig.remote.written(sku) for sku in skus} == wanted


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_429_storm_fails_the_push_within_the_retry_limit_and_parks_nothing(
    case: ChannelCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    async with channel_rig(case, kind, tmp_path, boards) as rig:
        sku = rig.skus[0]
        before = rig.remote.written(sku)
        rig.remote.arm(429, count=-1, retry_after=1)
        mark = rig.wire.mark()
        [result] = await rig.push([update(sku, rig.value(sku, 9))])
        # Failed, so it stays pending and is sent again later; never parked for a 429.
        assert ([u.sku for u, _ in result.failed], result.parked, result.acknowledged) == (
            [sku],
            [],
            [],
        )
        writes = rig.writes(mark)
        assert len(writes) == POLICY.max_rate_limited + 1
        assert all(w.status == 429 for w in writes)
        assert rig.remote.written(sku) == before


@pytest.mark.parametrize(("case", "kind"), CASES)
async def test_a_push_never_sends_more_than_the_configured_rate(
    case: ChannelCase, kind: str, tmp_path: Path, boards: Switchboards
) -> None:
    """``requests_per_minute`` of the channel's API holds over any minute, reads and
    writes together: a push that needs more waits (on the injected clock)."""
    limit = 4
    async with channel_rig(case, kind, tmp_path, boards, requests_per_minute=limit) as rig:
        skus = rig.skus[:10]
        wanted = {sku: rig.value(sku, 2) for sku in skus}
        mark = rig.wire.mark()
        for sku, quantity in wanted.items():
            await rig.push([update(sku, quantity)])
        sent = [e.sent_at for e in rig.wire.since(mark) if "token" not in e.path]
        assert len(sent) > 2 * limit
        busiest = max(sum(1 for t in sent if start <= t < start + 60.0) for start in sent)
        assert busiest <= limit
        assert {sku: rig.remote.written(sku) for sku in skus} == wanted
