"""Assembling one adapter against one backend, as syncd assembles it.

A contract case names an adapter and a backend: ``fake`` (an in-memory API
behind ``httpx.MockTransport``) or ``sandbox`` (the loopback simulator of
:mod:`syncd.sandbox`, started alone). Either way the adapter is built from a
syncd config file through the same public functions `syncd run` uses
(:func:`syncd.assembly.assemble`: shared clients, tokens kept in the ledger,
sources, channels), with one :class:`FakeClock` for the adapters and their clients, so a 429's wait and a due full read cost no real
time. The client's transport is wrapped in a :class:`~tests.contract._wire.Wire`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from syncd.assembly import Assembly, assemble
from syncd.clock import FakeClock
from syncd.config import Config, load_config
from syncd.ledger.store import Ledger
from syncd.sandbox.catalog import SandboxCatalog
from syncd.sandbox.world import SandboxWorld
from tests.contract._fake_base import FakeApi
from tests.contract._switchboard import Switchboards
from tests.contract._wire import Wire

BACKENDS = ("fake", "sandbox")

FAKE_CREDENTIALS = {
    "ankorstore": ("contract-client", "contract-secret"),
    "activeants": ("contract-user", "contract-password"),
    "fabric": ("contract-client", "contract-secret"),
    "fashiontrade": ("", "contract-api-key"),
}
FAKE_BRAND, FAKE_RETAILER = "510", "77"


def contract_clock() -> FakeClock:
    # Wall time starts now: a 429's X-RateLimit-Reset is read against it.
    return FakeClock(wall_start=time.time())


@dataclass
class Backend:
    kind: str
    api: str
    url: str
    fake: FakeApi | None
    world: SandboxWorld | None
    wire: Wire


def backend(
    kind: str,
    api: str,
    catalog: SandboxCatalog,
    clock: FakeClock,
    *,
    boards: Switchboards,
    fake: FakeApi | None = None,
) -> Backend:
    """The API ``api`` served by ``fake`` (kind ``fake``) or by a fresh sandbox simulator."""
    if kind == "fake":
        assert fake is not None
        inner: httpx.AsyncBaseTransport = httpx.MockTransport(fake.handler)
        return Backend(kind, api, f"https://{api}.contract.test", fake, None, Wire(inner, clock))
    world = SandboxWorld.create(catalog=catalog)
    url = boards.plug(api, world.apps()[api])
    world.urls[api] = url
    # Plain HTTP on loopback: no certificate store to load for every test.
    inner = httpx.AsyncHTTPTransport(verify=False)
    return Backend(kind, api, url, None, world, Wire(inner, clock))


def api_section(b: Backend, extra: str = "") -> str:
    """The ``[apis.<api>]`` table pointing at the backend, with its credentials inline."""
    if b.world is None:
        user, secret = FAKE_CREDENTIALS[b.api]
        brand, retailer = FAKE_BRAND, FAKE_RETAILER
    else:
        w = b.world
        user, secret = {
            "ankorstore": (w.ankorstore.client_id, w.ankorstore.client_secret),
            "activeants": (w.activeants.username, w.activeants.password),
            "fabric": (w.fabric.client_id, w.fabric.client_secret),
            "fashiontrade": ("", w.fashiontrade.api_key),
        }[b.api]
        brand, retailer = str(w.fabric.brand_id), str(w.fabric.retailer_id)
    if b.api == "ankorstore":
        keys = f'client_id = "{user}"\nclient_secret = "{secret}"'
    elif b.api == "activeants":
        keys = f'username = "{user}"\npassword = "{secret}"'
    elif b.api == "fabric":
        keys = (
            f'auth_url = "{b.url}/auth/token/"\nclient_id = "{user}"\n'
            f'client_secret = "{secret}"\nbrand_id = "{brand}"\nretailer_id = "{retailer}"'
        )
    else:
        keys = f'api_key = "{secret}"'
    return f'[apis.{b.api}]\nbase_url = "{b.url}"\n{keys}\ntimeout = 10.0\n{extra}'


def write_config(
    directory: Path, b: Backend, catalog: SandboxCatalog, tables: str, api_extra: str = ""
) -> Config:
    """A complete syncd config for one API (plus ``api_extra`` keys) and ``tables``."""
    directory.mkdir(parents=True, exist_ok=True)
    catalog.write_csv(directory / "catalog.csv")
    text = (
        f'[daemon]\ndatabase = "{directory / "ledger.db"}"\n'
        f'status_socket = "{directory / "status.sock"}"\n\n'
        f'{api_section(b, api_extra)}\n{tables}\n[catalog]\ncsv = "catalog.csv"\n'
    )
    path = directory / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _nowhere(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request to {request.url}")


def transports_for(b: Backend) -> dict[str, httpx.AsyncBaseTransport]:
    """The backend's wire for its API; every other API must stay silent."""
    transports: dict[str, httpx.AsyncBaseTransport] = {
        api: httpx.MockTransport(_nowhere) for api in FAKE_CREDENTIALS
    }
    transports[b.api] = b.wire
    return transports


@asynccontextmanager
async def assembled(
    config: Config, b: Backend, clock: FakeClock, ledger_path: Path
) -> AsyncIterator[Assembly]:
    """Everything `syncd run` builds from ``config`` (:func:`syncd.assembly.assemble`):
    the shared clients (tokens kept in the ledger), sources, channels and engine,
    around a real ledger file whose invariants are checked at the end."""
    async with await Ledger.open(ledger_path, clock=clock) as ledger:
        assembly = assemble(config, ledger, clock=clock, transports=transports_for(b))
        try:
            yield assembly
        finally:
            await assembly.aclose()
        assert await ledger.check_invariants() == []
