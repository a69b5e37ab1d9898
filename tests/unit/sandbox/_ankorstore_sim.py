"""Test harness for the Ankorstore/ASTRAL simulator over a real loopback socket.

Starting uvicorn per test costs ~0.25 s, so a module keeps one server whose
ASGI app forwards to the simulator plugged in last: each test still gets a
fresh state, fault plan and client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from syncd.sandbox.ankorstore import create_app
from syncd.sandbox.ankorstore_state import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    AnkorstoreState,
)
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.faults import ASGIApp, FaultPlan, Receive, Scope, Send
from syncd.sandbox.server import ThreadedServer

JSONAPI = "application/vnd.api+json"
TOKEN_FORM = {
    "grant_type": "client_credentials",
    "client_id": SANDBOX_CLIENT_ID,
    "client_secret": SANDBOX_CLIENT_SECRET,
    "scope": "*",
}


class Board:
    """An ASGI app forwarding to the simulator app plugged in last."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.url = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no simulator plugged in"
        await self.app(scope, receive, send)


@contextmanager
def board_server() -> Iterator[Board]:
    board = Board()
    with ThreadedServer(board) as server:
        board.url = server.url
        yield board


@dataclass
class Sim:
    state: AnkorstoreState
    faults: FaultPlan
    client: httpx.Client
    token: str = ""

    def login(self) -> str:
        response = self.client.post("/oauth/token", data=TOKEN_FORM)
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]
        return self.token

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": JSONAPI, **extra}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(), params=params)

    def follow(self, url: str) -> dict[str, Any]:
        response = self.client.get(url, headers=self.headers())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def send(self, method: str, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.client.request(
            method,
            path,
            headers=self.headers(**{"Content-Type": JSONAPI, **headers}),
            content=json.dumps(body),
        )

    def operations(self, operations: list[dict[str, Any]]) -> httpx.Response:
        return self.send("POST", "/api/v1/operations", {"atomic:operations": operations})


def plug(
    board: Board,
    *,
    n_variants: int = 40,
    seed: int = 11,
    catalog_options: dict[str, Any] | None = None,
    event_hooks: dict[str, list[Any]] | None = None,
    **options: Any,
) -> Sim:
    """A fresh simulator behind ``board`` and a logged-in client for it."""
    options.setdefault("initial_stock", 20)
    catalog = generate_catalog(n_variants, seed=seed, **(catalog_options or {}))
    state = AnkorstoreState(catalog, **options)
    faults = FaultPlan("ankorstore")
    board.app = create_app(state, faults)
    # verify=False: plain-http loopback, and it spares loading the CA bundle per test.
    client = httpx.Client(
        base_url=board.url, timeout=60, verify=False, event_hooks=event_hooks or {}
    )
    sim = Sim(state, faults, client)
    sim.login()
    return sim
