"""`[apis.*]`: how to reach each remote API -- base URL, credentials, limits.

One section per API, not per integration: ASTRAL, Ankorstore orders and the
Ankorstore channel share one OAuth client and one rate budget (seed 000
L202-206, L228), so they share ``[apis.ankorstore]``.

Each secret can be given three ways -- ``<name>_file`` (a path, or a systemd
credential name), ``<name>_env`` (an environment variable) or ``<name>``
inline -- and is resolved once at load time (see `syncd.config.credentials`).
`ApiSection.secret` hands out the resolved value.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, PrivateAttr, SecretStr

from syncd.config.fields import (
    BaseUrl,
    ByteSize,
    Limit,
    NonEmpty,
    Seconds,
    Section,
    Url,
    present_sections,
)

Secret = SecretStr
"""A resolved secret: ``str()``, ``repr()`` and JSON dumps show ``**********``."""


DEFAULT_DEADLINE = 120.0
"""Seconds one HTTP exchange may take in all, body included (per-read timeouts
alone let a server dripping a byte at a time hold a request for hours)."""

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""Largest listing body read: a JSON:API page of 100 orders with items is well under 1 MB."""


def _at_most(ceiling: int, what: str) -> AfterValidator:
    """Refuse a limit above what the vendor documents: syncd may be told to send less, never more."""

    def check(value: int) -> int:
        if value > ceiling:
            raise ValueError(
                f"{value} is above Ankorstore's documented limit of {ceiling} {what}; "
                "a lower value is allowed, a higher one would get syncd throttled"
            )
        return value

    return AfterValidator(check)


class ApiSection(Section):
    """Common shape of an API section: which secrets it takes, and their resolved values."""

    SECRETS: ClassVar[tuple[str, ...]] = ()
    """Secret names; each may be given as ``<name>_file``, ``<name>_env`` or ``<name>``."""

    deadline: Seconds = DEFAULT_DEADLINE
    """Longest one request may take, connecting to the last byte of the body."""
    max_response_bytes: ByteSize = DEFAULT_MAX_RESPONSE_BYTES
    """Largest response body read; a larger one fails the request (the token
    endpoint's answer has its own, much smaller cap)."""

    _resolved: dict[str, Secret] = PrivateAttr(default_factory=dict)

    def secret(self, name: str) -> Secret:
        """The resolved secret ``name`` (e.g. ``"client_secret"``).

        Raises `LookupError` when it was not resolved: the section was not
        loaded by `load_config`, or no enabled integration needs this API.
        """
        try:
            return self._resolved[name]
        except KeyError:
            raise LookupError(
                f"secret {name!r} was not resolved (is an integration using this API enabled?)"
            ) from None

    def secret_sources(self, name: str) -> dict[str, str | Secret]:
        """The ways ``name`` is given in the file: key -> value (the inline value stays masked)."""
        given: dict[str, str | Secret] = {}
        for key in (f"{name}_file", f"{name}_env", name):
            value = getattr(self, key)
            if value is not None:
                given[key] = value
        return given

    def set_resolved(self, name: str, value: Secret) -> None:
        """Record a resolved secret (used by the loader)."""
        self._resolved[name] = value


class AnkorstoreApiSection(ApiSection):
    """Ankorstore's public API, ASTRAL included: OAuth2 client credentials (seed 000 L137-198)."""

    SECRETS: ClassVar[tuple[str, ...]] = ("client_secret",)

    base_url: BaseUrl = "https://www.ankorstore.com"
    client_id: NonEmpty
    client_secret_file: NonEmpty | None = None
    client_secret_env: NonEmpty | None = None
    client_secret: Secret | None = None
    # Documented limits for authenticated calls (seed 000 L202-206) and for /oauth/token (L228):
    # the defaults, and the most syncd accepts.
    requests_per_minute: Annotated[Limit, _at_most(600, "requests per minute")] = 600
    requests_per_hour: Annotated[Limit, _at_most(24_000, "requests per hour")] = 24_000
    requests_per_day: Annotated[Limit, _at_most(288_000, "requests per day")] = 288_000
    token_requests_per_hour: Annotated[Limit, _at_most(60, "token requests per hour")] = 60
    timeout: Seconds = 30.0


class ActiveAntsApiSection(ApiSection):
    """Active Ants ShopApi: password grant on ``POST token`` (seed 001 L22-97)."""

    SECRETS: ClassVar[tuple[str, ...]] = ("password",)

    # The seed has no host; this one is from public vendor documentation (brief seed-activeants 2.1).
    base_url: BaseUrl = "https://shopapi.activeants.nl"
    username: NonEmpty
    password_file: NonEmpty | None = None
    password_env: NonEmpty | None = None
    password: Secret | None = None
    timeout: Seconds = 30.0
    # A full `v2/stock/bulk` read lists every product in one answer (seed 001 L2868) and
    # is "an intensive operation" (L2685): more room and more time than a page.
    deadline: Seconds = 600.0
    max_response_bytes: ByteSize = 256 * 1024 * 1024
    # No limit is documented (brief seed-activeants 5.1): pace ourselves gently.
    requests_per_minute: Limit = 120


def _check_fabric_base(value: str) -> str:
    if value.endswith("/v1"):
        # Documented paths already start with /v1/ (seed 003 L27 vs L39): joining would give /v1/v1/.
        raise ValueError("drop the trailing /v1: syncd's fabric paths already start with /v1/")
    return value


class FabricApiSection(ApiSection):
    """fabric Marketplace (Dropship), supplier side; OAuth2 client credentials (seed 003 L29-41)."""

    SECRETS: ClassVar[tuple[str, ...]] = ("client_secret",)

    base_url: Annotated[BaseUrl, AfterValidator(_check_fabric_base)] = (
        "https://marketplace-api.fabric.inc"
    )
    auth_url: Url
    """The token URL. Not in the seed (L34 is truncated): copy the "Authentication URL" the
    fabric API-client page shows (brief fabric-supplier-api 8)."""
    client_id: NonEmpty
    client_secret_file: NonEmpty | None = None
    client_secret_env: NonEmpty | None = None
    client_secret: Secret | None = None
    brand_id: NonEmpty
    """The supplier id in ``/v1/brands/{brand_id}/...``."""
    retailer_id: NonEmpty | None = None
    """Optional retailer id, for retailer-side reads (``/v1/retailers/{id}/inventory/``)."""
    # fabric documents no rate limit (brief seed-fabric 2.3): start conservative, obey 429.
    requests_per_minute: Limit = 60
    timeout: Seconds = 30.0


class FashionTradeApiSection(ApiSection):
    """FashionTrade order integration: static API key sent as a bearer token (seed 002 L1742-1750)."""

    SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)

    base_url: BaseUrl = "https://api.fashiontrade.com/order-integration"
    api_key_file: NonEmpty | None = None
    api_key_env: NonEmpty | None = None
    api_key: Secret | None = None
    # No limit is documented (brief seed-fashiontrade 2.3).
    requests_per_minute: Limit = 60
    timeout: Seconds = 30.0


class ApisSection(Section):
    """``[apis]``: only the APIs an enabled integration uses need to be present."""

    ankorstore: AnkorstoreApiSection | None = None
    activeants: ActiveAntsApiSection | None = None
    fabric: FabricApiSection | None = None
    fashiontrade: FashionTradeApiSection | None = None

    def present(self) -> dict[str, ApiSection]:
        """The configured API sections by name."""
        return present_sections(self, ApiSection)
