"""`syncd explain SKU`: how each channel's published number for a SKU was derived.

Every number syncd publishes can be traced back to ledger rows
(ARCHITECTURE.md invariant 5). The outbox keeps, per (channel, SKU), the
compact basis of the current desired value (its numbers, the channel rule and
the ledger transaction it was computed at, `syncd.ledger.basis`), and
`Ledger.explanation` writes the explanation out from it on demand: the
balances and reservations that fed the pool (read back from the append-only
ledger as of that transaction), then each rule that applied (bundle minimum
and its limiting component, buffer, percentage, cap, whole packs, clamp).
This module adds what the ledger knows around it: the postings
behind the balances (which source observed them and when, in units and the
source's own batches), the open reservations with their order references,
the sources' last successful reads, and the last push of the value.

The same reply comes from two places:

- the running daemon, over the status socket (``{"cmd": "explain"}``), which
  calls :func:`explain_sku` on its open ledger;
- the ledger file itself when no daemon answers, opened **read-only**
  (:func:`open_read_only`), so explaining never changes anything.

Reply (``"from"`` says which of the two answered)::

    {"ok": true, "sku": "B1", "from": "daemon", "generated_at": "...",
     "channels": [{"channel": "ankorstore", "published": 2, "acknowledged": 2,
                   "last_push": {"at": "...", "quantity": 2, "status": "acknowledged",
                                 "request_id": "...", "reply": null},
                   "inputs": {"PY:activeants/available/": 30, ...},
                   "steps": [{"rule": "bundle", "before": 0, "after": 2, "detail": "..."}],
                   "limiting_component": "PZ", "result": 2,
                   "components": [{"sku": "PY", "per_bundle": 10, "available": 30,
                                   "complete": 3}, ...]}],
     "reservations": [{"channel": "...", "order_ref": "...", "sku": "...", "quantity": 5,
                       "location": "activeants", "since": "..."}],
     "sources": [{"feed": "activeants", "last_success": "...", "cursor": "..."}],
     "postings": [{"txn_id": 7, "kind": "snapshot", "source": "activeants", ...}]}
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiosqlite
import anyio

from syncd.explain_render import render_explain
from syncd.ledger.connection import Database
from syncd.ledger.queries import LedgerEntry
from syncd.ledger.schema import SCHEMA_VERSION
from syncd.ledger.store import Ledger
from syncd.model import Reservation, StockStatus

POSTING_LIMIT = 20
"""Newest postings shown per SKU (the SKU itself and each bundle component)."""
PUSH_LOG_LIMIT = 20
DEFAULT_CHANNELS = ("ankorstore", "fabric")
"""Channels looked up when explaining straight from the ledger file."""
EXIT_OK = 0
EXIT_UNKNOWN = 1
EXIT_ERROR = 2

Origin = Literal["daemon", "ledger"]

_BUNDLE_PART = re.compile(
    r"(?P<sku>[^\s(),]+) (?P<available>-?\d+) // (?P<per>\d+) = (?P<complete>-?\d+)"
)
"""One component in the ``bundle`` step's detail: ``PY 30 // 10 = 3`` (syncd.allocation)."""


class UnknownSku(LookupError):
    """Neither the outbox nor the ledger has anything for the SKU."""


class ExplainError(Exception):
    """The ledger or config cannot be read; ``str()`` is for people."""


# --- gathering (from an open ledger) --------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def bundle_components(explanation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The components of a bundle explanation, parsed from its ``bundle`` step."""
    for step in explanation.get("steps") or []:
        if isinstance(step, Mapping) and step.get("rule") == "bundle":
            return [
                {
                    "sku": match["sku"],
                    "per_bundle": int(match["per"]),
                    "available": int(match["available"]),
                    "complete": int(match["complete"]),
                }
                for match in _BUNDLE_PART.finditer(str(step.get("detail", "")))
            ]
    return []


