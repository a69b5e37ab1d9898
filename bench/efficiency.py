"""Push efficiency: Ankorstore requests per change, against the physical minimum and a naive client.

The real path: a ledger snapshot changes every variant's stock, the
:class:`~syncd.engine.Engine` recomputes, and ``push_channel`` plans and
sends through the :class:`~syncd.channels.ankorstore.AnkorstoreChannel` the
daemon would build, over the shared Ankorstore client, against the
simulator. Requests are counted by the simulator (every endpoint of the
host, reads included).

The physical minimum for ``N`` changed variants is ``ceil(N / 50)`` bulk
requests (seed 000 L638). Two moments are measured, as before the
Ankorstore channel stopped reading ``reservedQuantity`` before its writes
(``stockQuantity`` now comes from the ledger, :mod:`syncd.allocation` step 5):

- *fresh*: right after a first publication or a read-back;
- *aged*: an hour later, the usual case between hourly read-backs. The
  channel's cache clock is moved forward instead of sleeping; the HTTP
  client keeps the real clock. Both must cost the physical minimum.

The naive client sends ``PATCH /api/v1/product-variants/{id}/stock`` once
per changed variant (seed 000 L1624-1825) through the same ApiClient and
rate limiter.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from _common import Row, progress
from _rig import PERMISSIVE, activeants_snapshot, rule_for, sandbox

from syncd.channels.ankorstore import AnkorstoreChannel
from syncd.clock import SystemClock
from syncd.engine import Engine
from syncd.integrations import build_channels
from syncd.ledger.store import Ledger
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import SandboxWorld

NAME = "efficiency"


class ShiftedClock(SystemClock):
    """The system clock plus an offset that only grows: ages the channel's cache."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def _levels(skus: list[str], round_: int) -> dict[str, int]:
    # Every round gives every SKU a new, positive level, so each desired value changes.
    return {sku: 100 + (index * 7 + round_ * 13) % 400 + round_ for index, sku in enumerate(skus)}


async def run(quick: bool) -> list[Row]:
    variants = 200 if quick else 1000
    catalog = generate_catalog(
        variants, seed=11, channel_share=1.0, bundle_share=0.0, prepacks=0, pack_share=0.0
    )
    world = SandboxWorld.create(catalog=catalog)
    skus = [v.sku for v in catalog.variants]
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        async with sandbox(Path(tmp), world) as rig:
            cache_clock = ShiftedClock()
            channel = build_channels(rig.config, rig.clients, cache_clock)["ankorstore"]
            assert isinstance(channel, AnkorstoreChannel)
            client = rig.clients.get("ankorstore")
            assert client is not None
            state = world.ankorstore
            async with await Ledger.open(Path(tmp) / "ledger.db") as ledger:
                engine = Engine(
                    ledger,
                    rig.config.catalog_model(),
                    [rule_for(rig.config, "ankorstore")],
                    {"ankorstore": channel},
                    policies={"ankorstore": PERMISSIVE},
                    feeds=[],
                )

                async def change_and_push(round_: int) -> tuple[int, int]:
                    levels = _levels(skus, round_)
                    await ledger.record_snapshot(activeants_snapshot(f"round-{round_}", levels))
                    await engine.recompute()
                    before = sum(state.counters.requests.values())
                    cycle = await engine.push_channel("ankorstore")
                    used = sum(state.counters.requests.values()) - before
                    if cycle.acknowledged != cycle.pending or cycle.deferred:
                        raise RuntimeError(f"push round {round_} did not settle: {cycle}")
                    wrong = [s for s in skus if state.listing(s).available_quantity != levels[s]]
                    if wrong:
                        raise RuntimeError(f"Ankorstore shows other values for {wrong[:5]}")
                    return cycle.pending, used

                # First publication (not measured): every value unknown to syncd.
                await change_and_push(0)
                fresh_changed, fresh_used = await change_and_push(1)
                cache_clock.offset += 3_600.0 + 1
                aged_changed, aged_used = await change_and_push(2)

                progress(NAME, f"naive client: {variants} PATCHes")
                # The naive client: one PATCH per changed variant, same client and limiter.
                levels = _levels(skus, 3)
                before = sum(state.counters.requests.values())
                started = time.monotonic()
                for variant in catalog.variants:
                    listing = state.listing(variant.sku)
                    body = {
                        "data": {
                            "type": "product-variants",
                            "id": variant.ankorstore_variant_id,
                            "attributes": {
                                "stockQuantity": levels[variant.sku] + listing.reserved_quantity
                            },
                        }
                    }
                    await client.request(
                        "PATCH",
                        f"/api/v1/product-variants/{variant.ankorstore_variant_id}/stock",
                        json=body,
                        idempotent=True,
                    )
                naive_used = sum(state.counters.requests.values()) - before
                naive_seconds = time.monotonic() - started
            rate_limited = state.counters.rate_limited

    rows: list[Row] = []
    for label, changed, used in (
        ("reserved figures fresh", fresh_changed, fresh_used),
        ("reserved figures aged", aged_changed, aged_used),
    ):
        minimum = math.ceil(changed / 50)
        ratio = used / minimum
        rows.append(
            Row(
                f"push efficiency, {label}",
                f"{ratio:.2f} ({used} requests / ceil({changed}/50) = {minimum})",
                "1.00",
                used <= minimum,
                values={"ratio": ratio, "requests": used, "changed": changed},
            )
        )
    for label, changed, used in (
        ("reserved figures fresh", fresh_changed, fresh_used),
        ("reserved figures aged", aged_changed, aged_used),
    ):
        factor = naive_used / used * changed / variants
        rows.append(
            Row(
                f"vs naive PATCH per variant, {label}",
                f"{factor:.1f}x fewer ({naive_used} naive vs {used} syncd requests)",
                ">= 45x",
                factor >= 45,
                values={"factor": factor, "naive_requests": naive_used},
            )
        )
    rows[-1].notes.append(
        f"naive client took {naive_seconds:.0f} s for {naive_used} PATCHes; "
        f"{rate_limited} answers were 429"
    )
    return rows
