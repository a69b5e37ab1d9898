"""Check traffic recorded from the sandbox simulators against the published API specs.

Every :class:`~syncd.sandbox.traffic.Exchange` a simulator recorded is put
in one of three places, and nothing falls through:

- **spec-checked**: the request syncd sent is validated against the spec
  that covers its path (:data:`SPEC_ROUTES`), and so is the answer the
  simulator gave (unless an injected fault answered instead -- see
  :mod:`syncd.sandbox.traffic`);
- **out of scope, by name**: routes no published document covers
  (:data:`OUT_OF_SCOPE`, each with the reason);
- **a violation**: anything else, including a route on an Ankorstore or
  fabric host that neither list names.

Findings that an upstream spec defect explains are not violations: each is
matched by a named entry of :data:`tests.conformance.defects.KNOWN_DEFECTS`
(tied to SOURCES.md or to the seed/brief line that shows the spec is wrong)
and counted in :attr:`Report.allowed`, so the allow-list stays visible and
cannot grow into a blanket ignore.

Parsed specs are cached for the whole session (:func:`specs.load_openapi`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from syncd.sandbox.traffic import Answer, Exchange
from tests.conformance import specs

STOCK_SPEC = "ankorstore-stock-openapi.json"
ORDERS_SPEC = "ankorstore-openapi.json"
ORDER_PATHS = ("/api/v1/orders", "/api/v1/orders/{order}")
"""The full merged document takes ~9 s to load; the order paths alone well under 1 s."""
FABRIC_SPEC = "fabric-inventory-openapi.json"
FABRIC_SERVER = "https://api.fabric.inc"
"""The fabric document's server is ``https://api.fabric.inc/v3``: its paths are
matched as ``/v3/...`` on this host (SOURCES.md, fabric section)."""


INVALID_ON_PURPOSE = "x-test-invalid"
"""A request header a test sets on a request it breaks on purpose (to provoke a 415
or a 422): only the simulator's answer to it is checked."""


@dataclass(frozen=True, slots=True)
class SpecRoute:
    """Paths of one API that a published document covers."""

    api: str
    prefix: str
    spec: str


SPEC_ROUTES: tuple[SpecRoute, ...] = (
    SpecRoute("ankorstore", "/api/v1/product-variants", STOCK_SPEC),
    SpecRoute("ankorstore", "/api/v1/operations", STOCK_SPEC),
    SpecRoute("ankorstore", "/api/astral/v1/stock/", STOCK_SPEC),
    SpecRoute("ankorstore", "/api/v1/orders", ORDERS_SPEC),
    # fabric's v3 Inventory API. syncd talks to fabric Marketplace/Dropship
    # (/v1/...) today, so no recorded request lands here; should syncd ever
    # use the v3 API, its traffic is checked without another change.
    SpecRoute("fabric", "/v3/", FABRIC_SPEC),
)


@dataclass(frozen=True, slots=True)
class OutOfScope:
    """Routes deliberately not checked, and why (method ``*`` = any)."""

    name: str
    api: str
    method: str
    path: re.Pattern[str]
    why: str

    def matches(self, exchange: Exchange) -> bool:
        return (
            exchange.api == self.api
            and self.method in ("*", exchange.method)
            and self.path.fullmatch(exchange.path) is not None
        )


