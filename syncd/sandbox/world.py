"""All simulators together: one catalog, five APIs, and a syncd config for them.

`syncd sandbox`, `syncd demo`, the integration tests and the benchmarks all
start the same world: the Ankorstore host (with ASTRAL on the same host, one
token and one rate budget, as in production), Active Ants, fabric and
FashionTrade, each on its own free loopback port, each with its own
:class:`FaultPlan`.

:meth:`SandboxWorld.write_config` writes a complete syncd TOML pointing at
the running servers, with the catalog as a CSV beside it and every secret in
its own file (mode 0600) -- the same shape a production install uses.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from syncd.sandbox import activeants, ankorstore, fabric, fashiontrade
from syncd.sandbox.activeants_state import ActiveAntsState
from syncd.sandbox.ankorstore_state import AnkorstoreState
from syncd.sandbox.catalog import SandboxCatalog, generate_catalog
from syncd.sandbox.fabric_state import FabricState
from syncd.sandbox.fashiontrade_state import FashionTradeState
from syncd.sandbox.faults import FaultPlan
from syncd.sandbox.limits import SimClock
from syncd.sandbox.server import ThreadedServer, serve
from syncd.sandbox.traffic import TrafficLog, record

APIS = ("ankorstore", "activeants", "fabric", "fashiontrade")


@dataclass(slots=True)
class SandboxWorld:
    catalog: SandboxCatalog
    clock: SimClock
    ankorstore: AnkorstoreState
    activeants: ActiveAntsState
    fabric: FabricState
    fashiontrade: FashionTradeState
    faults: dict[str, FaultPlan] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    traffic: TrafficLog | None = None
    """When set, every simulator records its exchanges here (:mod:`syncd.sandbox.traffic`)."""

    default_traffic: ClassVar[TrafficLog | None] = None
    """The log of worlds whose own :attr:`traffic` is unset: the test suite sets it once
    so that every world any integration test starts is recorded and checked
    against the API specs. ``None`` (the default) records nothing and costs nothing."""

    @classmethod
    def create(
        cls,
        *,
        variants: int = 200,
        seed: int = 7,
        catalog: SandboxCatalog | None = None,
        fabric_rate_limit: int | None = 600,
        activeants_rate_limit: int | None = 600,
    ) -> SandboxWorld:
        """A fresh world. Every simulator shares one clock so tests can move time."""
        catalog = catalog or generate_catalog(variants, seed=seed)
        clock = SimClock()
        return cls(
            catalog=catalog,
            clock=clock,
            ankorstore=AnkorstoreState(catalog, clock=clock),
            activeants=ActiveAntsState(catalog, clock=clock, rate_limit=activeants_rate_limit),
            fabric=FabricState(catalog, clock=clock, rate_limit=fabric_rate_limit),
            fashiontrade=FashionTradeState(catalog, clock=clock),
            faults={api: FaultPlan(api) for api in APIS},
        )

    def apps(self) -> dict[str, Any]:
        apps = {
            "ankorstore": ankorstore.create_app(self.ankorstore, self.faults["ankorstore"]),
            "activeants": activeants.create_app(self.activeants, self.faults["activeants"]),
            "fabric": fabric.create_app(self.fabric, self.faults["fabric"]),
            "fashiontrade": fashiontrade.create_app(self.fashiontrade, self.faults["fashiontrade"]),
        }
        log = self.traffic if self.traffic is not None else SandboxWorld.default_traffic
        if log is None:
            return apps
        return {api: record(app, api, log) for api, app in apps.items()}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SandboxWorld]:
        """Serve every simulator inside the current event loop."""
        async with AsyncExitStack() as stack:
            for api, app in self.apps().items():
                self.urls[api] = await stack.enter_async_context(serve(app))
            yield self

    @contextmanager
    def threaded(self) -> Iterator[SandboxWorld]:
        """Serve every simulator from background threads (sync callers)."""
        with ExitStack() as stack:
            for api, app in self.apps().items():
                self.urls[api] = stack.enter_context(ThreadedServer(app)).url
            yield self

    def write_config(
        self,
        directory: Path,
        *,
        database: Path | None = None,
        status_socket: Path | None = None,
        cycle_interval: float = 2.0,
        poll_interval: float = 2.0,
        overrides: str = "",
        name: str = "syncd.toml",
        reserved_max_age: float = 60.0,
    ) -> Path:
        """Write ``syncd.toml``, ``catalog.csv`` and the secret files into ``directory``.

        Poll intervals are short (seconds, not minutes) because the sandbox
        answers instantly and the demo should show movement.
        """
        if not self.urls:
            raise RuntimeError("start the sandbox before writing a config that points at it")
        directory.mkdir(parents=True, exist_ok=True)
        secrets = directory / "credentials"
        secrets.mkdir(mode=0o700, exist_ok=True)
        for api, value in {
            "ankorstore": self.ankorstore.client_secret,
            "activeants": self.activeants.password,
            "fabric": self.fabric.client_secret,
            "fashiontrade": self.fashiontrade.api_key,
        }.items():
            path = secrets / api
            path.write_text(value + "\n", encoding="utf-8")
            os.chmod(path, 0o600)
        self.catalog.write_csv(directory / "catalog.csv")
        database = database or directory / "ledger.db"
        status_socket = status_socket or directory / "status.sock"
        config = directory / name
        config.write_text(
            self._toml(database, status_socket, cycle_interval, poll_interval, reserved_max_age)
            + overrides,
            encoding="utf-8",
        )
        return config

    def _toml(
        self,
        database: Path,
        status_socket: Path,
        cycle: float,
        poll: float,
        reserved_max_age: float,
    ) -> str:
        stale = max(60.0, poll * 30)
        bundles = "\n".join(
            f'[[catalog.bundles]]\nsku = "{b.sku}"\n'
            f"components = {_inline_table(b.components)}\nchannels = {_array(b.channels)}\n"
            f'ankorstore_variant_id = "{b.ankorstore_variant_id}"\nankorstore_sku = "{b.sku}"\n'
            f'fabric_sku = "{b.fabric_sku}"\nbarcode = "{b.barcode}"\n'
            for b in self.catalog.bundles
        )
        prepacks = "\n".join(
            f'[[catalog.prepacks]]\ncode = "{p.barcode}"\nlines = {_inline_table(p.lines)}\n'
            for p in self.catalog.prepacks
        )
        return f"""# Written by `syncd sandbox` for the loopback simulators. Not for production.
