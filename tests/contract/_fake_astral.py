"""ASTRAL stock reads in memory: ``stock/postings`` and ``stock/state`` (seed 000 L12920-end).

The model is one list of postings in feed order; the stock state is their
sum per location, status and variant, ``void`` left out -- ASTRAL's own
definition of state (seed 000 L13137-13141). The answers follow the seed:

- cursor pagination: ``meta.page`` ``{from, to, hasMore, perPage}`` and
  ``links`` ``{first, next, prev}``, "If a link does not exist then you cannot
  paginate any further in that direction" (L12946-13016);
- ``page[limit]`` "Default: 10" (L13511-13514); ``page[after]`` "show items
  after the provided cursors (uuid<,timestamp> format)" (L13520-13524);
  ``sort`` ``transaction.createdAt`` or ``-transaction.createdAt`` (L13525-13529);
- postings carry ``locationId``, ``productVariantId``, ``locationStatus``,
  ``quantity`` (batches), ``movementType`` and ``unitMultiplier`` (units per
  batch, L13105-13109); a state entity is a ``stock-state`` whose
  ``quantities`` rows carry ``quantity``, ``locationId``, ``locationType``,
  ``status`` and ``unitMultiplier`` (L13173-13347), the shape the sandbox
  serves (``syncd.sandbox.astral_jsonapi``);
- the Ankorstore OAuth token (``POST /oauth/token``, client credentials, L145-175);
  an expired or revoked token answers 401 (L172).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from syncd.clock import Clock
from syncd.sandbox.catalog import SandboxCatalog
from tests.contract._fake_base import FakeApi

PREFIX = "/api/astral/v1/stock"
POSTINGS = f"{PREFIX}/postings"
STATE = f"{PREFIX}/state"
EPOCH = 1_767_000_000


@dataclass(frozen=True, slots=True)
class Posting:
    id: str
    seq: int
    variant_id: str
    status: str
    batches: int
    multiplier: int

    @property
    def cursor(self) -> str:
        return f"{self.id},{EPOCH + self.seq}"

    def resource(self, location: str) -> dict[str, Any]:
        return {
            "type": "posting",
            "id": self.id,
            "attributes": {
                "locationId": location,
                "productVariantId": self.variant_id,
                "locationStatus": self.status,
                "quantity": self.batches,
                "movementType": "manual",
                "unitMultiplier": self.multiplier,
            },
        }


class FakeAstral(FakeApi):
    token_path = "/oauth/token"

    def __init__(self, catalog: SandboxCatalog, clock: Clock) -> None:
        super().__init__(clock)
        self.location = catalog.astral_location_id
        self.postings: list[Posting] = []
        self.multipliers = {
            v.astral_variant_id: v.astral_unit_multiplier for v in catalog.variants if v.at_astral
        }
        self.listed = True
        """False: the state lists no variant at all."""
        for v in catalog.variants:
            if v.at_astral and v.astral_batches > 0:
                self.move(v.astral_variant_id, "void", "available", v.astral_batches)

    def move(self, variant_id: str, source: str, target: str, batches: int) -> None:
        for status, quantity in ((source, -batches), (target, batches)):
            seq = len(self.postings) + 1
            self.postings.append(
                Posting(
                    f"00000000-0000-4000-8000-{seq:012d}",
                    seq,
                    variant_id,
                    status,
                    quantity,
                    self.multipliers[variant_id],
                )
            )

    def balances(self) -> dict[tuple[str, str], int]:
        """(variant id, status) -> batches, void left out."""
        totals: dict[tuple[str, str], int] = {}
        for p in self.postings:
            if p.status != "void":
                key = (p.variant_id, p.status)
                totals[key] = totals.get(key, 0) + p.batches
        return totals

    # --- serving ------------------------------------------------------------------------

    def serve(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == POSTINGS:
            return self._postings(request)
        if request.url.path == STATE:
            return self._state(request)
        return httpx.Response(404, json={"errors": [{"status": "404", "title": "Not Found"}]})

    def _page(
        self,
        request: httpx.Request,
        ids: list[str],
        cursors: list[str],
        data: list[Any],
        more: bool,
    ) -> httpx.Response:
        limit = self._limit(request)
        following = None
        if more:
            following = str(
                request.url.copy_set_param("page[after]", cursors[-1]).copy_set_param(
                    "page[limit]", str(limit)
                )
            )
        body = {
            "data": data,
            "meta": {
                "page": {
                    "from": cursors[0] if cursors else None,
                    "to": cursors[-1] if cursors else None,
                    "hasMore": more,
                    "perPage": limit,
                }
            },
            "links": {"first": str(request.url), "next": following, "prev": None},
            "jsonapi": {"version": "1.0"},
        }
        return httpx.Response(200, json=body, headers={"content-type": "application/vnd.api+json"})

    @staticmethod
    def _limit(request: httpx.Request) -> int:
        return int(request.url.params.get("page[limit]", "10"))

    def _postings(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        ordered = self.postings[::-1] if params.get("sort", "").startswith("-") else self.postings
        start = 0
        if "page[after]" in params:
            anchor = params["page[after]"].split(",")[0]
            start = next(i for i, p in enumerate(ordered) if p.id == anchor) + 1
        limit = self._limit(request)
        chosen = ordered[start : start + limit]
        more = start + limit < len(ordered)
        return self._page(
            request,
            [p.id for p in chosen],
            [p.cursor for p in chosen],
            [p.resource(self.location) for p in chosen],
            more,
        )

    def _state(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        wanted = set(params.get_list("filter[status][]")) or None
        rows: dict[str, list[dict[str, Any]]] = {}
        for (variant_id, status), batches in sorted(self.balances().items()):
            if batches and (wanted is None or status in wanted):
                rows.setdefault(variant_id, []).append(
                    {
                        "quantity": batches,
                        "locationId": self.location,
                        "locationType": "warehouse",
                        "status": status,
                        "unitMultiplier": self.multipliers[variant_id],
                        "productType": "single",
                    }
                )
        ids = sorted(self.multipliers) if self.listed else []
        start = ids.index(params["page[after]"]) + 1 if "page[after]" in params else 0
        limit = self._limit(request)
        chosen = ids[start : start + limit]
        data = [
            {"type": "stock-state", "id": i, "attributes": {"quantities": rows.get(i, [])}}
            for i in chosen
        ]
        return self._page(request, chosen, chosen, data, start + limit < len(ids))
