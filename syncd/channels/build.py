"""Build one channel from its config section, its API client and what the adapters share.

:mod:`syncd.integrations` names these builders in the channels' descriptions.
The channels borrow their clients: the Ankorstore client is the same one
ASTRAL and the Ankorstore orders source use (one token, one budget, seed 000
L200-228), so a channel never closes it -- :class:`~syncd.wiring.ApiClients`
does.
"""

from __future__ import annotations

from syncd.channels.ankorstore import AnkorstoreChannel
from syncd.channels.base import Channel
from syncd.channels.fabric import FabricChannel
from syncd.config.apis import FabricApiSection
from syncd.config.sections import AnkorstoreChannelSection, FabricChannelSection
from syncd.http.client import ApiClient
from syncd.wiring import BuildContext


def build_ankorstore(
    client: ApiClient, section: AnkorstoreChannelSection, ctx: BuildContext
) -> Channel:
    return AnkorstoreChannel(client, ctx.catalog, section, clock=ctx.clock)


def build_fabric(client: ApiClient, section: FabricChannelSection, ctx: BuildContext) -> Channel:
    api = ctx.api_section("fabric", FabricApiSection)
    return FabricChannel(
        client,
        ctx.catalog,
        section,
        brand_id=api.brand_id,
        retailer_id=api.retailer_id,
        clock=ctx.clock,
    )
