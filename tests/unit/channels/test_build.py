"""build_channels: one channel per enabled section, on the shared clients."""

from __future__ import annotations

import httpx
import pytest

from syncd.channels.ankorstore import AnkorstoreChannel
from syncd.channels.fabric import FabricChannel
from syncd.clock import FakeClock
from syncd.config import Config
from syncd.http.presets import ankorstore_client, fabric_client
from syncd.integrations import build_channels
from syncd.wiring import ApiClients


def _transport() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(500))


def test_enabled_channels_are_built_on_the_clients_they_share() -> None:
    config = Config.model_validate(
        {
            "apis": {
                "fabric": {
                    "auth_url": "https://fabric.test/auth/token/",
                    "client_id": "c",
                    "client_secret": "s",
                    "brand_id": "510",
                }
            },
            "channels": {
                "ankorstore": {"locations": ["activeants"], "operations_per_request": 20},
                "fabric": {"locations": ["activeants"], "enabled": True},
            },
        }
    )
    clock = FakeClock()
    clients = ApiClients(
        ankorstore=ankorstore_client(
            base_url="https://a.test",
            client_id="c",
            client_secret="s",
            clock=clock,
            transport=_transport(),
        ),
        fabric=fabric_client(
            base_url="https://fabric.test",
            token_url="https://fabric.test/auth/token/",
            client_id="c",
            client_secret="s",
            clock=clock,
            transport=_transport(),
        ),
    )
    channels = build_channels(config, clients, clock)
    assert list(channels) == ["ankorstore", "fabric"]
    assert isinstance(channels["ankorstore"], AnkorstoreChannel)
    assert channels["ankorstore"].per_request == 20
    assert isinstance(channels["fabric"], FabricChannel)
    # One write per variant, batched per push call to what its tightest window allows:
    # 5 a second (the default for an API without a documented limit) less 20 %, less
    # the confirming read.
    assert channels["fabric"].per_request == 3


def test_a_disabled_channel_is_not_built_and_a_missing_client_is_an_error() -> None:
    config = Config.model_validate(
        {
            "channels": {
                "ankorstore": {"locations": ["activeants"]},
                "fabric": {"locations": ["activeants"], "enabled": False},
            }
        }
    )
    clock = FakeClock()
    ankorstore = ankorstore_client(
        base_url="https://a.test",
        client_id="c",
        client_secret="s",
        clock=clock,
        transport=_transport(),
    )
    assert list(build_channels(config, ApiClients(ankorstore=ankorstore), clock)) == ["ankorstore"]
    with pytest.raises(ValueError, match=r"\[apis.ankorstore\]"):
        build_channels(config, ApiClients(), clock)
