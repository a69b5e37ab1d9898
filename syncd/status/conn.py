"""The status server's dealings with one raw connection: who is calling, and "busy".

Kept apart from :mod:`syncd.status.server` (the server) so each stays small. Both
work on the accepted, non-blocking socket itself, before or instead of the
stream the server answers requests on.
"""

from __future__ import annotations

import contextlib
import socket
import struct

import anyio

from syncd.status.protocol import BUSY_ERROR, Caller, encode_reply

_DRAIN_BYTES = 65_536
"""Read and dropped from a turned-away client (its request is not answered)."""
BUSY_WAIT_S = 1.0
"""How long a turned-away client may take to send its request before the ``busy`` reply:
answering before the request arrives would make its send fail with EPIPE instead."""
_BUSY_LINE = encode_reply({"ok": False, "error": BUSY_ERROR, "busy": True})
_PEERCRED = struct.Struct("3i")
"""``struct ucred``: pid, uid, gid."""


def peer_caller(conn: socket.socket) -> Caller | None:
    """The connecting process's pid, uid and gid as the kernel recorded them at connect()."""
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except (OSError, AttributeError):  # AttributeError: no SO_PEERCRED on this platform
        return None
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Caller(uid=uid, gid=gid, pid=pid)


def say_busy(conn: socket.socket) -> None:
    """Tell a client it was turned away; it may ask again (syncd's own clients do)."""
    # Non-blocking, and a short line into an otherwise empty send buffer. OSError: the
    # client is gone already.
    with contextlib.suppress(OSError):
        conn.send(_BUSY_LINE)


async def turn_away(conn: socket.socket) -> None:
    """Answer ``busy`` and hang up, after the client's request (or a second) arrived."""
    try:
        with anyio.move_on_after(BUSY_WAIT_S):
            await anyio.wait_readable(conn)
        # OSError: nothing sent (yet), or the client is gone.
        with contextlib.suppress(OSError):
            conn.recv(_DRAIN_BYTES)
        say_busy(conn)
    finally:
        conn.close()
