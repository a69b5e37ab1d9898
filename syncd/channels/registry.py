"""Build the enabled channels from a config and the shared API clients.

The channels borrow their clients: the Ankorstore client is the same one
ASTRAL and the Ankorstore orders source use (one token, one budget, seed 000
L200-228), so a channel never closes it -- :class:`~syncd.wiring.ApiClients`
does.
"""

from __future__ import annotations

from syncd.channels.ankorstore import AnkorstoreChannel
from syncd.channels.base import Channel
from syncd.channels.fabric import FabricChannel
from syncd.clock import Clock
from syncd.config import Config
from syncd.config.sections import AnkorstoreChannel as AnkorstoreChannelConfig
from syncd.config.sections import FabricChannel as FabricChannelConfig
from syncd.wiring import ApiClients


def build_channels(config: Config, clients: ApiClients, clock: Clock) -> dict[str, Channel]:
    """One channel per enabled ``[channels.*]`` section, in config order.

    Raises ``ValueError`` when a channel's API has no client (its
    ``[apis.*]`` section is missing): config checks report that earlier, so
    reaching it here is a wiring bug, not something to run without.
    """
    catalog = config.catalog_model()
    channels: dict[str, Channel] = {}
    for name, section in config.channels.enabled().items():
        if isinstance(section, AnkorstoreChannelConfig):
            if clients.ankorstore is None:
                raise ValueError("channel 'ankorstore' needs [apis.ankorstore]")
            channels[name] = AnkorstoreChannel(
                clients.ankorstore,
                catalog,
                section,
                clock=clock,
            )
        elif isinstance(section, FabricChannelConfig):
            api = config.apis.fabric
            if clients.fabric is None or api is None:
                raise ValueError("channel 'fabric' needs [apis.fabric]")
            channels[name] = FabricChannel(
                clients.fabric,
                catalog,
                section,
                brand_id=api.brand_id,
                retailer_id=api.retailer_id,
                clock=clock,
            )
        else:  # pragma: no cover - ChannelsSection only holds the two kinds above
            raise ValueError(f"unknown channel {name!r}")
    return channels