[daemon]
database = "{database}"
status_socket = "{status_socket}"
log_format = "auto"
cycle_interval = {cycle}

[apis.ankorstore]
base_url = "{self.urls["ankorstore"]}"
client_id = "{self.ankorstore.client_id}"
client_secret_file = "credentials/ankorstore"
timeout = 10.0

[apis.activeants]
base_url = "{self.urls["activeants"]}"
username = "{self.activeants.username}"
password_file = "credentials/activeants"
requests_per_minute = 600
timeout = 10.0

[apis.fabric]
base_url = "{self.urls["fabric"]}"
auth_url = "{self.urls["fabric"]}/auth/token/"
client_id = "{self.fabric.client_id}"
client_secret_file = "credentials/fabric"
brand_id = "{self.fabric.brand_id}"
retailer_id = "{self.fabric.retailer_id}"
requests_per_minute = 600
timeout = 10.0

[apis.fashiontrade]
base_url = "{self.urls["fashiontrade"]}"
api_key_file = "credentials/fashiontrade"
timeout = 10.0

[sources.activeants]
poll_interval = {poll}
full_reconcile_interval = 3600.0
stale_after = {stale}

[sources.astral]
poll_interval = {poll}
reconcile_interval = 600.0
stale_after = {stale}

[sources.ankorstore_orders]
poll_interval = {poll}
fulfilled_from = "activeants"
stale_after = {stale}

[sources.fabric_orders]
poll_interval = {poll}
fulfilled_from = "activeants"
stale_after = {stale}

[sources.fashiontrade]
poll_interval = {poll}
fulfilled_from = "activeants"
stale_after = {stale}

[handover]
match = "external_reference"

[channels.ankorstore]
locations = ["activeants", "astral:*"]
reserved_max_age = {reserved_max_age}

[channels.fabric]
locations = ["activeants"]
pack_rounding = false

[catalog]
csv = "catalog.csv"

{bundles}
{prepacks}"""


def _inline_table(values: dict[str, int]) -> str:
    return "{ " + ", ".join(f'"{key}" = {value}' for key, value in values.items()) + " }"


def _array(values: frozenset[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in sorted(values)) + "]"
