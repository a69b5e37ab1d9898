"""`syncd run --config PATH`: the long-running daemon, its start, reload and stop.

Start-up, in order (systemd/syncd.service is ``Type=notify``):

0. the ledger's directory and files are checked writable
   (:mod:`syncd.ledger.writable`): SQLite would open a read-only ledger
   without complaint and fail every write after ``READY=1``, so syncd
   exits 1 instead, saying what to fix;
1. the single-instance lock on ``daemon.lock_path`` is taken
   (:mod:`syncd.runtime_lock`): a second syncd on the same ledger exits 1
   with "another syncd is running on <db> (pid N)", touching nothing;
2. SIGTERM, SIGINT and SIGHUP are caught from then on (one arriving during
   start-up is handled as soon as start-up is complete);
3. the ledger is opened and the adapters are assembled
   (:func:`syncd.assembly.assemble`);
4. the status socket listens (:mod:`syncd.status`), the work loops start
   (:mod:`syncd.scheduler`), and ``READY=1`` goes to systemd with a first
   ``STATUS=`` line.

While running, a heartbeat task beats every tick unless the engine is stuck
in one recompute; ``WATCHDOG=1`` is sent at half of ``WATCHDOG_USEC``
only while the heartbeat is fresh (:func:`syncd.systemd.watchdog_loop`), so
a wedged daemon is restarted by systemd. ``STATUS=`` is refreshed when it
changes (e.g. ``ok: 3 sources fresh, ankorstore 0 queued, fabric 2 queued``).

**SIGHUP** (``RELOADING=1`` ... ``READY=1``): the config is re-read and
validated off the event loop, in a task of its own, so the signal loop keeps
listening: a SIGTERM during a reload abandons the reading at once (a secret
file that blocks or never ends cannot hold the stop up). An invalid config, or one that moves the
ledger, is rejected with the reason logged (``daemon.reload_rejected``) and
shown in ``syncd status``; the old config keeps running. A valid one is
assembled first, then the old loops finish their work in flight, and new
sources, channels and engine start on the same open ledger. Counters and
the ledger's state (outbox, holds, cursors) carry over.

**SIGTERM / SIGINT** (``STOPPING=1``): no new work starts; work in flight
gets ``daemon.shutdown_timeout`` seconds to finish, then it is abandoned
(a push cut short is resent after the restart -- values are absolute, so a
resend is harmless; a source page cut short is rolled back with its cursor).
The daemon exits 0. A second SIGTERM/SIGINT abandons in-flight work at once.

Logs go to **stderr**: stdout is kept free for command output, and under
systemd both streams reach the journal through the same connection
(``JOURNAL_STREAM`` matches either), so priorities still work.

**Ledger integrity**: at start the ledger must pass ``PRAGMA quick_check``
and its invariants (:mod:`syncd.ledger.integrity`); otherwise syncd refuses
to start with the problem and the recovery. While running, the ledger path
is checked each tick: a file removed or replaced under the open connection
makes health ``failing`` and the daemon stop with exit status 1, so systemd
restarts it on the file the path names now.

Exit codes: 0 stopped cleanly, 1 could not start (lock held, socket in use,
ledger damaged or unusable, adapters unusable) or the ledger file was
removed or replaced while running, 78 invalid config (``EX_CONFIG`` of
sysexits.h; the unit's ``RestartPreventExitStatus=78`` keeps systemd from
restarting a config that cannot work; 2 is argparse's usage error).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from syncd.assembly import Assembly, assemble
from syncd.clock import Clock, SystemClock
from syncd.config import Config, ConfigError, load_config
from syncd.ledger.guard import LedgerRefused, open_checked
from syncd.ledger.store import Ledger
from syncd.ledger.writable import ledger_write_problem
from syncd.logs import configure_logging, register_secret
from syncd.metrics import Metrics, PrometheusEndpoint
from syncd.offthread import in_daemon_thread
from syncd.runtime_lock import AlreadyRunning, LockError, RuntimeLock
from syncd.scheduler import Scheduler, describe_error, readback_intervals
from syncd.status import StatusServer, StatusSocketError
from syncd.status_handler import ApiCounters, DaemonInfo, StatusService, status_line
from syncd.systemd import Heartbeat, Notifier, watchdog_interval, watchdog_loop

log = structlog.get_logger("syncd.daemon")

EXIT_OK = 0
EXIT_STARTUP = 1
EXIT_CONFIG = 78
"""EX_CONFIG (sysexits.h): distinct from a crash (1) and a usage error (2), so the unit
can refuse to restart on it (``RestartPreventExitStatus=78``)."""
EXIT_LEDGER_LOST = 1
"""The ledger file was removed or replaced while running: systemd restarts syncd."""

TICK_S = 1.0
"""Heartbeat period (shorter when the watchdog interval asks for it)."""
STATUS_EVERY_S = 5.0
"""How often the ``STATUS=`` line is recomputed (it is sent only when it changes)."""
ENGINE_STUCK_AFTER_S = 300.0
"""A recompute running longer than this means the main loop is wedged: the heartbeat stops.

