"""Validate HTTP exchanges captured from httpx against the published OpenAPI specs.

Usage (any test that talks to a simulator or records a client's traffic)::

    checker = spec_checker("ankorstore-stock-openapi.json")  # skips if specs are absent
    recorder = Recorder()
    client = httpx.Client(base_url=url, event_hooks=recorder.sync_hooks())
    ...  # exercise the client
    checker.assert_conforms(recorder.exchanges)

``AsyncClient`` takes ``recorder.async_hooks()`` instead. Only operations the
spec describes are checked; :attr:`SpecChecker.skipped` lists what was not.

The specs live outside the repository (``<repo>/../shared/specs``, see
SOURCES.md there). Known upstream defects are handled here, explicitly:

- **429 is documented only in prose** (seed 000 L223-226), on no operation:
  a 429 answer is checked for the rate-limit headers and a JSON:API
  ``errors`` body instead of against the spec.
- **ASTRAL ``PATCH /api/astral/v1/stock/state``**: the spec's own example
  request fails its schema (``locationType`` and ``unitMultiplier`` are
  required on request items). :func:`relax_astral_patch_state` drops those
  two from the request schema only.
- **ASTRAL security**: the ASTRAL spec declares only a session cookie while
  the prose uses OAuth2 Bearer; the merged documents apply the Ankorstore
  OAuth2 scheme, which openapi-core does not enforce, so security is not
  checked here (the simulator tests check 401s themselves).
- ``/oauth/token`` and ``/api/v1/me`` are in no spec (seed-only, L145-198).
- ``include`` is declared as one enum value although the docs combine values
  with commas (seed 000 L37, L3258): send one value when validating.

Every defect, with its source, is also listed by name in
:data:`tests.conformance.defects.KNOWN_DEFECTS`; findings a defect explains
are dropped by :meth:`SpecChecker.findings` and counted in
:attr:`SpecChecker.allowed`.
"""

from __future__ import annotations

import copy
import functools
import json
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conformance.defects import explaining

SPECS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
SERVER = "https://www.ankorstore.com"
"""Every Ankorstore/ASTRAL spec lists this server; requests are re-hosted onto it."""


def specs_dir() -> Path:
    """The shared specs folder, or skip the calling test cleanly when it is absent."""
    if not SPECS_DIR.is_dir():
        pytest.skip(f"API specs not found at {SPECS_DIR}")
    return SPECS_DIR


