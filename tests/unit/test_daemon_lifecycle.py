"""The daemon in-process: READY, status socket, SIGHUP reload or rejection, SIGTERM, one instance.

Fake adapters stand in for the APIs (see _daemon_support); the signals are
real, sent to this process once the daemon has installed its handlers. The
subprocess tests in tests/integration/daemon/ run the real thing end to end.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from syncd.assembly import Assembly
from syncd.clock import FakeClock
from syncd.config import Config, ConfigError, ConfigProblem
from syncd.daemon import Daemon, StartupError
from syncd.ledger.store import Ledger
from syncd.status_client import request
from syncd.systemd import Notifier
from tests.unit._daemon_support import (
    SKUS,
    FakeChannel,
    FakeSource,
    NotifyListener,
    make_assembly,
    wait_for,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths stop at 107 bytes: pytest's tmp_path can be longer."""
    directory = Path(tempfile.mkdtemp(prefix="syncd-d-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def rig(short_dir: Path) -> Iterator[Rig]:
    made = Rig(short_dir)
    try:
        yield made
    finally:
        made.notify.close()


def config_in(
    directory: Path, cycle_interval: float = 0.05, shutdown_timeout: float = 2.0
) -> Config:
    return Config.model_validate(
        {
            "daemon": {
                "database": "ledger.db",
                "status_socket": "run/status.sock",
                "cycle_interval": cycle_interval,
                "shutdown_timeout": shutdown_timeout,
            }
        },
        context={"base_dir": directory},
    )


class Rig:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.notify = NotifyListener(directory / "notify.sock")
        self.channel = FakeChannel()
        self.assemblies: list[Assembly] = []
        self.next_config: Config | Exception = config_in(directory)
        self.assemble_override: Callable[[Config, Ledger], Assembly] | None = None

    def assemble(self, config: Config, ledger: Ledger) -> Assembly:
        source = FakeSource(levels=dict.fromkeys(SKUS, 5))
        assembly = make_assembly(ledger, [source], [self.channel], config=config)
        self.assemblies.append(assembly)
        return assembly

    def load(self, path: Path) -> Config:
        if isinstance(self.next_config, Exception):
            raise self.next_config
        return self.next_config

    def daemon(self, config: Config | None = None, **options: Any) -> Daemon:
        return Daemon(
            config or config_in(self.directory),
            self.directory / "syncd.toml",
            notifier=Notifier(str(self.notify.path)),
            assemble_fn=self.assemble_override or self.assemble,
            load=self.load,
            env={"WATCHDOG_USEC": "400000"},
            status_every=0.05,
            **options,
        )


async def test_start_reload_reject_and_stop(short_dir: Path, rig: Rig) -> None:
    daemon = rig.daemon()
    status_socket = short_dir / "run" / "status.sock"
    codes: list[int] = []

    async def run() -> None:
        codes.append(await daemon.run())

    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await wait_for(lambda: rig.notify.saw("READY=1"))
            assert stat.S_IMODE(status_socket.stat().st_mode) == 0o660
            await wait_for(lambda: len(rig.channel.shown) == len(SKUS))
            assert (await request(status_socket, {"cmd": "ping"}))["pid"] == os.getpid()
            await wait_for(lambda: rig.notify.saw("WATCHDOG=1"))
            await wait_for(lambda: rig.notify.saw("STATUS=ok: 1 sources fresh, fabric 0 queued"))

            # A good config: new sources/channels/engine on the same ledger.
            first = daemon.scheduler
            rig.next_config = config_in(short_dir, cycle_interval=0.1)
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for(lambda: daemon.scheduler is not first)
            assert rig.notify.saw("RELOADING=1")
            assert daemon.config.daemon.cycle_interval == 0.1
            old_source = rig.assemblies[0].sources[0]
            assert isinstance(old_source, FakeSource)
            assert old_source.closed  # the old adapters were closed

            # A bad config is rejected; the running one stays and says so.
            second = daemon.scheduler
            problem = ConfigProblem("syncd.toml", 3, "daemon.cycle_interval", "must be > 0")
            rig.next_config = ConfigError([problem])
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for(lambda: daemon.info.reload_error is not None)
            assert daemon.scheduler is second
            reply = await request(status_socket, {"cmd": "status"})
            assert reply["health"] == "degraded"
            assert reply["reasons"] == [
                "config reload rejected, still running the previous config: "
                "syncd.toml:3: daemon.cycle_interval: must be > 0"
            ]

            started = anyio.current_time()
            os.kill(os.getpid(), signal.SIGTERM)
        # Nothing is in flight: far less than a hung shutdown (generous for a loaded machine).
        assert anyio.current_time() - started < 30.0
    assert codes == [0]
    assert rig.notify.saw("STOPPING=1")
    assert not status_socket.exists()
    rejected = [e for e in logs if e["event"] == "daemon.reload_rejected"]
    assert rejected[0]["problems"] == ["syncd.toml:3: daemon.cycle_interval: must be > 0"]
    # Nothing lost: every value the channel acknowledged is recorded as such.
    async with await Ledger.open(short_dir / "ledger.db") as ledger:
        assert await ledger.pending("fabric") == []


async def test_the_daemon_runs_on_one_clock_from_its_ledger_to_its_status(
    short_dir: Path, rig: Rig
) -> None:
    clock = FakeClock(wall_start=1_900_000_000.0)  # 2030: the host's time would not match
    daemon = rig.daemon(clock=clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await wait_for(lambda: rig.notify.saw("READY=1"))
        assert rig.assemblies[0].ledger.clock is clock
        clock.advance(120)
        status = await request(short_dir / "run" / "status.sock", {"cmd": "status"})
        os.kill(os.getpid(), signal.SIGTERM)
    assert status["started_at"] == "2030-03-17T17:46:40+00:00"
    assert status["uptime_s"] == 120.0


async def test_a_second_daemon_on_the_same_ledger_refuses_to_start(rig: Rig) -> None:
    first = rig.daemon()
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await wait_for(lambda: rig.notify.saw("READY=1"))
        with pytest.raises(StartupError, match=r"another syncd is running on .*ledger.db \(pid"):
            await rig.daemon().run()
        os.kill(os.getpid(), signal.SIGTERM)


async def test_a_status_path_that_is_not_a_socket_stops_the_start(
    short_dir: Path, rig: Rig
) -> None:
    (short_dir / "run").mkdir()
    (short_dir / "run" / "status.sock").write_text("not a socket")
    with pytest.raises(StartupError, match="not a socket"):
        await rig.daemon().run()
    assert not rig.notify.saw("READY=1")
    # The lock was released: a corrected start works.
    (short_dir / "run" / "status.sock").unlink()
    async with anyio.create_task_group() as tg:
        tg.start_soon(rig.daemon().run)
        await wait_for(lambda: rig.notify.saw("READY=1"))
        os.kill(os.getpid(), signal.SIGTERM)


async def test_a_wedged_engine_stops_the_watchdog_pings(short_dir: Path, rig: Rig) -> None:
    wedged = anyio.Event()

    def assemble(config: Config, ledger: Ledger) -> Assembly:
        assembly = rig.assemble(config, ledger)

        async def recompute(*, full: bool = False) -> int:
            wedged.set()
            await anyio.sleep(3600)  # a recompute that never returns
            return 0

        assembly.engine.recompute = recompute  # type: ignore[method-assign]
        return assembly

    rig.assemble_override = assemble
    daemon = rig.daemon(config_in(short_dir, shutdown_timeout=0.2), stuck_after=0.3)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await wait_for(wedged.is_set)
            await anyio.sleep(0.6)  # past stuck_after and the heartbeat's freshness
            rig.notify.drain()
            rig.notify.messages.clear()
            await anyio.sleep(0.5)  # more than the 0.2 s ping interval
            assert not rig.notify.saw("WATCHDOG=1")
            reply = await request(short_dir / "run" / "status.sock", {"cmd": "status"})
            assert any("engine has been busy" in r for r in reply["reasons"])
            os.kill(os.getpid(), signal.SIGTERM)
    assert any(e["event"] == "daemon.stuck" for e in logs)