OUT_OF_SCOPE: tuple[OutOfScope, ...] = (
    OutOfScope(
        "ankorstore-oauth-token",
        "ankorstore",
        "POST",
        re.compile(r"/oauth/token"),
        "documented in prose only (seed 000 L145-170): in none of the OpenAPI documents",
    ),
    OutOfScope(
        "ankorstore-me",
        "ankorstore",
        "GET",
        re.compile(r"/api/v1/me"),
        "documented in prose only (seed 000 L174-198): in none of the OpenAPI documents",
    ),
    # The supplier-side write is undocumented: fabric publishes a GET on its
    # "update inventory" page and says suppliers "Send PATCH requests to the
    # Inventory API" (brief fabric-supplier-api.md §0); the body is syncd's
    # best reading, so there is nothing to validate it against.
    OutOfScope(
        "fabric-supplier-write",
        "fabric",
        "PATCH",
        re.compile(r"/v1/brands/\d+/inventory/\d+/"),
        "undocumented supplier write (brief fabric-supplier-api.md §0-§2)",
    ),
    OutOfScope(
        "fabric-marketplace",
        "fabric",
        "*",
        re.compile(r"/v1/(brands|retailers)/\d+/(inventory|orders)/(\d+/)?|/v1/|/auth/token/"),
        "fabric Marketplace/Dropship API (seed 003): SOURCES.md 'Not found: a spec for the "
        "fabric Marketplace API'; the v3 Inventory spec covers other paths",
    ),
    OutOfScope(
        "activeants",
        "activeants",
        "*",
        re.compile(r".*"),
        "SOURCES.md 'Active Ants ShopApi: nothing machine-readable found'",
    ),
    OutOfScope(
        "fashiontrade",
        "fashiontrade",
        "*",
        re.compile(r".*"),
        "no FashionTrade document in ../shared/specs (SOURCES.md lists none)",
    ),
)


# --- loading ---------------------------------------------------------------------------


def fix_fabric_counters(document: dict[str, Any]) -> None:
    """SOURCES.md: ``counters`` values are integers (``{"onHand": 100}``), not objects."""
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("adjustCounterRequest", "updateInventory"):
        counters = schemas.get(name, {}).get("properties", {}).get("counters")
        if isinstance(counters, dict):
            counters["additionalProperties"] = {"type": "integer"}


@functools.cache
def _fabric_openapi() -> Any:
    from openapi_core import Config, OpenAPI

    document = copy.deepcopy(specs._load_json(FABRIC_SPEC))
    fix_fabric_counters(document)
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


def _checker(spec: str) -> specs.SpecChecker:
    if spec == FABRIC_SPEC:
        return specs.SpecChecker(_fabric_openapi(), server=FABRIC_SERVER)
    paths = ORDER_PATHS if spec == ORDERS_SPEC else None
    return specs.SpecChecker(specs.load_openapi(spec, paths))


# --- checking --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    method: str
    path: str
    status: int
    what: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}: {self.what}"


@dataclass(slots=True)
class Report:
    """What a batch of exchanges came to."""

    checked: Counter[str] = field(default_factory=Counter)
    """operationId -> exchanges validated against the spec."""
    statuses: dict[str, set[int]] = field(default_factory=dict)
    """operationId -> the simulator's answer statuses validated."""
    out_of_scope: Counter[str] = field(default_factory=Counter)
    allowed: Counter[str] = field(default_factory=Counter)
    """KnownDefect name -> findings it explained."""
    injected: int = 0
    """Answers that came from an injected fault: only their requests were checked."""
    violations: list[Violation] = field(default_factory=list)

    def describe(self, limit: int = 40) -> str:
        """The violations, one per line (distinct ones, most frequent first)."""
        counted = Counter(str(v) for v in self.violations)
        lines = [f"{n} x {text}" if n > 1 else text for text, n in counted.most_common(limit)]
        if len(counted) > limit:
            lines.append(f"... and {len(counted) - limit} more distinct violations")
        return "\n".join(lines)


def _to_httpx(exchange: Exchange, answer: Answer) -> specs.Exchange:
    url = "http://sandbox" + exchange.path + (f"?{exchange.query}" if exchange.query else "")
    request = httpx.Request(
        exchange.method, url, headers=list(exchange.headers), content=exchange.body
    )
    response = httpx.Response(
        answer.status, headers=list(answer.headers), content=answer.body, request=request
    )
    return specs.Exchange(request, response)


def _spec_route(exchange: Exchange) -> SpecRoute | None:
    return next(
        (
            r
            for r in SPEC_ROUTES
            if r.api == exchange.api
            and httpx.URL("http://sandbox" + exchange.path).path.startswith(r.prefix)
        ),
        None,
    )