Only the engine counts: a source or a pusher may legitimately wait a long
time inside one unit of work (a rate window that refills in an hour), which
is reported in ``syncd status`` but must not get syncd killed by systemd.
"""
CLOSE_TIMEOUT_S = 2.0
"""Bound on closing adapters and clients once the loops have stopped."""

Assemble = Callable[[Config, Ledger], Assembly]


class StartupError(Exception):
    """syncd cannot start; ``str()`` says why, for the operator."""


class ReloadRejected(Exception):
    """A new config that is valid but cannot be applied to the running daemon."""


def register_secrets(config: Config) -> None:
    """Every resolved API secret is masked in every log line (the loader does too)."""
    for section in config.apis.present().values():
        for name in section.SECRETS:
            try:
                register_secret(section.secret(name).get_secret_value())
            except LookupError:
                continue  # not resolved: no enabled integration uses this API


def _default_assemble(clock: Clock) -> Assemble:
    def build(config: Config, ledger: Ledger) -> Assembly:
        return assemble(config, ledger, clock=clock)

    return build


class Daemon:
    """One syncd process: lock, ledger, status socket, work loops, systemd."""

    def __init__(
        self,
        config: Config,
        config_path: Path,
        *,
        notifier: Notifier | None = None,
        clock: Clock | None = None,
        assemble_fn: Assemble | None = None,
        load: Callable[[Path], Config] = load_config,
        metrics_port: int | None = None,
        env: Mapping[str, str] | None = None,
        tick: float = TICK_S,
        status_every: float = STATUS_EVERY_S,
        stuck_after: float = ENGINE_STUCK_AFTER_S,
    ) -> None:
        self.config = config
        self.config_path = Path(config_path)
        self.notifier = notifier if notifier is not None else Notifier.from_env(env)
        self.clock: Clock = clock or SystemClock()
        """The process's one clock: the ledger is opened with it, assembly hands it on."""
        self._assemble = assemble_fn or _default_assemble(self.clock)
        self._load = load
        self.metrics_port = metrics_port
        self._watchdog_s = watchdog_interval(env)
        self.tick = min(tick, self._watchdog_s / 4) if self._watchdog_s else tick
        self.status_every = status_every
        self.stuck_after = stuck_after
        self.metrics = Metrics()
        self.api_counters = ApiCounters(monotonic=self.clock.monotonic)
        self.heartbeat = Heartbeat(self.clock.monotonic)
        self.info = DaemonInfo(
            config_path=str(self.config_path.absolute()),
            started_at=self.clock.now(),
            started_monotonic=self.clock.monotonic(),
        )
        self.scheduler: Scheduler | None = None
        self.status: StatusService | None = None
        self.metrics_bound_port: int | None = None
        self._stuck_reported = False
        self.lost_ledger: str | None = None
        """Why the ledger file stopped being the one opened (then the exit status is 1)."""
        self._reload_scope: anyio.CancelScope | None = None
        self._reload_done: anyio.Event | None = None
        self._reload_again = False

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; raises :class:`StartupError` if syncd cannot start."""
        self._check_ledger_writable()
        lock = RuntimeLock(self.config.daemon.lock_path, self.config.daemon.database)
        try:
            lock.acquire()
        except (AlreadyRunning, LockError) as exc:
            raise StartupError(str(exc)) from exc
        try:
            signals = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
            with signals as received:
                ledger = await self._open_ledger()
                try:
                    await self._serve(ledger, received)
                finally:
                    with anyio.CancelScope(shield=True):
                        await ledger.close()
        finally:
            lock.release()
        if self.lost_ledger is not None:
            log.error("daemon.stopped", reason=self.lost_ledger, exit_status=EXIT_LEDGER_LOST)
            return EXIT_LEDGER_LOST
        log.info("daemon.stopped")
        return EXIT_OK

    def _check_ledger_writable(self) -> None:
        database = Path(self.config.daemon.database)
        try:
            problem = ledger_write_problem(database)
        except OSError as exc:
            problem = f"cannot check the ledger {database}: {describe_error(exc)}"
        if problem is not None:
            raise StartupError(problem)

    async def _open_ledger(self) -> Ledger:
        path = Path(self.config.daemon.database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return await open_checked(path, clock=self.clock, config=self.info.config_path)
        except LedgerRefused as exc:
            raise StartupError(str(exc)) from exc
        except Exception as exc:
            raise StartupError(
                f"cannot open the ledger {self.config.daemon.database}: {describe_error(exc)}"
            ) from exc

    async def _serve(self, ledger: Ledger, signals: Any) -> None:
        try:
            assembly = self._assemble(self.config, ledger)
        except Exception as exc:
            raise StartupError(
                f"cannot set up sources and channels: {describe_error(exc)}"
            ) from exc
        scheduler = self._new_scheduler(assembly)
        status = StatusService(
            scheduler=self._current,
            metrics=self.metrics,
            api_counters=self.api_counters,
            info=self.info,
            now=self.clock.now,
            monotonic=self.clock.monotonic,
            stuck_after=self.stuck_after,
        )
        self.status = status
        server = StatusServer(self.config.daemon.status_socket, status.handler())
        failed: str | None = None
        try:
            async with anyio.create_task_group() as tg:
                # Raising in here would reach the caller wrapped in an
                # ExceptionGroup; a start-up failure is carried out instead.
                try:
                    await tg.start(server.serve)
                    if self.metrics_port is not None:
                        endpoint = PrometheusEndpoint(status.collect, port=self.metrics_port)
                        self.metrics_bound_port = await tg.start(endpoint.serve)
                except (StatusSocketError, OSError) as exc:
                    failed = str(exc)
                    tg.cancel_scope.cancel()
                else:
                    await tg.start(scheduler.run)
                    self._started(assembly)
                    tg.start_soon(self._heartbeat_loop, name="heartbeat")
                    tg.start_soon(self._ledger_watch_loop, tg, ledger, name="ledger-watch")
                    tg.start_soon(self._status_loop, name="status-line")
                    if self._watchdog_s:
                        ping = partial(
                            watchdog_loop,
                            self.notifier,
                            self.heartbeat.is_fresh_within(self._watchdog_s),
                            interval=self._watchdog_s,
                        )
                        tg.start_soon(ping, name="watchdog")
                    await self._handle_signals(tg, ledger, signals)
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close(self._current().assembly)
        if failed is not None:
            raise StartupError(failed)

    def _started(self, assembly: Assembly) -> None:
        line = "starting: first reads in progress"
        self.notifier.ready(line)
        log.info(
            "daemon.ready",
            pid=os.getpid(),
            config=self.info.config_path,
            database=str(self.config.daemon.database),
            status_socket=str(self.config.daemon.status_socket),
            sources=[s.name for s in assembly.sources],
            channels=list(assembly.channels),
            watchdog_s=self._watchdog_s,
        )

    def _current(self) -> Scheduler:
        assert self.scheduler is not None, "the scheduler starts before the status socket answers"
        return self.scheduler

    def _new_scheduler(self, assembly: Assembly) -> Scheduler:
        scheduler = Scheduler(
            assembly,
            self.metrics,
            cycle_interval=self.config.daemon.cycle_interval,
            readback_intervals=readback_intervals(assembly),
        )
        self.scheduler = scheduler
        return scheduler

    async def _handle_signals(self, tg: TaskGroup, ledger: Ledger, signals: Any) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                # Off the signal path: reading the config (a slow disk, a secret
                # file that is not what it should be) must never hold up SIGTERM.
                if self._reload_done is None:
                    self._reload_done = anyio.Event()
                    tg.start_soon(self._reload_in_background, tg, ledger, name="reload")
                else:
                    self._reload_again = True  # read the file once more when this one ends
                continue
            name = signal.Signals(signum).name
            log.info("daemon.stopping", signal=name, timeout_s=self.config.daemon.shutdown_timeout)
            self.notifier.stopping(f"stopping ({name}): finishing in-flight work")
            await self._abandon_reload()
            tg.start_soon(self._abandon_on_second_signal, signals, name="second-signal")
            await self._current().drain(self.config.daemon.shutdown_timeout)
            return

    async def _abandon_on_second_signal(self, signals: Any) -> None:
        async for signum in signals:
            if signum != signal.SIGHUP:
                log.warning("daemon.abandon_requested", signal=signal.Signals(signum).name)
                self._current().cancel()
                return

    async def _close(self, assembly: Assembly) -> None:
        with anyio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            try:
                await assembly.aclose()
            except Exception as exc:
                log.warning("daemon.close_failed", error=describe_error(exc))
        if scope.cancelled_caught:
            log.warning("daemon.close_timed_out", timeout_s=CLOSE_TIMEOUT_S)

    # --- reload ------------------------------------------------------------------------

    async def _reload_in_background(self, tg: TaskGroup, ledger: Ledger) -> None:
        """Reload until no further SIGHUP arrived meanwhile; a stop cancels the reading."""
        try:
            again = True
            while again:
                self._reload_again = False
                with anyio.CancelScope() as scope:
                    self._reload_scope = scope
                    await self.reload(tg, ledger)
                self._reload_scope = None
                again = self._reload_again and not scope.cancelled_caught
        finally:
            done, self._reload_done = self._reload_done, None
            if done is not None:
                done.set()

    async def _abandon_reload(self) -> None:
        """Stop a reload still reading its config; wait for one already applying."""
        scope, done = self._reload_scope, self._reload_done
        if scope is not None:
            scope.cancel()
            log.info("daemon.reload_abandoned", reason="stopping")
        if done is not None:
            await done.wait()

    async def reload(self, tg: TaskGroup, ledger: Ledger) -> bool:
        """Apply the config file again (SIGHUP); False when the new one is rejected.

        Reading and validating run in a daemon thread that a stop abandons
        (:func:`syncd.offthread.in_daemon_thread`): until the new config is assembled,
        cancelling this leaves the running config untouched. Applying it is shielded and
        bounded by the drain and close timeouts.
        """
        self.notifier.reloading("reloading the configuration")
        log.info("daemon.reload_requested", config=self.info.config_path)
        try:
            config = await in_daemon_thread(self._load, self.config_path)
            self._check_reloadable(config)
            assembly = self._assemble(config, ledger)
        except ConfigError as exc:
            return self._reject([str(problem) for problem in exc.problems])
        except ReloadRejected as exc:
            return self._reject([str(exc)])
        except Exception as exc:
            return self._reject([f"cannot set up sources and channels: {describe_error(exc)}"])
        with anyio.CancelScope(shield=True):
            await self._apply(tg, config, assembly)
        return True

    async def _apply(self, tg: TaskGroup, config: Config, assembly: Assembly) -> None:
        register_secrets(config)
        old = self._current()
        await old.drain(self.config.daemon.shutdown_timeout)
        self.api_counters.retire(old.assembly.clients)
        await self._close(old.assembly)
        old_logs = (self.config.daemon.log_format, self.config.daemon.log_level)
        if (config.daemon.log_format, config.daemon.log_level) != old_logs:
            configure_logging(config.daemon.log_format, config.daemon.log_level, stream=sys.stderr)
        self.config = config
        self.info.reload_error = None
        scheduler = self._new_scheduler(assembly)
        await tg.start(scheduler.run)
        if self.status is not None:
            self.status.invalidate()
        log.info(
            "daemon.reloaded",
            sources=[s.name for s in assembly.sources],
            channels=list(assembly.channels),
        )
        self.notifier.ready("reloaded: first reads in progress")

    def _check_reloadable(self, config: Config) -> None:
        old, new = self.config.daemon, config.daemon
        if new.database != old.database:
            raise ReloadRejected(
                f"daemon.database changed ({old.database} -> {new.database}); "
                "restart syncd to switch ledgers"
            )
        if new.lock_path != old.lock_path:
            raise ReloadRejected("daemon.lock_file changed; restart syncd to apply it")
        if new.status_socket != old.status_socket:
            log.warning(
                "daemon.reload_socket_unchanged",
                listening=str(old.status_socket),
                configured=str(new.status_socket),
                note="the status socket moves at the next restart",
            )

    def _reject(self, problems: list[str]) -> bool:
        reason = "; ".join(problems)
        self.info.reload_error = reason
        if self.status is not None:
            self.status.invalidate()
        log.error(
            "daemon.reload_rejected",
            config=self.info.config_path,
            problems=problems,
            note="the previous configuration keeps running",
        )
        self.notifier.ready(f"reload rejected, previous config running: {reason}")
        return False

    # --- heartbeat and STATUS= -----------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        """Beat each tick while the engine is not stuck; the watchdog pings only while we beat."""
        while True:
            scheduler = self._current()
            stuck = [task for task in scheduler.stuck(self.stuck_after) if task == "engine"]
            if not stuck:
                self.heartbeat.beat()
                if self._stuck_reported:
                    self._stuck_reported = False
                    log.info("daemon.unstuck")
            elif not self._stuck_reported:
                self._stuck_reported = True
                log.error("daemon.stuck", tasks=stuck, after_s=self.stuck_after)
            self.api_counters.observe(scheduler.assembly.clients)
            await anyio.sleep(self.tick)

    async def _ledger_watch_loop(self, tg: TaskGroup, ledger: Ledger) -> None:
        """Each tick: is the ledger path still the file we opened? If not, stop with status 1.

        Writes to an unlinked or replaced file reach nobody; systemd
        (``Restart=on-failure``) starts syncd again on whatever file the path
        names now -- a fresh ledger, or the restored one, checked at open.
        """
        while True:
            await anyio.sleep(self.tick)
            problem = await anyio.to_thread.run_sync(ledger.file_problem)
            if problem is None:
                continue
            self.lost_ledger = problem
            log.error("daemon.ledger_lost", reason=problem, note="stopping; exit status 1")
            if self.status is not None:
                self.status.invalidate()
            self.notifier.status(f"failing: {problem}; stopping")
            self.notifier.stopping(f"stopping: {problem}")
            await self._current().drain(self.config.daemon.shutdown_timeout)
            tg.cancel_scope.cancel()
            return

    async def _status_loop(self) -> None:
        last: str | None = None
        while True:
            await anyio.sleep(self.status_every)
            if self.status is None:
                continue
            try:
                line = status_line(await self.status.status())
            except Exception as exc:
                line = f"status unavailable: {describe_error(exc)}"
            if line != last:
                self.notifier.status(line)
                last = line


# --- CLI -----------------------------------------------------------------------------------


def cli_run(args: argparse.Namespace) -> int:
    """``syncd run --config PATH``; exit 0 on a clean stop, 1 if it cannot start, 78 bad config."""
    path = Path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.daemon.log_format, config.daemon.log_level, stream=sys.stderr)
    register_secrets(config)
    daemon = Daemon(config, path, metrics_port=config.daemon.metrics_port)
    try:
        return anyio.run(daemon.run)
    except StartupError as exc:
        log.error("daemon.start_failed", reason=str(exc))
        daemon.notifier.status(f"failed to start: {exc}")
        print(f"syncd run: {exc}", file=sys.stderr)
        return EXIT_STARTUP
