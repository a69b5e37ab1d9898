"""One syncd per ledger: an exclusive ``fcntl`` lock held for the daemon's lifetime.

Two daemons writing the same ledger would each believe they own the outbox
and push over each other. ``syncd run`` therefore takes an exclusive,
non-blocking ``flock`` on ``daemon.lock_path`` (default ``<database>.lock``)
before it opens the ledger, and keeps it until it exits. The kernel releases
the lock when the process dies, however it dies, so a crash never leaves a
lock behind that needs a human to clear it; the file itself stays (removing
it would let a third process lock a fresh inode while a second still holds
the old one).

The holder writes its pid into the file so the refusal can say who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_FILE_MODE = 0o640


class AlreadyRunning(Exception):
    """Another process holds the lock; ``str()`` is the message for the operator."""

    def __init__(self, database: Path, pid: int | None) -> None:
        self.database = database
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"another syncd is running on {database} ({holder})")


class LockError(Exception):
    """The lock file cannot be created or locked for a reason other than contention."""


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0)
    except OSError:
        return None
    text = raw.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


class RuntimeLock:
    """An exclusive lock on ``path`` naming ``database`` in its refusal.

    Usage::

        with RuntimeLock(config.daemon.lock_path, config.daemon.database):
            ...  # the only syncd on this ledger
    """

    def __init__(self, path: Path, database: Path) -> None:
        self.path = Path(path)
        self.database = Path(database)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunning` / :class:`LockError`."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_FILE_MODE)
        except OSError as exc:
            raise LockError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(self.database, pid) from None
            raise LockError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        # Ours now: record who holds it, for the next one's refusal message.
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError:
            pass  # the lock is what matters; the pid is a courtesy
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> RuntimeLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