@dataclass(frozen=True, slots=True)
class _Verdict:
    operation: str | None
    findings: tuple[specs.Finding, ...]
    allowed: tuple[str, ...]


_VOLATILE = frozenset(
    {"x-request-id", "authorization", "date", "x-ratelimit-remaining", "x-ratelimit-reset"}
)
"""Headers that differ between otherwise identical exchanges and that no spec
constrains (only their presence matters, for a 429): left out of the cache key."""

_verdicts: dict[str, _Verdict] = {}
"""Fingerprint -> verdict, for the session: a daemon polling an idle API sends
the same request and gets the same answer many times over; it is validated once."""


def _fingerprint(exchange: Exchange, answer: Answer | None) -> str:
    digest = hashlib.sha256()

    def add(*parts: str | bytes) -> None:
        for part in parts:
            data = part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big") + data)

    def headers(pairs: Iterable[tuple[str, str]]) -> None:
        for name, value in sorted(pairs):
            add(name, "" if name in _VOLATILE else value)

    add(exchange.api, exchange.method, exchange.path, exchange.query, exchange.body)
    headers(exchange.headers)
    if answer is not None:
        add(str(answer.status), answer.body)
        headers(answer.headers)
    return digest.hexdigest()


def _verdict(exchange: Exchange, checker: specs.SpecChecker) -> _Verdict:
    answer = exchange.answer
    key = _fingerprint(exchange, answer)
    cached = _verdicts.get(key)
    if cached is not None:
        return cached
    converted = _to_httpx(exchange, answer or exchange.delivered)
    operation = checker.operation_id(converted.request)
    if operation is None:
        verdict = _Verdict(None, (), ())
    else:
        before = Counter(checker.allowed)
        findings = checker.findings(
            converted,
            check_request=INVALID_ON_PURPOSE not in converted.request.headers,
            check_response=answer is not None,
        )
        allowed = tuple((checker.allowed - before).elements())
        verdict = _Verdict(operation, tuple(findings), allowed)
    _verdicts[key] = verdict
    return verdict


def check(exchanges: Iterable[Exchange]) -> Report:
    """Validate recorded exchanges; the caller has made sure the specs are present."""
    report = Report()
    checkers: dict[str, specs.SpecChecker] = {}
    for exchange in exchanges:
        route = _spec_route(exchange)
        if route is not None:
            if route.spec not in checkers:
                checkers[route.spec] = _checker(route.spec)
            _check_one(exchange, route, checkers[route.spec], report)
            continue
        scope = next((o for o in OUT_OF_SCOPE if o.matches(exchange)), None)
        if scope is not None:
            report.out_of_scope[scope.name] += 1
            continue
        report.violations.append(
            Violation(
                exchange.method,
                exchange.path,
                exchange.delivered.status,
                f"this {exchange.api} route is in no spec and not on the OUT_OF_SCOPE list",
            )
        )
    return report


def _check_one(
    exchange: Exchange, route: SpecRoute, checker: specs.SpecChecker, report: Report
) -> None:
    answer = exchange.answer
    status = answer.status if answer is not None else exchange.delivered.status
    verdict = _verdict(exchange, checker)
    if verdict.operation is None:
        report.violations.append(
            Violation(exchange.method, exchange.path, status, f"operation not in {route.spec}")
        )
        return
    report.checked[verdict.operation] += 1
    report.allowed.update(verdict.allowed)
    if answer is None:
        report.injected += 1
    else:
        report.statuses.setdefault(verdict.operation, set()).add(answer.status)
    altered = answer is not None and answer != exchange.delivered
    for finding in verdict.findings:
        # Under a malformed_json/lose_response fault the client got something
        # else; what was validated is what the simulator itself answered.
        part = f"{finding.part} (before the injected fault)" if altered else finding.part
        report.violations.append(
            Violation(exchange.method, exchange.path, status, f"{part}: {finding.message}")
        )


def specs_present() -> bool:
    return specs.SPECS_DIR.is_dir()
