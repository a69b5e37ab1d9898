"""One syncd per ledger: the second one is refused with a message naming the first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.config import DaemonSection
from syncd.daemon.lock import AlreadyRunning, RuntimeLock


def test_a_second_lock_on_the_same_file_is_refused_naming_the_holder(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    first = RuntimeLock(tmp_path / "ledger.db.lock", database)
    first.acquire()
    try:
        with pytest.raises(AlreadyRunning) as refused:
            RuntimeLock(tmp_path / "ledger.db.lock", database).acquire()
        assert str(refused.value) == f"another syncd is running on {database} (pid {os.getpid()})"
        assert refused.value.pid == os.getpid()
    finally:
        first.release()


def test_the_lock_is_free_again_after_release(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.db.lock"  # the directory is created
    lock = RuntimeLock(path, tmp_path / "ledger.db")
    lock.acquire()
    lock.release()
    lock.release()  # idempotent
    with RuntimeLock(path, tmp_path / "ledger.db") as again:
        assert again.held
    assert path.exists()  # the file stays; only the lock goes


def test_a_lock_held_by_another_process_is_refused_and_freed_when_it_dies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from syncd.daemon.lock import RuntimeLock;"
            f"RuntimeLock(Path({str(path)!r}), Path('db')).acquire(); print('locked', flush=True);"
            "sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning, match=rf"\(pid {holder.pid}\)"):
            RuntimeLock(path, tmp_path / "ledger.db").acquire()
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the dead holder's lock: no stale lock to clear by hand.
    with RuntimeLock(path, tmp_path / "ledger.db") as lock:
        assert lock.held


def test_the_lock_is_keyed_by_the_ledgers_resolved_path(tmp_path: Path) -> None:
    real = tmp_path / "state" / "ledger.db"
    real.parent.mkdir()
    (tmp_path / "alias.db").symlink_to(real)
    (tmp_path / "linked").symlink_to(real.parent, target_is_directory=True)
    direct = DaemonSection(database=real)
    for other in (tmp_path / "alias.db", tmp_path / "linked" / "ledger.db"):
        section = DaemonSection(database=other)
        assert section.lock_path == direct.lock_path == real.with_name("ledger.db.lock")
        with RuntimeLock(direct.lock_path, real), pytest.raises(AlreadyRunning):
            RuntimeLock(section.lock_path, other).acquire()
    # An explicit lock_file is taken as written.
    assert DaemonSection(database=real, lock_file=tmp_path / "x.lock").lock_path == (
        tmp_path / "x.lock"
    )
