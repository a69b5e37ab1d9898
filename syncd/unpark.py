"""`syncd unpark`: make variants a channel refused pushable again.

A channel that refuses a value syncd cannot fix by resending (an unknown
variant, a 422 on one operation, ``isAlwaysInStock`` left alone...) gets it
*parked*: the outbox stops retrying it and `syncd status` lists it with the
reason. Once the operator has fixed the cause (mapped the variant, changed
the listing), ``syncd unpark CHANNEL SKU...`` -- or ``--all`` -- puts the
current value back in the queue; a channel that still refuses it parks it
again with the new reason. Each unpark is written to the push log (status
``unparked``) with who asked and why, so `syncd explain` shows it: who is the
real user, as the kernel reports it (the daemon reads the socket's peer
credentials, the no-daemon path its own uid); ``--reason`` is kept as a note
beside it, e.g. ``unparked by alice (uid 1000); note: listing fixed``.

With a daemon running, the request goes over its status socket, so the
daemon's pusher is woken at once. With none (``syncd once`` from a timer),
the ledger file is changed directly, under the same lock ``syncd run``
takes, so the two can never race.

Exit status: 0 when every named SKU was unparked (``--all``: whatever was
parked, possibly nothing), 1 when some named SKU was not parked, 2 when
neither the daemon nor the ledger could be reached or the request is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio

from syncd.callers import local_caller
from syncd.config import DaemonSection, read_daemon_section
from syncd.ledger.store import Ledger
from syncd.runtime_lock import AlreadyRunning, LockError, RuntimeLock
from syncd.status_client import StatusUnreachable, request
from syncd.status_protocol import StatusRequestError, audit_note, unpark_args

EXIT_OK = 0
EXIT_NOT_PARKED = 1
EXIT_ERROR = 2


class UnparkError(Exception):
    """Neither the daemon nor the ledger could do it; ``str()`` says why, for people."""


def build_request(
    channel: str, skus: list[str], everything: bool, reason: str | None
) -> dict[str, Any]:
    """The ``unpark`` request the CLI sends; ``reason`` becomes its note.

    It names no user: the daemon takes who is asking from the socket's peer
    credentials, and would keep a claimed name only as part of the note.
    """
    request: dict[str, Any] = {
        "cmd": "unpark",
        "channel": channel,
        "skus": "all" if everything else skus,
    }
    if reason:
        request["note"] = reason
    return request


async def unpark(config_path: Path, socket: Path | None, payload: dict[str, Any]) -> dict[str, Any]:
    """Ask the daemon; when none answers, unpark in the ledger file under syncd's lock."""
    channel, skus, note = unpark_args(payload)
    section: DaemonSection | None = None
    if socket is None:
        section = read_daemon_section(config_path)
        socket = section.status_socket
    try:
        return await request(socket, payload)
    except StatusUnreachable as no_daemon:
        if section is None:
            section = read_daemon_section(config_path)
        database = section.database
        lock = RuntimeLock(section.lock_path, database)
        try:
            lock.acquire()
        except AlreadyRunning as exc:
            raise UnparkError(f"{exc}, but it did not answer: {no_daemon}") from exc
        except LockError as exc:
            raise UnparkError(f"no daemon answers ({no_daemon}) and {exc}") from exc
        try:
            if not await anyio.Path(database).is_file():
                raise UnparkError(
                    f"no daemon answers and there is no ledger at {database} "
                    "(has syncd run with this config?)"
                ) from no_daemon
            async with await Ledger.open(database) as ledger:
                wanted = None if skus == "all" else skus
                # No socket, no peer: the caller is this process, by its real uid.
                recorded = audit_note("unparked", local_caller().describe(), note)
                unparked = await ledger.unpark_items(channel, wanted, ledger.clock.now(), recorded)
        finally:
            lock.release()
    missing = [] if skus == "all" else sorted(set(skus) - set(unparked))
    return {"ok": True, "channel": channel, "unparked": unparked, "not_parked": missing}


def cli_unpark(args: argparse.Namespace) -> int:
    """``syncd unpark CHANNEL (SKU... | --all) [--reason TEXT] [--socket PATH] [--config PATH] [--json]``."""
    if bool(args.skus) == bool(args.all):
        print("syncd unpark: name the SKUs to unpark, or pass --all (not both)", file=sys.stderr)
        return EXIT_ERROR
    payload = build_request(args.channel, list(args.skus), args.all, args.reason)
    try:
        reply = anyio.run(
            unpark, Path(args.config), Path(args.socket) if args.socket else None, payload
        )
    except (StatusRequestError, UnparkError) as exc:
        print(f"syncd unpark: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        print(f"syncd unpark: cannot read [daemon] from {args.config}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    if not reply.get("ok"):
        print(f"syncd unpark: {reply.get('error', 'unknown error')}", file=sys.stderr)
        return EXIT_ERROR
    unparked = list(reply.get("unparked") or [])
    missing = list(reply.get("not_parked") or [])
    if not args.json:
        shown = ", ".join(unparked) if unparked else "nothing was parked"
        print(f"unparked on {args.channel}: {shown}")
        if missing:
            print(f"not parked on {args.channel} (left alone): {', '.join(missing)}")
    return EXIT_NOT_PARKED if missing else EXIT_OK
