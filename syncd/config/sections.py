"""`[daemon]`, `[sources.*]`, `[handover]` and `[channels.*]`.

A source or channel section that is absent is disabled; one that is present
is enabled unless it says ``enabled = false``. Every default below is chosen
so that a minimal file only names what it uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from syncd.config.fields import (
    ConfigPath,
    Count,
    LocationName,
    LocationRef,
    NonEmpty,
    OptionalConfigPath,
    Rate,
    Seconds,
    Section,
    Share,
    check_path_template,
    present_sections,
)

# --- daemon ------------------------------------------------------------------


class DaemonSection(Section):
    """``[daemon]``: where syncd keeps its ledger and how it runs."""

    database: ConfigPath = Path("/var/lib/syncd/ledger.db")
    status_socket: ConfigPath = Path("/run/syncd/status.sock")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Events below this level are not written; a reload (SIGHUP) applies a new one."""
    cycle_interval: Seconds = 30.0
    shutdown_timeout: Seconds = 8.0
    lock_file: OptionalConfigPath = None
    """Default: ``<database>.lock`` next to the ledger's resolved path (see `lock_path`)."""
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    """Serve Prometheus text on ``127.0.0.1:<port>/metrics``; off when absent. Read at start.

    0 lets the kernel pick a free port, logged as ``metrics.listening``: a port
    probed free and then bound by syncd could be taken by anyone in between.
    """

    @property
    def lock_path(self) -> Path:
        """The lock file actually used.

        Keyed by the ledger's resolved path (``os.path.realpath``): a config
        that reaches the same file through a symlink, or through a symlinked
        directory, finds the same lock, so it cannot start a second writer.
        """
        if self.lock_file is not None:
            return self.lock_file
        real = Path(os.path.realpath(self.database))
        return real.with_name(real.name + ".lock")


# --- sources -----------------------------------------------------------------


class SourceSection(Section):
    API: ClassVar[str]
    """The ``[apis.*]`` section this source reads through (one client per API, shared)."""

    enabled: bool = True
    poll_interval: Seconds
    stale_after: Seconds
    """A source whose last successful read is older than this is stale."""


class ActiveAntsSourceSection(SourceSection):
    """``[sources.activeants]``: warehouse stock from ``v2/stock/bulk`` (seed 001 L2852-2952)."""

    API: ClassVar[str] = "activeants"

    poll_interval: Seconds = 60.0
    full_reconcile_interval: Seconds = 86_400.0
    """Full ``all_products=true`` reads are "intensive ... used sparingly" (seed 001 L2685)."""
    stock_field: Literal["availableStock", "freeStock", "economicStock"] = "availableStock"
    """``availableStock`` is the only quantity defined by formula (seed 001 L2743); ``stock``
    changes meaning per product (L2648, L2910) and is not offered."""
    location: LocationName = "activeants"
    stale_after: Seconds = 900.0


class AstralSourceSection(SourceSection):
    """``[sources.astral]``: ASTRAL postings feed and stock state (seed 000 L13097-13171)."""

    API: ClassVar[str] = "ankorstore"
    """ASTRAL lives on Ankorstore's API, with its orders and the channel (seed 000 L13045-13078)."""

    poll_interval: Seconds = 30.0
    reconcile_interval: Seconds = 3_600.0
    page_size: Annotated[int, Field(ge=1)] = 100
    """``page[limit]``; the API default is 10 (seed 000 L13202-13206)."""
    location_prefix: LocationName = "astral"
    """ASTRAL locations become ``<prefix>:<location uuid>``."""
    stale_after: Seconds = 600.0


class OrderSourceSection(SourceSection):
    """``[sources.ankorstore_orders]``, ``[sources.fabric_orders]``, ``[sources.fashiontrade]``."""

    poll_interval: Seconds = 120.0
    fulfilled_from: LocationRef = "activeants"
    """The location whose stock these orders consume, i.e. where their reservations sit."""
    stale_after: Seconds = 900.0


class AnkorstoreOrdersSection(OrderSourceSection):
    """``[sources.ankorstore_orders]``: orders in the statuses that hold stock (seed 000)."""

    API: ClassVar[str] = "ankorstore"

    page_size: Annotated[int, Field(ge=1, le=100)] = 100
    """``page[limit]`` of the orders list; larger pages mean fewer requests from the
    budget the Ankorstore channel shares."""


def _check_fabric_orders_path(value: str) -> str:
    check_path_template(value, frozenset({"brand_id", "retailer_id"}), frozenset())
    if not value.endswith("/"):
        # fabric paths end with a slash (DRF); without it a GET is redirected (brief 2.6).
        raise ValueError("must end with '/'")
    return value


