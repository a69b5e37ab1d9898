"""Every `[apis.*]` limit and bound in the config is what the HTTP clients enforce."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.clock import FakeClock
from syncd.config import load_config
from syncd.http.auth import OAuthClientCredentials
from syncd.http.client import ApiClient
from syncd.integrations import build_clients
from syncd.wiring import ApiClients

from .test_config import MINIMAL, _write


def _clients(tmp_path: Path, extra_ankorstore: str = "", extra_activeants: str = "") -> ApiClients:
    text = MINIMAL.replace(
        '[apis.ankorstore]\nclient_id = "id"\n',
        f'[apis.ankorstore]\nclient_id = "id"\n{extra_ankorstore}',
    ).replace(
        '[apis.activeants]\nusername = "shop"\n',
        f'[apis.activeants]\nusername = "shop"\n{extra_activeants}',
    )
    text += "\n[sources.astral]\n"
    return build_clients(load_config(_write(tmp_path, text), environ={}), clock=FakeClock())


def _ankorstore(clients: ApiClients) -> tuple[ApiClient, OAuthClientCredentials]:
    client = clients.get("ankorstore")
    assert client is not None
    assert isinstance(client.auth, OAuthClientCredentials)
    return client, client.auth


def _token_windows(auth: OAuthClientCredentials) -> set[tuple[int, float]]:
    budget = auth._budget
    assert budget is not None
    return {(w.limit, w.seconds) for w in budget.windows}


def test_lowered_ankorstore_limits_drive_its_limiter_and_token_budget(tmp_path: Path) -> None:
    clients = _clients(
        tmp_path,
        "requests_per_minute = 30\nrequests_per_hour = 1000\nrequests_per_day = 5000\n"
        "token_requests_per_hour = 6\n",
    )
    ankorstore, auth = _ankorstore(clients)
    assert [w.limit for w in ankorstore.limiter.windows] == [30, 1000, 5000]
    # The status report shows the same windows (it reads the limiter's snapshot).
    assert [w.limit for w in ankorstore.limiter.snapshot().windows] == [30, 1000, 5000]
    # A third of the token endpoint's hourly allowance, as with the documented 60.
    assert _token_windows(auth) == {(2, 3600.0), (2, 60.0)}


def test_documented_ankorstore_limits_are_the_defaults(tmp_path: Path) -> None:
    ankorstore, auth = _ankorstore(_clients(tmp_path))
    assert [w.limit for w in ankorstore.limiter.windows] == [600, 24_000, 288_000]
    assert _token_windows(auth) == {(20, 3600.0), (4, 60.0)}


def test_deadline_and_body_cap_come_from_the_config(tmp_path: Path) -> None:
    clients = _clients(
        tmp_path,
        "deadline = 7.5\nmax_response_bytes = 65536\n",
        "deadline = 9\n",
    )
    ankorstore, auth = _ankorstore(clients)
    activeants = clients.get("activeants")
    assert activeants is not None
    assert (ankorstore.deadline, ankorstore.max_body_bytes) == (7.5, 65_536)
    assert auth._deadline == 7.5  # the token request is bounded too
    assert (activeants.deadline, activeants.max_body_bytes) == (9, 256 * 1024 * 1024)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.5.0.1", "http://localhost:9000", "http://[::1]:8000"],
)
def test_plain_http_is_accepted_to_loopback_hosts(tmp_path: Path, url: str) -> None:
    ankorstore, _ = _ankorstore(_clients(tmp_path, f'base_url = "{url}"\n'))
    assert str(ankorstore.http.base_url).startswith(url)
