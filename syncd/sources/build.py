"""Build one source from its config section, its API client and what the sources share.

:mod:`syncd.integrations` names these builders in the sources' descriptions
and calls them for the enabled sections. The sources borrow their clients
(the Ankorstore one is also ASTRAL's and the Ankorstore channel's: one token,
one budget, seed 000 L200-228); :class:`~syncd.wiring.ApiClients` closes
them, never a source.
"""

from __future__ import annotations

import structlog

from syncd.clock import Clock
from syncd.config import Config
from syncd.config.apis import FabricApiSection
from syncd.config.sections import (
    ActiveAntsSourceSection,
    AnkorstoreOrdersSection,
    AstralSourceSection,
    FabricOrdersSection,
    FashionTradeSourceSection,
)
from syncd.http.client import ApiClient
from syncd.sources.activeants import ActiveAntsStockSource
from syncd.sources.ankorstore_orders import AnkorstoreOrdersSource
from syncd.sources.astral import AstralStockSource
from syncd.sources.base import Source
from syncd.sources.fabric_orders import FabricOrdersSource
from syncd.sources.fashiontrade import FashionTradeOrdersSource
from syncd.sources.handover import WAREHOUSE_FEED, Handover
from syncd.wiring import ApiClients, BuildContext

_log = structlog.get_logger(__name__)


def build_handover(config: Config, clients: ApiClients, clock: Clock) -> Handover | None:
    """The Active Ants handover lookup, or None (``match = "none"``, or no Active Ants client).

    Without a client every order keeps reserving until its channel closes it:
    the safe side, logged so the operator sees why nothing is handed over.
    """
    if config.handover.match != "external_reference":
        return None
    client = clients.get(config.handover.API)
    if client is None:
        _log.warning(
            "handover.disabled",
            reason=f"[handover] match = external_reference needs [apis.{config.handover.API}]",
        )
        return None
    warehouse = config.sources.activeants
    # Release only once the warehouse figure has been read after the handover;
    # without a warehouse stock feed there is nothing to wait for.
    settle = WAREHOUSE_FEED if warehouse is not None and warehouse.enabled else None
    return Handover(
        client,
        config.handover.reference_templates.model_dump(),
        clock=clock,
        settle_feed=settle,
        batch_size=config.handover.batch_size,
        max_requests=config.handover.max_requests_per_poll,
    )


def build_activeants(
    client: ApiClient, section: ActiveAntsSourceSection, ctx: BuildContext
) -> Source:
    return ActiveAntsStockSource(client, ctx.catalog, section, clock=ctx.clock)


def build_astral(client: ApiClient, section: AstralSourceSection, ctx: BuildContext) -> Source:
    return AstralStockSource(client, ctx.catalog, section, clock=ctx.clock)


def build_ankorstore_orders(
    client: ApiClient, section: AnkorstoreOrdersSection, ctx: BuildContext
) -> Source:
    return AnkorstoreOrdersSource(
        client,
        ctx.catalog,
        section,
        # Ankorstore subtracts its own open orders from the stockQuantity syncd
        # writes until it ships or cancels them, so syncd adds them back and must
        # keep subtracting them just as long (syncd.allocation, step 5): once the
        # warehouse holds one, it counts twice -- an undersell until Ankorstore
        # ships it, never an oversell if Ankorstore cancels it meanwhile.
        handover=None,
        clock=ctx.clock,
        page_size=section.page_size,
    )


def build_fabric_orders(
    client: ApiClient, section: FabricOrdersSection, ctx: BuildContext
) -> Source:
    api = ctx.api_section("fabric", FabricApiSection)
    return FabricOrdersSource(
        client,
        ctx.catalog,
        section,
        handover=ctx.handover,
        clock=ctx.clock,
        brand_id=api.brand_id,
        retailer_id=api.retailer_id,
        path=section.orders_path,
        status_filter=section.status_filter or None,
    )


def build_fashiontrade(
    client: ApiClient, section: FashionTradeSourceSection, ctx: BuildContext
) -> Source:
    return FashionTradeOrdersSource(
        client,
        ctx.catalog,
        section,
        handover=ctx.handover,
        clock=ctx.clock,
        lookback=section.lookback,
        sweep_interval=section.sweep_interval,
        lines_max_age=section.lines_max_age,
        max_order_requests=section.max_order_requests,
    )
