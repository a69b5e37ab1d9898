"""The daemon's local status socket: the transport.

syncd answers questions about itself on a Unix socket speaking line-delimited
JSON: one request object per line in, one reply object per line out, as many
lines per connection as the client likes. This module owns only the
transport -- creating the socket safely, reading bounded lines, turning bad
input into error replies -- and hands every well-formed request to a
``handler`` coroutine the daemon supplies. The request and reply shapes live
in :mod:`syncd.status.protocol` and are re-exported here.

Safety rules the server holds:

- The socket file is mode 0660 and never world-accessible, not even between
  ``bind`` and ``chmod``: it is bound under a umask that leaves it owner-only.
- A stale socket left by a crash is replaced; a socket something still
  answers on is never taken over; a path that is not a socket (a regular
  file, a directory, a symlink) is never removed.
- A malformed or oversized request gets ``{"ok": false, "error": ...}``;
  a request line longer than ``max_request_bytes`` is never buffered whole.
  A failing handler gets ``"internal error"`` and a logged traceback. None of
  these stop the server or the daemon.
- No client can hold the server: a request line must arrive within
  ``read_timeout`` and a reply must be taken within ``write_timeout``; at most
  ``max_clients`` are served at once, the longest-idle one giving way to a new
  client (:mod:`syncd.status.limits`), and a client arriving while every slot is
  busy answering gets a one-line ``busy`` error at once. An accept error
  (EMFILE...) is logged and the server keeps listening.
- Every request reaches the handler with the caller's uid, gid and pid from
  the kernel (``SO_PEERCRED``) in :data:`CURRENT_CALLER`: ``confirm`` and
  ``unpark`` record who really asked, whatever name the client claims.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from functools import partial
from pathlib import Path

import anyio
import structlog
from anyio.abc import SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from syncd.status.conn import peer_caller, say_busy, turn_away
from syncd.status.limits import Admission, Slot

# The protocol shapes live in syncd.status.protocol (pure, no I/O); they are
# re-exported so the daemon finds everything status-related here.
from syncd.status.protocol import (
    CURRENT_CALLER,
    INTERNAL_ERROR,
    TOO_LARGE,
    Caller,
    ChannelStatus,
    ConfirmReply,
    ConfirmRequest,
    ErrorReply,
    ExplainRequest,
    Health,
    HeldCycle,
    MetricsReply,
    MetricsRequest,
    ParkedVariant,
    PingReply,
    PingRequest,
    RateWindowStatus,
    SourceStatus,
    StatusHandler,
    StatusReply,
    StatusRequest,
    StatusRequestError,
    UnparkReply,
    UnparkRequest,
    caller_of,
    confirm_args,
    encode_reply,
    explain_args,
    normalise_reply,
    parse_request,
    route,
    unpark_args,
)

__all__ = [
    "CURRENT_CALLER",
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_READ_TIMEOUT_S",
    "DEFAULT_WRITE_TIMEOUT_S",
    "DIRECTORY_MODE",
    "SOCKET_MODE",
    "Caller",
    "ChannelStatus",
    "ConfirmReply",
    "ConfirmRequest",
    "ErrorReply",
    "ExplainRequest",
    "Health",
    "HeldCycle",
    "MetricsReply",
    "MetricsRequest",
    "ParkedVariant",
    "PingReply",
    "PingRequest",
    "RateWindowStatus",
    "SourceStatus",
    "StatusHandler",
    "StatusReply",
    "StatusRequest",
    "StatusRequestError",
    "StatusServer",
    "StatusSocketError",
    "StatusSocketInUse",
    "UnparkReply",
    "UnparkRequest",
    "caller_of",
    "confirm_args",
    "explain_args",
    "parse_request",
    "route",
    "unpark_args",
]

log = structlog.get_logger("syncd.status")

SOCKET_MODE = 0o660
"""Owner and group may connect; others may not (operators join syncd's group)."""
DIRECTORY_MODE = 0o750
"""Mode of the socket's parent directory when syncd has to create it."""
DEFAULT_MAX_REQUEST_BYTES = 65_536
DEFAULT_MAX_CLIENTS = 128
"""Connections served at once: far more than the CLI calls and monitoring checks that
ask at the same time. The longest-idle one gives way to a new client."""
SEND_BUFFER_BYTES = 16_384
"""Kernel send buffer of each client connection (the kernel doubles it). Replies larger
than this simply go out as the client reads."""
DEFAULT_READ_TIMEOUT_S = 30.0
"""A client that sends no complete request line for this long is hung up on."""
DEFAULT_WRITE_TIMEOUT_S = 10.0
"""A client that does not take its reply within this long is hung up on."""
_BIND_UMASK = 0o177
"""Owner-only while binding; widened to SOCKET_MODE by an explicit chmod."""
_AF_UNIX_PATH_MAX = 107
"""``sun_path`` is 108 bytes on Linux, including the terminating NUL."""
_PROBE_TIMEOUT_S = 1.0
_LOGGED_CMD_LIMIT = 40


class StatusSocketError(Exception):
    """The status socket cannot be created at the configured path."""


class StatusSocketInUse(StatusSocketError):
    """Another process answers on the configured path; it is left alone."""


# --- socket file handling ------------------------------------------------------------


def _ensure_directory(directory: Path) -> None:
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        # mkdir's mode passes through the umask; say exactly what we mean.
        directory.chmod(DIRECTORY_MODE)
    except FileExistsError:
        if not directory.is_dir():
            raise StatusSocketError(f"{directory} exists and is not a directory") from None
    except OSError as exc:
        raise StatusSocketError(f"cannot create directory {directory}: {exc.strerror}") from exc
    log.info("status.directory_created", path=str(directory), mode=oct(DIRECTORY_MODE))


def _socket_exists(path: Path) -> bool:
    """Whether a socket file sits at ``path``; anything else there is refused."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a socket"
        raise StatusSocketError(
            f"{path} exists and is {kind}; refusing to replace it "
            "(move it away or choose another daemon.status_socket)"
        )
    return True


async def _clear_stale(path: Path) -> None:
    """Remove a socket file nobody answers on; refuse anything else at ``path``."""
    if not _socket_exists(path):
        return
    try:
        with anyio.fail_after(_PROBE_TIMEOUT_S):
            probe = await anyio.connect_unix(path)
    except ConnectionRefusedError:
        # Nobody listens: a socket file left behind by a crash.
        os.unlink(path)
        log.warning("status.stale_socket_removed", path=str(path))
        return
    except TimeoutError as exc:
        # A listener too busy to accept is still a listener.
        raise StatusSocketInUse(
            f"{path} is in use: a process is listening but did not accept within "
            f"{_PROBE_TIMEOUT_S:g} s (is another syncd running?)"
        ) from exc
    except OSError as exc:
        raise StatusSocketError(
            f"cannot tell whether {path} is in use ({exc.strerror}); "
            "remove it by hand if no syncd is running"
        ) from exc
    await probe.aclose()
    raise StatusSocketInUse(
        f"{path} is in use: another process answers on it (is another syncd running?)"
    )


def _bind_owner_only(sock: socket.socket, path: Path) -> None:
    """Bind under a umask that makes the new socket file owner-only.

    The umask is process-wide, so another thread creating a file in this
    instant would get a stricter mode than it asked for, never a looser one.
    No await happens in between, so no other task of this loop can observe it.
    """
    previous = os.umask(_BIND_UMASK)
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(previous)


def _open_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _bind_owner_only(sock, path)
        os.chmod(path, SOCKET_MODE)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StatusSocketInUse(
                f"{path} appeared while syncd was starting (is another syncd running?)"
            ) from exc
        raise StatusSocketError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    return sock


def _remove_if_ours(path: Path, identity: tuple[int, int]) -> None:
    """Unlink the socket file only if it is still the one this server bound."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if (info.st_dev, info.st_ino) == identity:
        path.unlink(missing_ok=True)


async def _drop(conn: socket.socket) -> None:
    """A client beyond every limit: closed unanswered (a flood is owed no reply)."""
    conn.close()


async def _accept(sock: socket.socket) -> socket.socket:
    """Accept one client as a raw non-blocking socket (OSError: EMFILE and friends).

    Not `anyio.create_unix_listener`: it removes whatever socket file is at
    the path (a live daemon's included). And not its UNIXSocketStream either:
    on asyncio (anyio 4.16) its raw-socket reads set a future from a reader
    callback without checking whether the waiting task was just cancelled, so
    stopping the server while a client's EOF is in flight logs an
    InvalidStateError. The transport-based stream has no such race.
    """
    while True:
        await anyio.wait_readable(sock)
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue  # the client gave up between readiness and accept
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            # A client that never reads fills at most this much, not the system default
            # (about 200 KiB): it bounds both the memory and the work one client costs.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        return conn


# --- the server -------------------------------------------------------------------------


class StatusServer:
    """Serves line-delimited JSON on a Unix socket, one task per client.

    ``handler`` gets each parsed request and returns the reply mapping; it may
    raise :class:`StatusRequestError` for a clean error reply. At most
    ``max_clients`` connections are served at once: when all are taken, the
    one idle longest is closed to make room, and a client arriving while every
    one of them is busy answering gets ``{"ok": false, "busy": true, ...}``.
    A connection that sends no complete line for ``read_timeout`` seconds, or
    does not take a reply within ``write_timeout`` seconds, is closed.
    """

    def __init__(
        self,
        path: Path,
        handler: StatusHandler,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT_S,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        if max_request_bytes < 16:
            raise ValueError("max_request_bytes must leave room for a request")
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.path = Path(path)
        self._handler = handler
        self._max_request_bytes = max_request_bytes
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._admission: Admission[socket.socket] = Admission("status", max_clients)
        self.slots = self._admission.slots
        self.accept_errors = self._admission.accept_errors

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled, then remove the socket file.

        Raises :class:`StatusSocketError` (or :class:`StatusSocketInUse`)
        before ``task_status.started()`` when the socket cannot be created.
        """
        path = self.path
        if len(os.fsencode(path)) > _AF_UNIX_PATH_MAX:
            raise StatusSocketError(
                f"{path} is longer than the {_AF_UNIX_PATH_MAX} bytes a Unix socket path may have"
            )
        _ensure_directory(path.parent)
        await _clear_stale(path)
        sock = _open_socket(path)
        try:
            info = path.lstat()
        except OSError as exc:
            sock.close()
            raise StatusSocketError(f"{path} vanished right after it was created") from exc
        identity = (info.st_dev, info.st_ino)
        try:
            async with anyio.create_task_group() as tg:
                log.info("status.listening", path=str(path), mode=oct(SOCKET_MODE))
                task_status.started()
                await self._admission.accept_loop(
                    partial(_accept, sock), tg, serve=self._serve_client, busy=turn_away, drop=_drop
                )
        finally:
            sock.close()
            _remove_if_ours(path, identity)
            log.info("status.stopped", path=str(path))

    async def _serve_client(self, conn: socket.socket, slot: Slot) -> None:
        # This task's own context: handlers of this connection's requests see this caller only.
        CURRENT_CALLER.set(peer_caller(conn))
        try:
            with slot.scope:
                try:
                    stream = await SocketStream.from_socket(conn)
                except BaseException:
                    conn.close()  # once wrapped, the stream closes it
                    raise
                async with stream:
                    try:
                        await self._converse(stream, slot)
                    finally:
                        if slot.evicted and not slot.writing:
                            # Closed to make room before its request was read: say so,
                            # and syncd's clients ask again. (Nothing else is queued
                            # on the socket, so the line cannot interleave a reply.)
                            say_busy(conn)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the client went away mid-reply; nothing to tell anyone
        except Exception:
            # A bug in this module must not take the daemon down with it.
            log.exception("status.connection_failed")
        finally:
            self.slots.release(slot)

    async def _converse(self, stream: SocketStream, slot: Slot) -> None:
        """Answer line after line until EOF, an oversized line, idleness or a stuck reader."""
        lines = BufferedByteReceiveStream(stream)
        while True:
            line: bytes | None = None
            too_large = last = False
            slot.waiting()
            with anyio.move_on_after(self._read_timeout):
                try:
                    line = await lines.receive_until(b"\n", self._max_request_bytes)
                except anyio.DelimiterNotFound:
                    too_large = True
                except anyio.IncompleteRead:
                    # EOF: answer an unterminated last request (`printf ... | nc -U`).
                    line, last = lines.buffer, True
            # receive_until may return a little more than the limit when the
            # newline arrives in the same chunk; the limit is the limit.
            if too_large or (line is not None and len(line) > self._max_request_bytes):
                # Reply and hang up: reading on to the newline would let one
                # client make the daemon swallow an unbounded stream.
                log.warning("status.request_too_large", limit=self._max_request_bytes)
                await self._send(stream, slot, encode_reply(TOO_LARGE))
                return
            if line is None:
                log.debug("status.read_timeout", seconds=self._read_timeout)
                return
            if last and not line.strip():
                return
            slot.working()
            reply = await self._answer(line)
            if not await self._send(stream, slot, reply):
                return
            if last:
                return

    async def _send(self, stream: SocketStream, slot: Slot, data: bytes) -> bool:
        """Send ``data`` within the write timeout; False (and the client dropped) if not."""
        # Waiting on a client to read is idle time: a new client may take the slot.
        slot.waiting()
        slot.writing = True
        with anyio.move_on_after(self._write_timeout):
            await stream.send(data)
            slot.writing = False
            return True
        log.info("status.write_timeout", seconds=self._write_timeout)
        return False

    async def _answer(self, line: bytes) -> bytes:
        try:
            request = parse_request(line)
        except StatusRequestError as exc:
            log.info("status.bad_request", error=str(exc))
            return encode_reply({"ok": False, "error": str(exc)})
        cmd = request["cmd"]
        try:
            reply = normalise_reply(await self._handler(request))
            return encode_reply(reply)
        except StatusRequestError as exc:
            return encode_reply({"ok": False, "error": str(exc)})
        except Exception:
            log.exception("status.handler_failed", cmd=str(cmd)[:_LOGGED_CMD_LIMIT])
            return encode_reply(INTERNAL_ERROR)