class FabricOrdersSection(OrderSourceSection):
    """``[sources.fabric_orders]``: open fabric order lines (``quantity_open``, seed 003)."""

    API: ClassVar[str] = "fabric"

    orders_path: Annotated[str, AfterValidator(_check_fabric_orders_path)] = (
        "/v1/brands/{brand_id}/orders/"
    )
    """The supplier-side orders list. The seed documents only the retailer side
    (``/v1/retailers/{retailer_id}/orders/``); both placeholders are filled from
    ``[apis.fabric]`` so the path can be corrected without a release."""
    status_filter: str | None = "open"
    """``status`` query filter; empty string or absent key in TOML keeps the default."""


class FashionTradeSourceSection(OrderSourceSection):
    """``[sources.fashiontrade]``: there is no "updated since" filter (seed 002), so
    recent orders are re-listed by creation date and older open ones swept."""

    API: ClassVar[str] = "fashiontrade"

    lookback: Seconds = 30 * 86_400.0
    """Orders created within this window are re-listed every poll."""
    sweep_interval: Seconds = 86_400.0
    """How often orders older than ``lookback`` that still reserve are re-read one by one."""
    lines_max_age: Annotated[float, Field(ge=0)] = 3_600.0
    max_order_requests: Annotated[int, Field(ge=1)] = 200
    """Upper bound of requests one poll may spend; a poll that hits it releases nothing."""


class SourcesSection(Section):
    activeants: ActiveAntsSourceSection | None = None
    astral: AstralSourceSection | None = None
    ankorstore_orders: AnkorstoreOrdersSection | None = None
    fabric_orders: FabricOrdersSection | None = None
    fashiontrade: FashionTradeSourceSection | None = None

    def configured(self) -> dict[str, SourceSection]:
        """Sources present in the file (enabled or not) by name, in the fields' order."""
        return present_sections(self, SourceSection)

    def enabled(self) -> dict[str, SourceSection]:
        """Enabled sources by name, in a fixed order: stock sources before order feeds."""
        return {name: s for name, s in self.configured().items() if s.enabled}

    def order_feeds(self) -> dict[str, OrderSourceSection]:
        """Enabled order feeds by name (the sources that record reservations)."""
        return {
            name: section
            for name, section in self.enabled().items()
            if isinstance(section, OrderSourceSection)
        }


# --- handover ----------------------------------------------------------------


def _check_reference(value: str) -> str:
    return check_path_template(value, frozenset({"order_ref"}), frozenset({"order_ref"}))


ReferenceTemplate = Annotated[str, AfterValidator(_check_reference)]


class ReferenceTemplatesSection(Section):
    """The warehouse order number each channel's orders carry, built from the channel's ref."""

    ankorstore: ReferenceTemplate = "{order_ref}"
    fabric: ReferenceTemplate = "{order_ref}"
    fashiontrade: ReferenceTemplate = "{order_ref}"


class HandoverSection(Section):
    """``[handover]``: when a channel order stops reserving because the warehouse has it.

    Once Active Ants holds an order, its ``availableStock`` already reflects it,
    so keeping the channel's reservation would subtract it twice. The join key
    is Active Ants' ``externalOrderNumber`` (seed 001 L437-441; brief
    seed-activeants 4.3). The default, ``none``, keeps every reservation until
    the channel reports the order shipped or cancelled: it can only undersell
    for a while, never oversell, and needs no knowledge of how orders reach the
    warehouse.
    """

    API: ClassVar[str] = "activeants"
    """``external_reference`` asks Active Ants which channel orders it already holds."""

    match: Literal["external_reference", "none"] = "none"
    reference_templates: ReferenceTemplatesSection = Field(
        default_factory=ReferenceTemplatesSection
    )
    batch_size: Annotated[int, Field(ge=1, le=100)] = 50
    """Order references asked of Active Ants per request (its page size is 100)."""
    max_requests_per_poll: Annotated[int, Field(ge=1)] = 20
    """Active Ants requests one handover lookup may spend; the rest waits for the next poll."""


# --- channels ----------------------------------------------------------------