# --- spec loading ---------------------------------------------------------------------


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def subset(document: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A self-contained copy of ``document`` holding only ``paths`` and what they reference.

    The full merged Ankorstore document takes ~9 s to load in openapi-core;
    the handful of operations a test needs load in well under a second.
    """
    wanted = {p: document["paths"][p] for p in paths}
    out: dict[str, Any] = {
        key: copy.deepcopy(document[key])
        for key in ("openapi", "info", "servers", "security")
        if key in document
    }
    out["paths"] = copy.deepcopy(wanted)
    components: dict[str, dict[str, Any]] = {
        "securitySchemes": copy.deepcopy(document.get("components", {}).get("securitySchemes", {}))
    }
    pending: set[str] = set()
    _refs(out["paths"], pending)
    done: set[str] = set()
    while pending:
        ref = pending.pop()
        done.add(ref)
        _, section, kind, name = ref.split("/", 3)
        target = document[section][kind][name]
        components.setdefault(kind, {})[name] = copy.deepcopy(target)
        more: set[str] = set()
        _refs(target, more)
        pending |= more - done
    out["components"] = components
    return out


def relax_astral_patch_state(document: dict[str, Any]) -> None:
    """Known defect: PATCH stock/state items need only quantity, locationId, status."""
    operation = document.get("paths", {}).get("/api/astral/v1/stock/state", {}).get("patch")
    if operation is None:
        return
    relaxed = {
        "type": "object",
        "required": ["quantity", "locationId", "status"],
        "properties": {
            "quantity": {"type": "integer"},
            "locationId": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": ["available", "onHand"]},
            "lot": {"type": "object"},
        },
    }
    for content in operation.get("requestBody", {}).get("content", {}).values():
        schema = content.get("schema", {})
        items = schema.get("properties", {}).get("data", {}).get("items", {})
        quantities = items.get("properties", {}).get("attributes", {}).get("properties", {})
        if "quantities" in quantities:
            quantities["quantities"]["items"] = relaxed


def normalise_openapi_31(node: Any) -> None:
    """Repair two OpenAPI 3.0 leftovers inside these 3.1 documents, in place.

    - ``nullable: true`` means nothing in 3.1, so ``{"type": "string",
      "nullable": true}`` rejects the ``null`` the seed documents ("string or
      null": ASTRAL ``links.next``, ``meta.page.from``, lot ``expiryDate``,
      variant ``availableAt``, seed 000 L13297-13322, L1549-1552). It becomes
      ``"type": ["string", "null"]``.
    - ``format: int`` (ASTRAL ``page[limit]``) is no format openapi-core knows
      and makes every ASTRAL request "invalid"; it is dropped.
    """
    if isinstance(node, dict):
        if "in" in node and isinstance(node.get("schema"), dict):
            # Parameters: openapi-core reads a parameter's type as one string,
            # and a null never arrives in a query or header anyway.
            node["schema"].pop("nullable", None)
        if node.pop("nullable", False) is True:
            kind = node.get("type")
            if isinstance(kind, str):
                node["type"] = [kind, "null"]
            elif isinstance(kind, list) and "null" not in kind:
                kind.append("null")
            if isinstance(node.get("enum"), list) and None not in node["enum"]:
                node["enum"].append(None)
        if node.get("format") == "int":
            del node["format"]
        for value in node.values():
            normalise_openapi_31(value)
    elif isinstance(node, list):
        for value in node:
            normalise_openapi_31(value)


def allow_included_on_variant_list(document: dict[str, Any]) -> None:
    """Known defect: ``GET /api/v1/product-variants`` documents ``include=product``
    but its 200 schema forbids any top-level member besides data/meta/links/jsonapi."""
    operation = document.get("paths", {}).get("/api/v1/product-variants", {}).get("get")
    if operation is None:
        return
    for content in operation["responses"]["200"].get("content", {}).values():
        properties = content.get("schema", {}).get("properties")
        if isinstance(properties, dict) and "included" not in properties:
            properties["included"] = {"type": "array", "items": {"type": "object"}}


@functools.cache
def _load_json(filename: str) -> dict[str, Any]:
    with (specs_dir() / filename).open(encoding="utf-8") as handle:
        document: dict[str, Any] = json.load(handle)
    return document


@functools.cache
def load_openapi(filename: str, paths: tuple[str, ...] | None = None) -> Any:
    """An ``openapi_core.OpenAPI`` for ``filename`` (optionally only ``paths``), patched."""
    from openapi_core import Config, OpenAPI

    document = _load_json(filename)
    document = subset(document, paths) if paths is not None else copy.deepcopy(document)
    relax_astral_patch_state(document)
    allow_included_on_variant_list(document)
    normalise_openapi_31(document)
    # The documents were validated when they were converted (SOURCES.md);
    # re-validating the spec here costs seconds per load and checks nothing new.
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


# --- exchanges ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    request: httpx.Request
    response: httpx.Response


@dataclass(slots=True)
class Recorder:
    """Collects every request/response pair an httpx client makes (via event hooks)."""

    exchanges: list[Exchange] = field(default_factory=list)

    def _record(self, response: httpx.Response) -> None:
        self.exchanges.append(Exchange(response.request, response))

    def sync_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        def hook(response: httpx.Response) -> None:
            response.read()
            self._record(response)

        return {"response": [hook]}

    def async_hooks(self) -> dict[str, list[Callable[..., Any]]]:
        async def hook(response: httpx.Response) -> None:
            await response.aread()
            self._record(response)

        return {"response": [hook]}


class _SpecRequest:
    """openapi-core's Request protocol over an ``httpx.Request``, re-hosted on :data:`SERVER`."""

    def __init__(self, request: httpx.Request, server: str) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        url = urlsplit(str(request.url))
        self.host_url = server
        self.path = url.path
        self.method = request.method.lower()
        self.body: bytes | None = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query, keep_blank_values=True)),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict({}),
        )


class _SpecResponse:
    def __init__(self, response: httpx.Response) -> None:
        from werkzeug.datastructures import Headers

        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(dict(response.headers))


def _describe(errors: Iterable[Exception]) -> list[str]:
    """One line per finding: where in the document and what is wrong (not the whole body)."""
    messages = []
    for error in errors:
        cause = error.__cause__
        schema_errors = getattr(cause, "schema_errors", None) or getattr(
            error, "schema_errors", None
        )
        if schema_errors:
            detail = "; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
                for e in schema_errors
            )
        else:
            detail = str(cause or error)[:300]
        messages.append(f"{type(error).__name__}: {detail}")
    return messages


