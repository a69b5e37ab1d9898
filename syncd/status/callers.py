"""Who runs an operator command (``confirm``, ``unpark``), as the kernel says.

The daemon learns a status-socket client's uid from ``SO_PEERCRED``
(:func:`syncd.status.server.peer_caller`); a command that works on the ledger
directly (``syncd unpark`` with no daemon, ``syncd once --confirm``) is the
caller itself, :func:`os.getuid`. Either way the recorded user is the real
one; a name the client supplies is only ever kept as a note beside it
(:func:`syncd.status.protocol.audit_note`).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import replace

import anyio

from syncd.status.protocol import Caller

UNIDENTIFIED = "an unidentified caller"
"""Recorded when the kernel gave no peer credentials (not a Linux socket)."""


def user_name(uid: int) -> str | None:
    """The login name of ``uid``, or None when it has none (containers, deleted users)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OSError):
        return None


def local_caller() -> Caller:
    """This process's own real uid, gid and pid, with the user name."""
    uid = os.getuid()
    return Caller(uid=uid, gid=os.getgid(), pid=os.getpid(), user=user_name(uid))


async def describe_caller(caller: Caller | None) -> str:
    """``alice (uid 1000)`` for a peer; the name is looked up off the event loop (NSS may block)."""
    if caller is None:
        return UNIDENTIFIED
    if caller.user is None:
        caller = replace(caller, user=await anyio.to_thread.run_sync(user_name, caller.uid))
    return caller.describe()
