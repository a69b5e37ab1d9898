"""SIGHUP's bookkeeping: what a reload may change, and reloads that never pile up or block a stop."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from syncd.config import DaemonSection
from syncd.daemon.reload import ReloadRejected, Reloads, check_reloadable

pytestmark = pytest.mark.anyio

OLD = DaemonSection(database=Path("/var/lib/syncd/ledger.db"))


def test_a_reload_may_not_switch_ledgers_or_lock_files() -> None:
    with pytest.raises(ReloadRejected, match="restart syncd to switch ledgers"):
        check_reloadable(OLD, DaemonSection(database=Path("/srv/other.db")))
    with pytest.raises(ReloadRejected, match="lock_file changed"):
        check_reloadable(OLD, OLD.model_copy(update={"lock_file": Path("/run/syncd/x.lock")}))


def test_a_reload_may_change_the_rest_and_the_socket_waits_for_a_restart() -> None:
    check_reloadable(OLD, OLD.model_copy(update={"cycle_interval": 5.0, "log_level": "debug"}))
    check_reloadable(OLD, OLD.model_copy(update={"status_socket": Path("/run/other.sock")}))


async def test_sighups_during_a_reload_read_the_file_once_more_after_it() -> None:
    started: list[int] = []
    release = anyio.Event()

    async def reload() -> None:
        started.append(len(started))
        await release.wait()

    reloads = Reloads(reload)
    async with anyio.create_task_group() as tg:
        reloads.request(tg)
        with anyio.fail_after(10):
            while not started:
                await anyio.sleep(0)
        reloads.request(tg)
        reloads.request(tg)  # two more signals while reading: one more reading covers both
        release.set()
        with anyio.fail_after(10):
            while len(started) < 2:
                await anyio.sleep(0)
            await reloads.abandon()
    assert started == [0, 1]


async def test_a_stop_abandons_a_reload_stuck_reading_its_config() -> None:
    readings: list[int] = []
    finished: list[bool] = []

    async def reload() -> None:
        readings.append(len(readings))
        await anyio.sleep_forever()  # a secret file that never ends
        finished.append(True)

    reloads = Reloads(reload)
    async with anyio.create_task_group() as tg:
        reloads.request(tg)
        with anyio.fail_after(10):
            while not readings:
                await anyio.sleep(0)
            await reloads.abandon()
    assert (readings, finished) == ([0], [])
    async with anyio.create_task_group() as tg:  # and the next SIGHUP reloads again
        reloads.request(tg)
        with anyio.fail_after(10):
            while len(readings) < 2:
                await anyio.sleep(0)
            await reloads.abandon()
    assert (readings, finished) == ([0, 1], [])
