"""The OAuth token cache in the ledger file (table ``oauth_tokens``, schema 3).

A token outlives the process that obtained it: ``syncd once`` from a timer
every minute, or a restarted daemon, takes the cached token instead of asking
the token endpoint again (Ankorstore: 60 token requests per hour, seed 000
L228; its tokens last 3600 s, L158-165). The token is as well protected as
the ledger file itself (owner and group ``syncd`` only, see
:func:`syncd.assembly.open_ledger`).

Rows are keyed by :class:`TokenKey` -- API, token URL and client id (or user
name) -- so a token is only ever handed back to the same account at the same
endpoint. Deciding whether a stored token may still be used is the
provider's job (:mod:`syncd.http.auth`); this module only stores and returns.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import structlog

_log = structlog.get_logger(__name__)

LEDGER_FILE_MODE = 0o660
"""The ledger's mode when syncd creates it (the umask may take more away): the
service user and the ``syncd`` group, which ``syncd unpark`` without a daemon needs."""


def protect_file(path: Path) -> None:
    """Create the ledger file owner-and-group only, or take access from others if it has any."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, LEDGER_FILE_MODE)
    except FileExistsError:
        pass
    except OSError:
        return  # SQLite reports an unusable path itself, with its own message
    else:
        os.close(fd)
        return
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
            if mode & 0o007:
                candidate.chmod(mode & ~0o007)
                _log.warning(
                    "ledger.permissions_tightened",
                    path=str(candidate),
                    mode=oct(mode),
                    now=oct(mode & ~0o007),
                )
        except OSError:
            continue  # absent, or not ours to change: SQLite opens it or says why


@dataclass(frozen=True, slots=True)
class TokenKey:
    """Whose token: the API, the URL it came from, and the client id or user name."""

    api: str
    token_url: str
    client_id: str


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token and its life in epoch seconds (the lifetime counts from the request's send)."""

    value: str
    obtained_at: float
    expires_at: float

    def __repr__(self) -> str:  # never print the token itself
        return f"StoredToken(obtained_at={self.obtained_at}, expires_at={self.expires_at})"


async def load_token(conn: aiosqlite.Connection, key: TokenKey) -> StoredToken | None:
    async with conn.execute(
        "SELECT access_token, obtained_at, expires_at FROM oauth_tokens"
        " WHERE api = ? AND token_url = ? AND client_id = ?",
        (key.api, key.token_url, key.client_id),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return StoredToken(value=str(row[0]), obtained_at=float(row[1]), expires_at=float(row[2]))


async def save_token(conn: aiosqlite.Connection, key: TokenKey, token: StoredToken) -> None:
    await conn.execute(
        """
        INSERT INTO oauth_tokens (api, token_url, client_id, access_token, obtained_at, expires_at)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (api, token_url, client_id) DO UPDATE SET
            access_token = excluded.access_token,
            obtained_at = excluded.obtained_at,
            expires_at = excluded.expires_at
        """,
        (key.api, key.token_url, key.client_id, token.value, token.obtained_at, token.expires_at),
    )


async def forget_token(conn: aiosqlite.Connection, key: TokenKey, value: str) -> None:
    """Drop the stored token if it is still ``value`` (a newer one is kept)."""
    await conn.execute(
        "DELETE FROM oauth_tokens"
        " WHERE api = ? AND token_url = ? AND client_id = ? AND access_token = ?",
        (key.api, key.token_url, key.client_id, value),
    )


async def forget_expired(conn: aiosqlite.Connection, now: float) -> None:
    """Remove tokens that can no longer be used: no reason to keep them on disk."""
    await conn.execute("DELETE FROM oauth_tokens WHERE expires_at <= ?", (now,))