def _leaf_skus(explanation: Mapping[str, Any]) -> set[str]:
    """Single SKUs a bundle's inputs were drawn from (``PY:activeants/available/``)."""
    if not explanation.get("limiting_component"):
        return set()
    inputs = explanation.get("inputs") or {}
    return {str(key).split(":", 1)[0] for key in inputs if ":" in str(key)}


def _posting(entry: LedgerEntry) -> dict[str, Any]:
    account = entry.account
    return {
        "txn_id": entry.txn_id,
        "kind": entry.kind.value,
        "source": entry.source,
        "key": entry.key,
        "observed_at": _iso(entry.observed_at),
        "recorded_at": _iso(entry.recorded_at),
        "sku": account.sku,
        "account": f"{account.location}/{account.status.value}/{account.lot}",
        "counter": account.status is StockStatus.VOID,
        "quantity": entry.quantity,
        "movement": entry.movement,
        "batches": entry.batches,
        "unit_multiplier": entry.unit_multiplier,
        "external_id": entry.external_id,
        "ref": entry.ref,
    }


def _reservation(reservation: Reservation) -> dict[str, Any]:
    return {
        "channel": reservation.channel,
        "order_ref": reservation.order_ref,
        "sku": reservation.sku,
        "quantity": reservation.quantity,
        "location": reservation.location,
        "since": _iso(reservation.since),
    }


async def _channel_entry(ledger: Ledger, channel: str, sku: str) -> dict[str, Any] | None:
    stored = await ledger.explanation(channel, sku)
    if stored is None:
        return None
    log = await ledger.push_log(channel, sku, limit=PUSH_LOG_LIMIT)
    acknowledged = next((e.quantity for e in log if e.status == "acknowledged"), None)
    last = log[0] if log else None
    return {
        "channel": channel,
        "published": stored.get("result"),
        "acknowledged": acknowledged,
        "last_push": None
        if last is None
        else {
            "at": _iso(last.at),
            "quantity": last.quantity,
            "status": last.status,
            "request_id": last.request_id,
            "reply": last.reply if last.status in ("parked", "failed") else None,
        },
        "inputs": dict(stored.get("inputs") or {}),
        "steps": list(stored.get("steps") or []),
        "limiting_component": stored.get("limiting_component"),
        "result": stored.get("result"),
        "components": bundle_components(stored),
    }


async def explain_sku(
    ledger: Ledger,
    sku: str,
    *,
    channels: Sequence[str],
    origin: Origin,
    now: datetime | None = None,
    posting_limit: int = POSTING_LIMIT,
) -> dict[str, Any]:
    """The ``explain`` reply for ``sku`` on ``channels``; :class:`UnknownSku` if nothing is known."""
    entries = [e for e in [await _channel_entry(ledger, c, sku) for c in channels] if e]
    skus = {sku}
    for entry in entries:
        skus |= _leaf_skus(entry)
    ordered = [sku, *sorted(skus - {sku})]
    postings: list[dict[str, Any]] = []
    for each in ordered:
        postings.extend(_posting(p) for p in await ledger.explain_rows(each, posting_limit))
    reservations = [_reservation(r) for r in await ledger.open_reservations(ordered)]
    if not entries and not postings and not reservations:
        raise UnknownSku(sku)
    feeds = {p["source"] for p in postings}
    sources = [
        {"feed": s.feed, "last_success": _iso(s.last_success), "cursor": s.cursor}
        for s in await ledger.feed_states()
        if s.feed in feeds
    ]
    return {
        "ok": True,
        "sku": sku,
        "from": origin,
        "generated_at": (now or ledger.clock.now()).isoformat(),
        "channels": entries,
        "reservations": reservations,
        "sources": sources,
        "postings": postings,
    }


# --- the ledger file, read-only --------------------------------------------------------


