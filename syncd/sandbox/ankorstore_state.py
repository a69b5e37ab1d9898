"""State of the Ankorstore simulator: listings, tokens, orders and counters.

Everything here is plain in-memory data behind one lock, so tests, the demo
and the HTTP handlers (running in another thread under
:class:`~syncd.sandbox.server.ThreadedServer`) can share it. The stock rules
of one variant live in :mod:`syncd.sandbox.ankorstore_stock`, the order flow
in :mod:`syncd.sandbox.ankorstore_orders`.
"""

from __future__ import annotations

import random
import secrets
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.sandbox.ankorstore_orders import OrderBook, SimOrder
from syncd.sandbox.ankorstore_stock import SimListing, StockChange, parse_stock_data
from syncd.sandbox.astral_state import AstralState
from syncd.sandbox.catalog import SandboxCatalog
from syncd.sandbox.jsonapi_sim import ApiError
from syncd.sandbox.limits import SimClock, SlidingWindows, Window

TOKEN_TTL = 3600  # seed 000 L166-170: "expires_in": 3600
TOKEN_WINDOWS = (Window(60, 3600, "token-hour"),)  # seed 000 L228
API_WINDOWS = (  # seed 000 L202-206, authenticated
    Window(600, 60, "minute"),
    Window(24_000, 3600, "hour"),
    Window(288_000, 86_400, "day"),
)
ANONYMOUS_WINDOWS = (  # seed 000 L212-216, unauthenticated
    Window(120, 60, "minute"),
    Window(4_800, 3600, "hour"),
    Window(57_600, 86_400, "day"),
)
MAX_OPERATIONS = 50  # seed 000 L638, L12866
SANDBOX_CLIENT_ID = "syncd-sandbox"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 -- fixed credential of a loopback simulator


@dataclass(slots=True)
class IssuedToken:
    value: str
    client_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass(slots=True)
class AnkorstoreCounters:
    requests: dict[str, int] = field(default_factory=dict)
    """Requests per endpoint (``"GET /api/v1/product-variants"``), admitted or not."""
    write_requests: int = 0
    """Accepted stock writes: ``POST /api/v1/operations`` + ``PATCH .../stock``."""
    updated_variants: int = 0
    """Variant updates applied by those writes."""
    rate_limited: int = 0
    """429 answers served by the simulator's own limits (API and token endpoint)."""
    token_requests: int = 0
    tokens_issued: int = 0
    unauthorized: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "writeRequests": self.write_requests,
            "updatedVariants": self.updated_variants,
            "rateLimited": self.rate_limited,
            "tokenRequests": self.token_requests,
            "tokensIssued": self.tokens_issued,
            "unauthorized": self.unauthorized,
        }


class TokenError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.error = ApiError(status, detail, code=code)


