"""Build the enabled stock sources (Active Ants, ASTRAL) from a config and the shared clients.

Sources borrow their clients: ASTRAL reads through the one Ankorstore client
that the Ankorstore orders source and channel also use (one token, one rate
budget, seed 000 L200-228), so no source closes a client --
:class:`~syncd.wiring.ApiClients` does.
"""

from __future__ import annotations

from syncd.clock import Clock
from syncd.config import Config
from syncd.config.sections import ActiveAntsSource, AstralSource
from syncd.sources.activeants import ActiveAntsStockSource
from syncd.sources.astral import AstralStockSource
from syncd.sources.base import Source
from syncd.wiring import ApiClients


def build_stock_sources(config: Config, clients: ApiClients, clock: Clock) -> list[Source]:
    """One source per enabled ``[sources.activeants]`` / ``[sources.astral]``, in that order.

    Raises ``ValueError`` when a source's API has no client: config checks
    report a missing ``[apis.*]`` earlier, so reaching it is a wiring bug.
    """
    catalog = config.catalog_model()
    enabled = config.sources.enabled()
    sources: list[Source] = []
    activeants = enabled.get("activeants")
    if isinstance(activeants, ActiveAntsSource):
        if clients.activeants is None:
            raise ValueError("source 'activeants' needs [apis.activeants]")
        sources.append(ActiveAntsStockSource(clients.activeants, catalog, activeants, clock=clock))
    astral = enabled.get("astral")
    if isinstance(astral, AstralSource):
        if clients.ankorstore is None:
            raise ValueError("source 'astral' needs [apis.ankorstore]")
        sources.append(AstralStockSource(clients.ankorstore, catalog, astral, clock=clock))
    return sources
