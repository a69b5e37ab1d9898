"""A consistent copy of the ledger for `syncd once --dry-run`, leaving the live file untouched."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def _backup(uri: str, target: Path) -> None:
    with (
        closing(sqlite3.connect(uri, uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def copy_ledger(source: Path, target: Path) -> None:
    """A consistent copy of the ledger, leaving the live file and its directory untouched.

    Without a ``-wal`` file the database was closed cleanly and the main file
    holds everything: it is read as immutable, which creates no ``-wal`` or
    ``-shm`` beside it. If a daemon opened it meanwhile (a ``-wal`` appeared),
    the copy is taken again through SQLite's WAL-aware read-only backup.
    """
    if not source.exists():
        return
    uri = source.absolute().as_uri()
    wal = source.with_name(source.name + "-wal")
    if not wal.exists():
        _backup(f"{uri}?mode=ro&immutable=1", target)
        if not wal.exists():
            return
        target.unlink()
    _backup(f"{uri}?mode=ro", target)