class AnkorstoreState:
    """The simulated Ankorstore brand account (and its ASTRAL stock)."""

    def __init__(
        self,
        catalog: SandboxCatalog,
        *,
        clock: SimClock | None = None,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        atomic_operations: bool = True,
        accept_type_aliases: bool = False,
        initial_stock: int | None = None,
        page_default: int = 15,
        page_max: int = 100,
        token_ttl: int = TOKEN_TTL,
        rate_windows: Sequence[Window] = API_WINDOWS,
        token_windows: Sequence[Window] = TOKEN_WINDOWS,
        astral: AstralState | None = None,
    ) -> None:
        self.catalog = catalog
        self.clock = clock or SimClock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.atomic_operations = atomic_operations
        """All-or-nothing bulk writes (the JSON:API atomic reading); see ankorstore.py."""
        self.accept_type_aliases = accept_type_aliases
        self.page_default = page_default
        self.page_max = page_max
        self.token_ttl = token_ttl
        self.rate = SlidingWindows(list(rate_windows), self.clock)
        self.anonymous_rate = SlidingWindows(list(ANONYMOUS_WINDOWS), self.clock)
        self.token_rate = SlidingWindows(list(token_windows), self.clock)
        self.counters = AnkorstoreCounters()
        self.astral = astral or AstralState(catalog, clock=self.clock)
        self.lock = threading.RLock()
        self._tokens: dict[str, IssuedToken] = {}
        self._orders = OrderBook(catalog.seed)
        self.listings: dict[str, SimListing] = {}
        self._by_sku: dict[str, str] = {}
        self._build(initial_stock)

    def _build(self, initial_stock: int | None) -> None:
        # Seeded: the stale quantities Ankorstore shows before syncd's first push.
        rng = random.Random(self.catalog.seed * 31 + 7)  # noqa: S311
        entries: list[tuple[str, str, int, str | None, str | None]] = [
            (
                v.ankorstore_variant_id,
                v.ankorstore_sku,
                v.pack_size,
                v.barcode,
                v.astral_variant_id if v.at_astral else None,
            )
            for v in self.catalog.variants
            if "ankorstore" in v.channels
        ]
        entries += [
            (b.ankorstore_variant_id, b.sku, 1, b.barcode, None)
            for b in self.catalog.bundles
            if "ankorstore" in b.channels
        ]
        for listing_id, sku, multiplier, ian, fulfillable in entries:
            stock = initial_stock if initial_stock is not None else rng.randint(0, 40)
            listing = SimListing(
                id=listing_id,
                sku=sku,
                name=f"Sandbox product {sku}",
                product_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"ankorstore-sim/product/{sku}")),
                unit_multiplier=multiplier,
                ian=ian,
                stock_quantity=stock,
                fulfillable_id=fulfillable,
                wholesale_price=rng.randint(300, 3000),
            )
            self.listings[listing_id] = listing
            self._by_sku[sku] = listing_id

    # --- lookups -------------------------------------------------------------------

    def listing(self, key: str) -> SimListing:
        """A listing by Ankorstore variant id or SKU."""
        with self.lock:
            listing_id = key if key in self.listings else self._by_sku.get(key)
            if listing_id is None:
                raise KeyError(f"no Ankorstore variant {key!r}")
            return self.listings[listing_id]

    def ordered_listings(self) -> list[SimListing]:
        with self.lock:
            return list(self.listings.values())

    # --- tokens --------------------------------------------------------------------

    def issue_token(
        self,
        *,
        grant_type: str | None,
        client_id: str | None,
        client_secret: str | None,
        scope: str | None,
    ) -> IssuedToken:
        """Client-credentials grant (seed 000 L145-170). Raises :class:`TokenError`."""
        if grant_type != "client_credentials":
            raise TokenError(
                400, "unsupported_grant_type", "The grant type must be client_credentials."
            )
        if not client_id or not client_secret:
            raise TokenError(400, "invalid_request", "client_id and client_secret are required.")
        if scope not in (None, "", "*"):
            raise TokenError(400, "invalid_scope", "The only scope is '*'.")
        # Bytes, not str: compare_digest refuses non-ASCII text with a TypeError.
        if not (
            secrets.compare_digest(client_id.encode(), self.client_id.encode())
            and secrets.compare_digest(client_secret.encode(), self.client_secret.encode())
        ):
            raise TokenError(401, "invalid_client", "Client authentication failed.")
        now = self.clock.now()
        token = IssuedToken(
            value=secrets.token_urlsafe(32),
            client_id=client_id,
            issued_at=now,
            expires_at=now + self.token_ttl,
        )
        with self.lock:
            self._tokens[token.value] = token
            self.counters.tokens_issued += 1
        return token

    def authenticate(self, value: str | None) -> IssuedToken | None:
        """The live token for ``value``, or None (unknown, expired or revoked -> 401)."""
        if not value:
            return None
        with self.lock:
            token = self._tokens.get(value)
        if token is None or token.revoked or self.clock.now() >= token.expires_at:
            return None
        return token

    def revoke_tokens(self) -> int:
        """Invalidate every issued token (Ankorstore may revoke access, seed 000 L364)."""
        with self.lock:
            live = [t for t in self._tokens.values() if not t.revoked]
            for token in live:
                token.revoked = True
            return len(live)

    def count_request(self, label: str) -> None:
        with self.lock:
            self.counters.requests[label] = self.counters.requests.get(label, 0) + 1

    # --- stock writes --------------------------------------------------------------

    def _apply(self, change: StockChange) -> SimListing:
        listing = self.listings[change.listing_id]
        if change.always:
            listing.always_in_stock = True
            listing.stock_quantity = None
        else:
            if change.stock is not None:
                listing.stock_quantity = change.stock
            elif listing.always_in_stock or listing.stock_quantity is None:
                # isAlwaysInStock:false alone on an always-in-stock variant: the
                # seed is silent (brief 9.5); tracking restarts at 0, never oversells.
                listing.stock_quantity = 0
            listing.always_in_stock = False
        if change.policy is not None:
            listing.inventory_policy = change.policy
        listing.updated_at = self.clock.now()
        return listing

    def patch_stock(self, path_id: str, body: object) -> tuple[SimListing | None, list[ApiError]]:
        """``PATCH /api/v1/product-variants/{id}/stock`` (seed 000 L1624-1825)."""
        with self.lock:
            if path_id not in self.listings:
                return None, [ApiError(404, "Not found")]
            data = body.get("data") if isinstance(body, dict) else None
            change, errors = parse_stock_data(
                data,
                "/data",
                known=self.listings,
                path_id=path_id,
                accept_aliases=self.accept_type_aliases,
            )
            if change is None:
                return None, errors
            listing = self._apply(change)
            self.counters.write_requests += 1
            self.counters.updated_variants += 1
            return listing, []

    def apply_operations(
        self, body: object, *, invalid_index: int | None = None
    ) -> tuple[list[SimListing], list[ApiError]]:
        """``POST /api/v1/operations`` (seed 000 L636-669, L12856-12918).

        With ``atomic_operations`` (default) a batch holding any invalid
        operation changes nothing; otherwise the valid operations are applied
        and the invalid ones are reported. ``invalid_index`` is the
        ``invalid_operation`` fault: that operation is refused as invalid.
        """
        with self.lock:
            operations = body.get("atomic:operations") if isinstance(body, dict) else None
            if not isinstance(operations, list):
                return [], [
                    ApiError(
                        422,
                        "The atomic:operations field is required.",
                        pointer="/atomic:operations",
                    )
                ]
            if not 1 <= len(operations) <= MAX_OPERATIONS:
                return [], [
                    ApiError(
                        422,
                        f"The atomic:operations must contain between 1 and {MAX_OPERATIONS} items.",
                        pointer="/atomic:operations",
                    )
                ]
            changes: list[StockChange | None] = []
            errors: list[ApiError] = []
            for index, operation in enumerate(operations):
                base = f"/atomic:operations/{index}"
                if not isinstance(operation, dict) or operation.get("op") != "update":
                    errors.append(ApiError(422, "The op must be 'update'.", pointer=f"{base}/op"))
                    changes.append(None)
                    continue
                change, found = parse_stock_data(
                    operation.get("data"),
                    f"{base}/data",
                    known=self.listings,
                    accept_aliases=self.accept_type_aliases,
                )
                if change is not None and index == invalid_index:
                    change = None
                    found = [
                        ApiError(
                            422,
                            "The stockQuantity is invalid.",
                            pointer=f"{base}/data/attributes/stockQuantity",
                        )
                    ]
                errors.extend(found)
                changes.append(change)
            if errors and self.atomic_operations:
                return [], errors
            applied = [self._apply(change) for change in changes if change is not None]
            if applied:
                self.counters.write_requests += 1
                self.counters.updated_variants += len(applied)
            return applied, errors

    def set_stock(
        self, key: str, quantity: int | None = None, *, always_in_stock: bool = False
    ) -> SimListing:
        """Admin/test: set a variant's total stock (or always-in-stock) directly."""
        if quantity is not None and quantity < 0:
            raise ValueError("stock is never negative")
        with self.lock:
            listing = self.listing(key)
            return self._apply(
                StockChange(listing.id, stock=quantity, always=always_in_stock, policy=None)
            )

    # --- orders --------------------------------------------------------------------

    def place_order(
        self,
        lines: Mapping[str, int],
        *,
        status: str = "ankor_confirmed",
        force: bool = False,
        retailer_id: str | None = None,
    ) -> SimOrder:
        """A retailer orders ``packs`` per variant (SKU or id); reserves pieces.

        Refused (:class:`~syncd.sandbox.ankorstore_orders.OrderError`) when a
        line exceeds ``availableQuantity`` unless ``force`` -- Ankorstore's
        ``deny`` policy rejects orders once available stock is gone (spec).
        """
        with self.lock:
            merged: dict[str, int] = {}
            for key, packs in lines.items():
                listing_id = self.listing(key).id
                merged[listing_id] = merged.get(listing_id, 0) + packs
            pairs = [(self.listings[i], packs) for i, packs in merged.items()]
            return self._orders.place(
                pairs, status=status, now=self.clock.now(), force=force, retailer_id=retailer_id
            )

    def advance_order(self, order_id: str, status: str, *, force: bool = False) -> SimOrder:
        with self.lock:
            return self._orders.advance(
                order_id, status, self.listings, now=self.clock.now(), force=force
            )

    def accept_order(self, order_id: str, packs: Mapping[str, int] | None = None) -> SimOrder:
        """Brand accepts, optionally reducing line quantities (keys: SKU or variant id)."""
        with self.lock:
            reduced = {self.listing(k).id: v for k, v in (packs or {}).items()}
            return self._orders.reduce(order_id, reduced, self.listings, now=self.clock.now())

    def ship_order(self, order_id: str) -> SimOrder:
        """Accept if still ``ankor_confirmed``, then ship: releases the hold, lowers stock."""
        with self.lock:
            if self._orders.get(order_id).status == "ankor_confirmed":
                self.advance_order(order_id, "brand_confirmed")
            return self.advance_order(order_id, "shipped")

    def cancel_order(self, order_id: str) -> SimOrder:
        return self.advance_order(order_id, "cancelled")

    def order(self, order_id: str) -> SimOrder:
        with self.lock:
            return self._orders.get(order_id)

    def orders(self) -> list[SimOrder]:
        """Every order, newest first (the list endpoint's order)."""
        with self.lock:
            return self._orders.newest_first()

    # --- introspection -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_sandbox/state`` returns."""
        with self.lock:
            return {
                "counters": self.counters.to_json(),
                "rate": {"accepted": self.rate.accepted, "rejected": self.rate.rejected},
                "atomicOperations": self.atomic_operations,
                "clock": self.clock.now(),
                "variants": [listing.summary() for listing in self.listings.values()],
                "orders": [
                    {
                        "id": order.id,
                        "status": order.status,
                        "items": [
                            {
                                "sku": self.listings[item.listing_id].sku,
                                "variantId": item.listing_id,
                                "quantity": item.quantity,
                                "multipliedQuantity": item.multiplied_quantity,
                            }
                            for item in order.items
                        ],
                    }
                    for order in self._orders.all()
                ],
                "astral": self.astral.summary(),
            }