async def open_read_only(path: Path) -> Ledger:
    """Open the ledger at ``path`` for reading only; nothing is created or migrated.

    ``mode=ro`` still needs the WAL index file beside the database; an
    operator who may read the file but not write its directory gets an
    ``immutable`` snapshot instead (exact after a clean shutdown, which
    checkpoints the WAL into the file).
    """
    if not await anyio.Path(path).is_file():
        raise ExplainError(f"no ledger at {path} (has syncd run with this config?)")
    target = quote(str(await anyio.Path(path).absolute()))
    conn: aiosqlite.Connection | None = None
    last_error: sqlite3.Error | None = None
    for options in ("mode=ro", "mode=ro&immutable=1"):
        try:
            conn = await aiosqlite.connect(
                f"file:{target}?{options}", uri=True, isolation_level=None
            )
            await conn.execute("PRAGMA busy_timeout = 5000")
            async with conn.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            break
        except sqlite3.Error as exc:
            if conn is not None:
                await conn.close()
                conn = None
            last_error = exc
    else:
        raise ExplainError(f"cannot read the ledger {path}: {last_error}")
    assert conn is not None
    version = int(row[0]) if row else 0
    if version == 0 or version > SCHEMA_VERSION:
        await conn.close()
        raise ExplainError(
            f"{path} is not a ledger this syncd can read (schema version {version}, "
            f"expected 1..{SCHEMA_VERSION})"
        )
    return Ledger(Database(conn, path))


# --- CLI -----------------------------------------------------------------------------------


def _daemon_paths(config_path: Path) -> tuple[Path, Path]:
    """``(database, status_socket)`` from ``[daemon]`` alone (no secrets, no catalog)."""
    from syncd.config import read_daemon_section  # noqa: PLC0415 -- only the CLI needs it

    section = read_daemon_section(config_path)
    return section.database, section.status_socket


async def _from_daemon(socket: Path, sku: str, channel: str | None) -> dict[str, Any] | None:
    """The daemon's reply, or None when no daemon answers (the caller reads the file)."""
    from syncd.status_client import StatusUnreachable, request  # noqa: PLC0415

    try:
        return await request(socket, {"cmd": "explain", "sku": sku, "channel": channel})
    except StatusUnreachable:
        return None


async def _from_ledger(database: Path, sku: str, channel: str | None) -> dict[str, Any]:
    ledger = await open_read_only(database)
    try:
        channels = [channel] if channel else list(DEFAULT_CHANNELS)
        return await explain_sku(ledger, sku, channels=channels, origin="ledger")
    finally:
        await ledger.close()


async def explain(database: Path, socket: Path, sku: str, channel: str | None) -> dict[str, Any]:
    """Ask the daemon on ``socket``; read the ledger file ``database`` when none answers."""
    reply = await _from_daemon(socket, sku, channel)
    if reply is not None:
        return reply
    try:
        return await _from_ledger(database, sku, channel)
    except UnknownSku:
        return {"ok": False, "error": f"nothing is known about SKU {sku!r} in {database}"}


def cli_explain(args: argparse.Namespace) -> int:
    """``syncd explain SKU [--channel NAME] [--config PATH] [--json]``.

    Exit 0 when explained, 1 when the SKU (or channel) is unknown, 2 when
    neither the daemon nor the ledger could be read.
    """
    try:
        database, socket = _daemon_paths(Path(args.config))
    except Exception as exc:  # any reason the file cannot tell us means the same
        print(
            f"syncd explain: cannot read [daemon] from {args.config}: {_one_line(exc)}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        reply = anyio.run(explain, database, socket, args.sku, args.channel)
    except ExplainError as exc:
        print(f"syncd explain: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    if not reply.get("ok"):
        print(f"syncd explain: {reply.get('error', 'unknown error')}", file=sys.stderr)
        return EXIT_UNKNOWN
    if not reply.get("channels") and args.channel:
        print(
            f"syncd explain: channel {args.channel} publishes nothing for {args.sku}",
            file=sys.stderr,
        )
    if not args.json:
        print(render_explain(reply))
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__