def _check_429(response: httpx.Response) -> list[str]:
    problems = [
        f"429 without {name}"
        for name in ("Retry-After", "X-RateLimit-Reset", "X-RateLimit-Remaining")
        if name not in response.headers
    ]
    try:
        body = response.json()
    except ValueError:
        return [*problems, "429 body is not JSON"]
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        problems.append("429 body has no errors array")
    return problems


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with an exchange: in the ``request`` or the ``response``."""

    part: str
    message: str


def _label(exchange: Exchange) -> str:
    request = exchange.request
    return f"{request.method} {request.url.path} -> {exchange.response.status_code}"


@dataclass(slots=True)
class SpecChecker:
    openapi: Any
    server: str = SERVER
    skipped: list[str] = field(default_factory=list)
    checked: dict[str, set[int]] = field(default_factory=dict)
    """operationId -> response statuses validated against the spec."""
    allowed: Counter[str] = field(default_factory=Counter)
    """KnownDefect name -> findings it explained (and that were dropped)."""
    undocumented: Sequence[tuple[str, str, int]] = ()
    """(method, path prefix, status) answers the simulator gives deliberately that the
    spec lacks (e.g. 400 for a bad ``page[limit]`` on product variants): not checked."""

    def operation_id(self, request: httpx.Request) -> str | None:
        """The spec's operationId for ``request``, or None when the spec lacks it."""
        from openapi_core.templating.paths.exceptions import PathError

        finder = self.openapi.request_validator.path_finder
        try:
            found = finder.find(request.method.lower(), self.server + request.url.path)
        except PathError:
            return None
        operation_id: str = (found.operation / "operationId").read_str("")
        return operation_id or f"{request.method} {found.path_result.pattern}"

    def undeclared_query(self, request: httpx.Request) -> list[str]:
        """Query parameters ``request`` sends that its operation does not declare.

        openapi-core ignores them, but an API ignores them too: a filter it
        does not know filters nothing, which is worth a finding.
        """
        from openapi_core.templating.paths.exceptions import PathError

        finder = self.openapi.request_validator.path_finder
        try:
            found = finder.find(request.method.lower(), self.server + request.url.path)
        except PathError:
            return []
        declared: set[str] = set()
        for owner in (found.path, found.operation):
            if "parameters" in owner:
                for parameter in owner / "parameters":
                    if (parameter / "in").read_str() == "query":
                        declared.add((parameter / "name").read_str())
        sent = dict.fromkeys(key for key, _ in request.url.params.multi_items())
        return [name for name in sent if name not in declared]

    def problems(self, exchange: Exchange, *, check_request: bool = True) -> list[str]:
        """What is wrong with one exchange ([] when it conforms or is out of scope).

        ``check_request=False`` for requests a test makes invalid on purpose
        (a negative ``stockQuantity``...): only the answer is checked then.
        """
        label = _label(exchange)
        return [
            f"{label} {f.part}: {f.message}"
            for f in self.findings(exchange, check_request=check_request)
        ]

    def findings(
        self, exchange: Exchange, *, check_request: bool = True, check_response: bool = True
    ) -> list[Finding]:
        """:meth:`problems`, unformatted: which part (request/response) and what is wrong.

        ``check_response=False`` when the answer is not the API's own (an
        injected fault answered instead): only the request is checked.
        """
        request, response = exchange.request, exchange.response
        operation_id = self.operation_id(request)
        if operation_id is None:
            self.skipped.append(_label(exchange))
            return []
        spec_request = _SpecRequest(request, self.server)
        found: list[Finding] = []
        with warnings.catch_warnings():
            # Spec-side notices, not findings: the OAuth2 scheme openapi-core cannot
            # check, and upstream's deprecated ``allowEmptyValue`` on order filters.
            warnings.filterwarnings("ignore", "Unsupported scheme type")
            warnings.filterwarnings("ignore", "Use of allowEmptyValue property is deprecated")
            if check_request:
                found += self._request_findings(spec_request, request)
            if check_response:
                found += self._response_findings(spec_request, exchange)
        self.checked.setdefault(operation_id, set()).add(response.status_code)
        kept = []
        for finding in found:
            defect = explaining(operation_id, finding.part, finding.message)
            if defect is None:
                kept.append(finding)
            else:
                self.allowed[defect.name] += 1
        return kept

    def _request_findings(
        self, spec_request: _SpecRequest, request: httpx.Request
    ) -> list[Finding]:
        from openapi_core.validation.request.exceptions import SecurityValidationError

        # Validation only (no unmarshalling): several times faster on the
        # large order schemas, and the findings are the same.
        errors = [
            e
            for e in self.openapi.request_validator.iter_errors(spec_request)
            if not isinstance(e, SecurityValidationError)
        ]
        return [Finding("request", m) for m in _describe(errors)] + [
            Finding("request", f"query parameter {name!r} is not declared")
            for name in self.undeclared_query(request)
        ]

    def _response_findings(self, spec_request: _SpecRequest, exchange: Exchange) -> list[Finding]:
        request, response = exchange.request, exchange.response
        if response.status_code == 429:
            return [Finding("response", p) for p in _check_429(response)]
        for method, prefix, status in self.undocumented:
            if (
                request.method == method
                and request.url.path.startswith(prefix)
                and response.status_code == status
            ):
                self.skipped.append(_label(exchange))
                return []
        errors = self.openapi.response_validator.iter_errors(spec_request, _SpecResponse(response))
        return [Finding("response", m) for m in _describe(errors)]

    def assert_conforms(
        self,
        exchanges: Iterable[Exchange],
        *,
        invalid_on_purpose: Callable[[Exchange], bool] | None = None,
    ) -> None:
        """Every exchange conforms; ``invalid_on_purpose`` marks requests whose answer only is checked."""
        problems = [
            p
            for exchange in exchanges
            for p in self.problems(
                exchange,
                check_request=not (invalid_on_purpose and invalid_on_purpose(exchange)),
            )
        ]
        assert not problems, "\n".join(problems)


def spec_checker(filename: str, paths: Sequence[str] | None = None, **options: Any) -> SpecChecker:
    """A :class:`SpecChecker` for one spec file (skips the test when the specs are absent)."""
    specs_dir()
    return SpecChecker(
        load_openapi(filename, tuple(paths) if paths is not None else None), **options
    )
