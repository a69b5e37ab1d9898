"""Build the enabled order sources, and the one handover they share, from a config.

The sources borrow the shared API clients (the Ankorstore one is also used by
ASTRAL and the Ankorstore channel: one token, one budget, seed 000
L200-228); :class:`~syncd.wiring.ApiClients` closes them, never a source.
"""

from __future__ import annotations

import structlog

from syncd.clock import Clock
from syncd.config import Config
from syncd.sources.ankorstore_orders import AnkorstoreOrdersSource
from syncd.sources.base import Source
from syncd.sources.fabric_orders import FabricOrdersSource
from syncd.sources.fashiontrade import FashionTradeOrdersSource
from syncd.sources.handover import WAREHOUSE_FEED, Handover
from syncd.wiring import ApiClients

_log = structlog.get_logger(__name__)

ORDER_SOURCES = ("ankorstore_orders", "fabric_orders", "fashiontrade")


def build_handover(config: Config, clients: ApiClients, clock: Clock) -> Handover | None:
    """The Active Ants handover lookup, or None (``match = "none"``, or no Active Ants client).

    Without a client every order keeps reserving until its channel closes it:
    the safe side, logged so the operator sees why nothing is handed over.
    """
    if config.handover.match != "external_reference":
        return None
    if clients.activeants is None:
        _log.warning(
            "handover.disabled",
            reason="[handover] match = external_reference needs [apis.activeants]",
        )
        return None
    warehouse = config.sources.activeants
    # Release only once the warehouse figure has been read after the handover;
    # without a warehouse stock feed there is nothing to wait for.
    settle = WAREHOUSE_FEED if warehouse is not None and warehouse.enabled else None
    return Handover(
        clients.activeants,
        config.handover.reference_templates.model_dump(),
        clock=clock,
        settle_feed=settle,
        batch_size=config.handover.batch_size,
        max_requests=config.handover.max_requests_per_poll,
    )


def build_order_sources(config: Config, clients: ApiClients, clock: Clock) -> list[Source]:
    """One source per enabled ``[sources.<order feed>]``, sharing one handover.

    Raises ``ValueError`` when an enabled source's API has no client (config
    checks report a missing ``[apis.*]`` earlier; reaching this is a wiring bug).
    """
    enabled = config.sources.enabled()
    if not any(name in enabled for name in ORDER_SOURCES):
        return []
    catalog = config.catalog_model()
    handover = build_handover(config, clients, clock)
    sources: list[Source] = []
    ankorstore = config.sources.ankorstore_orders
    if ankorstore is not None and ankorstore.enabled:
        if clients.ankorstore is None:
            raise ValueError("source 'ankorstore_orders' needs [apis.ankorstore]")
        sources.append(
            AnkorstoreOrdersSource(
                clients.ankorstore,
                catalog,
                ankorstore,
                # Ankorstore subtracts its own open orders from the stockQuantity syncd
                # writes until it ships or cancels them, so syncd adds them back and must
                # keep subtracting them just as long (syncd.allocation, step 5): once the
                # warehouse holds one, it counts twice -- an undersell until Ankorstore
                # ships it, never an oversell if Ankorstore cancels it meanwhile.
                handover=None,
                clock=clock,
                page_size=ankorstore.page_size,
            )
        )
    fabric = config.sources.fabric_orders
    if fabric is not None and fabric.enabled:
        api = config.apis.fabric
        if clients.fabric is None or api is None:
            raise ValueError("source 'fabric_orders' needs [apis.fabric]")
        sources.append(
            FabricOrdersSource(
                clients.fabric,
                catalog,
                fabric,
                handover=handover,
                clock=clock,
                brand_id=api.brand_id,
                retailer_id=api.retailer_id,
                path=fabric.orders_path,
                status_filter=fabric.status_filter or None,
            )
        )
    fashiontrade = config.sources.fashiontrade
    if fashiontrade is not None and fashiontrade.enabled:
        if clients.fashiontrade is None:
            raise ValueError("source 'fashiontrade' needs [apis.fashiontrade]")
        sources.append(
            FashionTradeOrdersSource(
                clients.fashiontrade,
                catalog,
                fashiontrade,
                handover=handover,
                clock=clock,
                lookback=fashiontrade.lookback,
                sweep_interval=fashiontrade.sweep_interval,
                lines_max_age=fashiontrade.lines_max_age,
                max_order_requests=fashiontrade.max_order_requests,
            )
        )
    return sources