class ChannelSection(Section):
    """Rule and safety keys every channel has."""

    API: ClassVar[str]
    """The ``[apis.*]`` section this channel writes through (shared with the sources on it)."""

    enabled: bool = True
    locations: Annotated[list[LocationRef], Field(min_length=1)]
    """The stock pool: location names or ``prefix:*`` (``available`` status only)."""
    buffer: Count = 0
    percentage: Annotated[float, Field(ge=0, le=100)] = 100.0
    cap: Count | None = None
    pack_rounding: bool = True
    drift_policy: Literal["protect", "overwrite", "report"] = "protect"
    """What a read-back does when the channel holds another value than syncd last had
    confirmed: ``protect`` corrects a higher one at once and reports a lower one;
    ``overwrite`` corrects both (a lower one once it is seen twice, after a fresh
    order read); ``report`` only reports. At start every difference is corrected."""
    readback_interval: Seconds = 3_600.0
    """Seconds between read-backs (0: only the one at start)."""
    max_zero_share: Share = 0.2
    """Hold a cycle that would zero more than this share of the channel's catalog."""
    max_change_share: Share = 0.5
    """Hold a cycle that would change more than this share of the channel's catalog."""
    min_catalog_for_share_check: Count = 20
    """The share checks only apply to catalogs at least this large."""
    confirm_increase_after_zero: bool = True
    """A SKU going from 0 back up waits one more cycle to confirm the read."""
    block_on_stale_source: bool = True
    """Push nothing computed from a stale source."""
    budget_share: Annotated[float, Field(gt=0, le=1)] = 0.8
    """Share of the API's rate budget this channel may spend; the rest is left to sources."""


class AnkorstoreChannelSection(ChannelSection):
    """``[channels.ankorstore]``: bulk ``POST /api/v1/operations`` (seed 000 L636-669)."""

    API: ClassVar[str] = "ankorstore"

    always_in_stock: Literal["leave", "manage"] = "leave"
    """``leave``: never push to variants flagged ``isAlwaysInStock``; ``manage``: push a
    quantity, which resets the flag (seed 000 L620)."""
    operations_per_request: Annotated[int, Field(ge=1, le=50)] = 50
    """Up to 50 operations per request (seed 000 L645, L12866)."""
    reserved_max_age: Seconds | None = None
    """No longer used and ignored: ``stockQuantity`` is computed from the ledger's view
    of Ankorstore's own orders, without reading ``reservedQuantity`` first. Accepted so
    that existing configs keep loading."""


_FABRIC_FIELDS = frozenset({"brand_id", "inventory_id"})


def _check_write_path(value: str) -> str:
    return check_path_template(value, _FABRIC_FIELDS, frozenset({"inventory_id"}))


def _check_list_path(value: str) -> str:
    return check_path_template(value, frozenset({"brand_id"}), frozenset())


def _check_json_field(value: str) -> str:
    if not value.isidentifier():
        raise ValueError(f"{value!r} is not a JSON field name")
    return value


class FabricChannelSection(ChannelSection):
    """``[channels.fabric]``: one write per SKU on the supplier inventory resource.

    The write is not in the seed; fabric's public docs point to ``PATCH
    /v1/brands/{brand_id}/inventory/{id}/`` with an absolute ``inventory``
    (brief fabric-supplier-api 0, 3), so method, paths and body field are
    configurable.
    """

    API: ClassVar[str] = "fabric"

    pack_rounding: bool = False
    """fabric sells single units; pack sizes are Ankorstore's."""
    write_method: Literal["PATCH", "PUT", "POST"] = "PATCH"
    write_path: Annotated[NonEmpty, AfterValidator(_check_write_path)] = (
        "/v1/brands/{brand_id}/inventory/{inventory_id}/"
    )
    list_path: Annotated[NonEmpty, AfterValidator(_check_list_path)] = (
        "/v1/brands/{brand_id}/inventory/"
    )
    """Where the SKU -> inventory id map is read from (unverified; brief fabric-supplier-api 1)."""
    write_body: Annotated[str, AfterValidator(_check_json_field)] = "inventory"
    """The JSON field carrying the absolute quantity."""
    readback: bool = True
    """Confirm each write by reading the item back."""
    requests_per_minute: Rate | None = None
    """Cap on this channel's own write pace (default: budget_share of apis.fabric's rate)."""


class ChannelsSection(Section):
    ankorstore: AnkorstoreChannelSection | None = None
    fabric: FabricChannelSection | None = None

    def configured(self) -> dict[str, ChannelSection]:
        """Channels present in the file (enabled or not) by name, in the fields' order."""
        return present_sections(self, ChannelSection)

    def enabled(self) -> dict[str, ChannelSection]:
        """Enabled channels by name, in a fixed order."""
        return {name: s for name, s in self.configured().items() if s.enabled}


CHANNEL_NAMES = frozenset(ChannelsSection.model_fields)
"""Channels syncd can publish to (the values allowed in a catalog row's ``channels``)."""
