"""Active Ants ``v2/stock/bulk`` answers that are broken, hostile or lying.

Each case runs the real `ActiveAntsStockSource` against a scripted ShopApi
(``httpx.MockTransport``) into a real ledger file. A good full read comes
first (the baseline), then the bad answer:

* an answer that cannot be read at all raises a typed error, marks the feed
  failing and leaves the ledger exactly as it was -- balances, transactions,
  cursor -- so the next good read picks up the change it carried;
* a product that cannot be used is skipped and reported (event, poll problem,
  feed extra) while the rest of the read is recorded; its SKU keeps its
  last level (the next full read re-reads it, seed 001 L2868);
* a full read with nothing usable is refused: never a mass zeroing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.config.sections import ActiveAntsSourceSection
from syncd.http.errors import HttpError
from syncd.http.presets import activeants_client
from syncd.ledger.store import Ledger
from syncd.model import Catalog, Variant
from syncd.sources.activeants import ActiveAntsStockSource
from syncd.sources.problems import MalformedPage
from tests.badinput._support import (
    NO_RETRY,
    Script,
    available,
    feed_error,
    open_ledger,
    raw_json,
    skipped_events,
    token,
    view,
    whole_body_failures,
)

pytestmark = pytest.mark.anyio

FEED = "activeants"
BULK = "/v2/stock/bulk"
CATALOG = Catalog(
    variants={sku: Variant(sku, activeants_sku=f"AA-{sku}") for sku in ("TEE-S", "TEE-M", "TEE-L")}
)
BASELINE = {"AA-TEE-S": 5, "AA-TEE-M": 7, "AA-TEE-L": 3}
_TOKENS = {"__NaN__": "NaN", "__Infinity__": "Infinity", "__-Infinity__": "-Infinity"}


@dataclass
class ShopApi:
    """``v2/stock/bulk``: full reads list every product, incremental ones what changed."""

    stock: dict[str, int] = field(default_factory=lambda: dict(BASELINE))
    changed: set[str] = field(default_factory=set)
    extra: list[Any] = field(default_factory=list)
    """Raw product entries appended to the next read (then forgotten)."""
    replace: bool = False
    """When set, the next read lists only ``extra``."""
    tick: int = 0

    def set(self, aa_sku: str, level: int) -> None:
        self.stock[aa_sku] = level
        self.changed.add(aa_sku)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return token()
        self.tick += 1
        full = request.url.params["all_products"] == "true"
        listed = sorted(self.stock) if full else sorted(self.changed)
        products: list[Any] = [] if self.replace else [self._product(s) for s in listed]
        products += self.extra
        self.changed, self.extra, self.replace = set(), [], False
        return raw_json(_with_tokens(self.document(products)))

    def document(self, products: list[Any]) -> dict[str, Any]:
        return {
            "messageCode": "OK",
            "message": f"Found {len(products)} products suitable for stock synchronization.",
            "result": {
                "period": {"from": None, "to": f"2025-01-01T10:00:{self.tick:02d}.000+01:00"},
                "products": products,
            },
        }

    def _product(self, aa_sku: str) -> dict[str, Any]:
        level = self.stock[aa_sku]
        return {"sku": aa_sku, "availableStock": level, "freeStock": level, "stock": level}


def _with_tokens(document: Any) -> str:
    """JSON text with the placeholder strings turned into bare NaN / Infinity tokens."""
    text = json.dumps(document)
    for placeholder, token_text in _TOKENS.items():
        text = text.replace(f'"{placeholder}"', token_text)
    return text


@dataclass
class Rig:
    api: ShopApi
    script: Script
    source: ActiveAntsStockSource
    clock: FakeClock


def rig() -> Rig:
    api, clock = ShopApi(), FakeClock()
    script = Script(api.handler)
    client = activeants_client(
        base_url="https://shopapi.test",
        username="shop",
        password="secret",
        clock=clock,
        transport=script.transport(),
        retry=NO_RETRY,
    )
    source = ActiveAntsStockSource(client, CATALOG, ActiveAntsSourceSection(), clock=clock)
    return Rig(api, script, source, clock)


async def baseline(ledger: Ledger, r: Rig) -> None:
    """The first (full) read, recorded as it should be."""
    result = await r.source.poll(ledger)
    assert result.complete
    assert available(await ledger.balances(), FEED) == {"TEE-S": 5, "TEE-M": 7, "TEE-L": 3}


# --- answers that cannot be read at all ---------------------------------------------------


def _envelope_failures() -> dict[str, Any]:
    good = ShopApi().document([{"sku": "AA-TEE-S", "availableStock": 1}])
    cases: dict[str, Any] = dict(whole_body_failures(good))
    broken: dict[str, Any] = {
        "message_code_nok": {"messageCode": "NOK", "message": "Invalid request", "result": None},
        "message_code_missing": {"message": "ok", "result": good["result"]},
        "result_null": {**good, "result": None},
        "result_is_a_list": {**good, "result": [good["result"]]},
        "period_without_to": {**good, "result": {**good["result"], "period": {"from": None}}},
        "period_to_null": {
            **good,
            "result": {**good["result"], "period": {"from": None, "to": None}},
        },
        "products_not_a_list": {**good, "result": {**good["result"], "products": "AA-TEE-S"}},
        "two_product_arrays": {"messageCode": "OK", "result": {"p": {"to": "x"}, "a": [], "b": []}},
    }
    for name, document in broken.items():
        cases[name] = lambda document=document: raw_json(json.dumps(document))
    return cases


ENVELOPE_FAILURES = _envelope_failures()


@pytest.mark.parametrize("case", sorted(ENVELOPE_FAILURES))
async def test_an_unreadable_answer_changes_nothing_and_the_next_read_catches_up(
    tmp_path: Path, case: str
) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await baseline(ledger, r)
        r.api.set("AA-TEE-S", 1)  # a change the bad answer would have carried
        before = await view(ledger, [FEED])
        r.script.queue(BULK, ENVELOPE_FAILURES[case]())

        with pytest.raises((HttpError, MalformedPage)) as raised:
            await r.source.poll(ledger)

        assert await view(ledger, [FEED]) == before
        error = await feed_error(ledger, FEED)
        assert error is not None
        assert error.startswith(type(raised.value).__name__)
        # The cursor did not move, so the change is read on the next poll.
        r.clock.advance(60)
        await r.source.poll(ledger)
        assert available(await ledger.balances(), FEED)["TEE-S"] == 1
        assert await feed_error(ledger, FEED) is None


# --- products that cannot be used ---------------------------------------------------------

LARGE = 10**30
PRODUCT_CASES: dict[str, tuple[Any, str]] = {
    "stock_with_letters": ({"sku": "AA-TEE-L", "availableStock": "12abc"}, "not an integer"),
    "stock_is_a_list": ({"sku": "AA-TEE-L", "availableStock": [3]}, "not an integer"),
    "stock_is_an_object": ({"sku": "AA-TEE-L", "availableStock": {"n": 3}}, "not an integer"),
    "stock_is_a_boolean": ({"sku": "AA-TEE-L", "availableStock": True}, "not an integer"),
    "stock_is_a_fraction": ({"sku": "AA-TEE-L", "availableStock": 2.5}, "not an integer"),
    "stock_is_null": ({"sku": "AA-TEE-L", "availableStock": None}, "missing availableStock"),
    "stock_missing": ({"sku": "AA-TEE-L", "freeStock": 4}, "missing availableStock"),
    "stock_10e30_integer": ({"sku": "AA-TEE-L", "availableStock": LARGE}, "out of range"),
    "stock_1e30_float": ({"sku": "AA-TEE-L", "availableStock": 1e30}, "out of range"),
    "stock_nan_token": ({"sku": "AA-TEE-L", "availableStock": "__NaN__"}, "not an integer"),
    "stock_infinity_token": (
        {"sku": "AA-TEE-L", "availableStock": "__Infinity__"},
        "not an integer",
    ),
    "stock_minus_infinity": (
        {"sku": "AA-TEE-L", "availableStock": "__-Infinity__"},
        "not an integer",
    ),
    "stock_of_5000_digits": ({"sku": "AA-TEE-L", "availableStock": "9" * 5000}, "not an integer"),
    "stock_superscript_digit": ({"sku": "AA-TEE-L", "availableStock": "²"}, "not an integer"),
    "product_is_null": (None, "product is not an object"),
    "product_is_a_string": ("AA-TEE-L", "product is not an object"),
    "sku_is_null": ({"sku": None, "availableStock": 3}, "missing sku"),
    "sku_is_an_object": ({"sku": {"id": 1}, "availableStock": 3}, "missing sku"),
    "unknown_sku": ({"sku": "AA-GHOST", "availableStock": 3}, "unknown SKU"),
}


@pytest.mark.parametrize("case", sorted(PRODUCT_CASES))
async def test_a_bad_product_is_skipped_and_reported_while_the_rest_is_recorded(
    tmp_path: Path, case: str
) -> None:
    product, reason = PRODUCT_CASES[case]
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await baseline(ledger, r)
        r.api.set("AA-TEE-S", 2)
        r.api.set("AA-TEE-M", 9)
        r.api.extra = [product]

        with capture_logs() as logs:
            result = await r.source.poll(ledger)

        # The valid products of the same answer are recorded ...
        assert available(await ledger.balances(), FEED) == {"TEE-S": 2, "TEE-M": 9, "TEE-L": 3}
        # ... and the bad one is reported three ways, with the reason.
        assert result.skipped == 1
        [(item, logged_reason)] = skipped_events(logs, FEED)
        assert reason in logged_reason
        assert any(reason in problem for problem in result.problems)
        [state] = await ledger.feed_states()
        assert state.last_error is None
        assert reason in state.extra["skipped_reasons"]
        assert len(item) <= 200


async def test_a_negative_figure_is_recorded_as_zero_never_kept_at_its_last_level(
    tmp_path: Path,
) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await baseline(ledger, r)
        r.api.set("AA-TEE-L", -4)  # backorders (brief G21)
        result = await r.source.poll(ledger)
        assert "TEE-L" not in available(await ledger.balances(), FEED)  # zero balances omitted
        assert available(await ledger.balances(), FEED)["TEE-S"] > 0
        assert result.skipped == 0
        assert any("below zero" in problem and "(-4)" in problem for problem in result.problems)
        await ledger.check_invariants()


async def test_a_product_listed_twice_records_the_lower_figure_and_says_so(
    tmp_path: Path,
) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await baseline(ledger, r)
        for first, second in ((8, 3), (3, 8)):  # whichever copy comes first
            r.api.extra = [
                {"sku": "AA-TEE-L", "availableStock": first},
                {"sku": "AA-TEE-L", "availableStock": second},
            ]
            with capture_logs() as logs:
                result = await r.source.poll(ledger)
            assert available(await ledger.balances(), FEED)["TEE-L"] == 3
            assert result.skipped == 1
            assert skipped_events(logs, FEED) == [
                (
                    "AA-TEE-L",
                    f"listed twice in one read ({first} and {second}): the lower, 3, recorded",
                )
            ]


# --- full reads with nothing usable --------------------------------------------------------

UNUSABLE_FULL_READS: dict[str, list[Any]] = {
    "no_products": [],
    "only_unknown_skus": [{"sku": f"AA-GHOST-{i}", "availableStock": 4} for i in range(3)],
    # Not here: a read where every product is below zero is recorded as zeros
    # (that is what the warehouse says); the channels' mass-zero hold guards it.
    "only_garbage": [None, "x", 17, [], {"availableStock": 3}],
}


@pytest.mark.parametrize("case", sorted(UNUSABLE_FULL_READS))
async def test_a_full_read_with_nothing_usable_is_refused_never_a_mass_zeroing(
    tmp_path: Path, case: str
) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        r.api.replace, r.api.extra = True, UNUSABLE_FULL_READS[case]
        result = await r.source.poll(ledger)
        assert result.recorded == 0
        assert await ledger.balances() == {}
        assert await ledger.cursor(FEED) is None
        assert await ledger.last_txn_id() == 0
        error = await feed_error(ledger, FEED)
        assert error is not None
        assert "nothing recorded" in error
        assert any("none usable" in p for p in result.problems)

        # Once the warehouse answers properly, the full read is made again.
        r.clock.advance(60)
        recovered = await r.source.poll(ledger)
        assert recovered.complete
        assert available(await ledger.balances(), FEED) == {"TEE-S": 5, "TEE-M": 7, "TEE-L": 3}


async def test_a_product_skipped_by_an_incremental_read_is_booked_by_the_next_full_read(
    tmp_path: Path,
) -> None:
    """The incremental cursor moves past a skipped product (holding it would re-read a
    growing window forever); the periodic full read is what books its real level."""
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await baseline(ledger, r)
        r.api.stock["AA-TEE-L"] = 1  # the warehouse's truth ...
        r.api.extra = [{"sku": "AA-TEE-L", "availableStock": "1 unit"}]  # ... garbled
        result = await r.source.poll(ledger)
        assert result.skipped == 1
        assert await ledger.cursor(FEED) == result.cursor
        assert available(await ledger.balances(), FEED)["TEE-L"] == 3

        r.clock.advance(ActiveAntsSourceSection().full_reconcile_interval)
        full = await r.source.poll(ledger)
        assert full.complete
        assert available(await ledger.balances(), FEED)["TEE-L"] == 1
