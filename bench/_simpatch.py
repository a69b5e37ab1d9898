"""Two simulator listings made linear in the catalog size, in the benchmark process only.

At 100 000 variants two sandbox endpoints cost time quadratic in the
catalog, because every page recomputes the whole list (reported to the
sandbox's owner):

- ASTRAL ``GET /stock/state`` scans every balance of the ledger for each
  variant of a page;
- fabric's supplier inventory list renders every item to JSON for each
  page of 50.

A full read of either then takes hours and says nothing about syncd. These
patches give the same answers from the simulators' own data in linear
time; :func:`apply` is called by the benchmarks that run at that size. The
simulators' behaviour towards syncd (pages, order, values) is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, overload

from syncd.sandbox import fabric as fabric_sim
from syncd.sandbox.astral_ledger import AstralLedger
from syncd.sandbox.fabric_model import FabricItem

_PATCHED = "bench_patched"


def apply() -> None:
    """Patch both listings (idempotent)."""
    _index_astral_state()
    _render_fabric_pages_lazily()


def _index_astral_state() -> None:
    """Answer the current stock state from the variant's own postings.

    That is the path the simulator already takes for ``stateAt``; balances
    are the sum of postings in its ledger, so the answer is the same
    (checked by computing both for every variant of a 3 000-variant sandbox).
    """
    original = AstralLedger.single_balances
    if getattr(original, _PATCHED, False):
        return

    def single_balances(
        self: AstralLedger,
        variant_id: str,
        *,
        before: tuple[int, int, int] | None = None,
        until: float | None = None,
    ) -> dict[tuple[str, str, Any], int]:
        if before is None and until is None:
            until = math.inf
        return original(self, variant_id, before=before, until=until)

    setattr(single_balances, _PATCHED, True)
    AstralLedger.single_balances = single_balances  # type: ignore[method-assign]


class _Rendered(Sequence[dict[str, Any]]):
    """Items in list order, turned into JSON objects only when a page is cut out."""

    def __init__(self, items: list[FabricItem], render: Callable[[FabricItem], dict[str, Any]]):
        self._items = items
        self._render = render

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._render(item) for item in self._items[index]]
        return self._render(self._items[index])


def _render_fabric_pages_lazily() -> None:
    """Filter and order the items as before; render only the page served."""
    app = fabric_sim._App
    original = app._inventory_rows
    if getattr(original, _PATCHED, False):
        return

    def _inventory_rows(self: Any, request: Any, *, supplier: bool) -> Any:
        state = self.state
        render = partial(state.item_json, supplier=supplier)
        # The original builds ``[state.item_json(item) for item in ordered]``:
        # for this one call, ``item_json`` hands the item back unrendered.
        state.item_json = lambda item, supplier=False: item
        try:
            items = original(self, request, supplier=supplier)
        finally:
            del state.item_json
        return _Rendered(items, render)

    setattr(_inventory_rows, _PATCHED, True)
    app._inventory_rows = _inventory_rows  # type: ignore[method-assign]
