"""Can this process write the ledger? Checked before the daemon reports ``READY=1``.

SQLite opens a file it may not write read-only without complaint, so a
ledger owned by root (left by ``syncd once`` run as root) or on a read-only
mount (a path outside ``StateDirectory=`` under ``ProtectSystem=strict``)
would let the daemon start, report ready, and then fail every poll with
"attempt to write a readonly database". This module finds that out first,
by trying what SQLite will do -- open the ledger and its ``-wal``/``-shm``
companions for writing, create a file in its directory -- without changing
anything, and says what to fix.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import tempfile
from pathlib import Path

_COMPANIONS = ("", "-wal", "-shm")
"""The ledger and the files SQLite keeps next to it in WAL mode."""


def _user() -> tuple[str, str]:
    uid, gid = os.geteuid(), os.getegid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return user, group


def _owner(path: Path) -> str:
    info = path.stat()
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"owned by {user}:{group}, mode {stat.S_IMODE(info.st_mode):04o}"


def _fix(paths: list[Path]) -> str:
    """``chown`` what belongs to someone else, ``chmod u+w`` what is already ours."""
    user, group = _user()
    uid = os.geteuid()
    theirs = [str(p) for p in paths if p.stat().st_uid != uid]
    ours = [str(p) for p in paths if p.stat().st_uid == uid]
    commands = []
    if theirs:
        commands.append(f"chown {user}:{group} {' '.join(theirs)}")
    if ours:
        commands.append(f"chmod u+w {' '.join(ours)}")
    return "fix: " + " and ".join(commands)


def _read_only_fs(path: Path) -> str:
    return (
        f"{path} is on a read-only file system: keep the ledger under a writable directory "
        "(under systemd, StateDirectory=syncd gives /var/lib/syncd; any other path needs "
        "ReadWritePaths=)"
    )


def _directory_problem(directory: Path) -> str | None:
    existing = directory
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    user, _ = _user()
    try:
        # SQLite creates the ledger, its journal and -wal/-shm files here.
        with tempfile.TemporaryFile(dir=existing, prefix=".syncd-write-check-"):
            pass
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return _read_only_fs(existing)
        what = "" if existing == directory else f" (to create {directory})"
        return (
            f"directory {existing} is not writable by user {user}{what}: {_owner(existing)}; "
            f"{_fix([existing])} (under systemd, StateDirectory=syncd creates /var/lib/syncd "
            "for the service user)"
        )
    return None


def ledger_write_problem(database: Path) -> str | None:
    """Why ``database`` cannot be written by this process, or ``None`` when it can."""
    database = Path(database)
    problem = _directory_problem(database.parent)
    if problem is not None:
        return f"the ledger {database} cannot be written: {problem}"
    user, _ = _user()
    refused: list[Path] = []
    for suffix in _COMPANIONS:
        path = database.with_name(database.name + suffix)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            return f"the ledger {database} cannot be written: {path} is a directory"
        except OSError as exc:
            if exc.errno == errno.EROFS:
                return f"the ledger {database} cannot be written: {_read_only_fs(path)}"
            refused.append(path)
            continue
        os.close(fd)
    if not refused:
        return None
    details = "; ".join(f"{path.name} is {_owner(path)}" for path in refused)
    return (
        f"the ledger {database} is not writable by user {user}: {details}; "
        f"{_fix(refused)} (a ledger touched by `syncd once` run as another user keeps "
        "that owner) and start syncd again"
    )
