"""`syncd once`: one complete cycle -- read every source, compute, push -- then exit.

For cron-style use, for a first sync before enabling the service, and for
`--dry-run`, which shows what syncd would publish without writing anything:
sources are read into a throw-away copy of the ledger and the channels are
only read (their current values), never written.

Exit status: 0 when every channel acknowledged every value; 1 with the
reasons when anything is parked, held, blocked or failed; 2 for a config
problem.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog

from syncd.assembly import Assembly, assemble
from syncd.config import Config, ConfigError, load_config
from syncd.engine import ChannelCycle
from syncd.http.clock import SystemClock
from syncd.ledger.store import Ledger
from syncd.logs import configure_logging
from syncd.sources.base import PollResult

log = structlog.get_logger("syncd.once")

MAX_PAGES_PER_SOURCE = 10_000
"""Bound on polls per source in one run: a feed that never catches up is an error."""
MAX_PUSH_ROUNDS = 50


@dataclass(slots=True)
class DiffRow:
    channel: str
    sku: str
    live: int | None
    desired: int

    @property
    def change(self) -> str:
        if self.live is None:
            return "set"
        return "decrease" if self.desired < self.live else "increase"


async def read_sources(assembly: Assembly) -> list[PollResult]:
    """Poll every source until it says it caught up; failures are reported, not fatal."""
    results: list[PollResult] = []
    for source in assembly.sources:
        for _ in range(MAX_PAGES_PER_SOURCE):
            try:
                result = await source.poll(assembly.ledger)
            except Exception as exc:  # one failing source never stops the others
                log.error("source.failed", source=source.name, error=f"{type(exc).__name__}: {exc}")
                await assembly.ledger.mark_feed(source.name, error=f"{type(exc).__name__}: {exc}")
                break
            results.append(result)
            if result.caught_up:
                break
        else:
            log.error("source.never_caught_up", source=source.name, polls=MAX_PAGES_PER_SOURCE)
    assembly.engine.note_source_read()
    return results


async def _needs_second_read(assembly: Assembly) -> bool:
    for channel in assembly.channels:
        policy = assembly.policies[channel]
        if not policy.confirm_increase_after_zero:
            continue
        for row in await assembly.ledger.pending(channel):
            if row.acknowledged == 0 and row.desired > 0:
                return True
    return False


async def push_all(assembly: Assembly, *, confirm: bool) -> dict[str, ChannelCycle]:
    cycles: dict[str, ChannelCycle] = {}
    for channel in assembly.channels:
        cycle = await assembly.engine.push_channel(channel)
        if cycle.held_id is not None and confirm:
            await assembly.engine.confirm(channel, cycle.held_id)
            cycle = await assembly.engine.push_channel(channel)
        rounds = 1
        # Keep going while the budget defers work but each round makes progress.
        while cycle.deferred and rounds < MAX_PUSH_ROUNDS:
            rounds += 1
            await anyio.sleep(1.0)
            cycle = await assembly.engine.push_channel(channel)
        cycles[channel] = cycle
    return cycles


async def dry_run_diff(assembly: Assembly) -> list[DiffRow]:
    """Desired values that differ from what each channel shows now."""
    rows: list[DiffRow] = []
    for name, channel in assembly.channels.items():
        desired = {row.sku: row.desired for row in await assembly.ledger.outbox_rows(name)}
        live = await channel.read_live(list(desired))
        for sku, quantity in sorted(desired.items()):
            shown = live.get(sku)
            current = shown.sellable if shown is not None else None
            if current != quantity:
                rows.append(DiffRow(channel=name, sku=sku, live=current, desired=quantity))
    return rows


def _render_diff(rows: list[DiffRow]) -> str:
    if not rows:
        return "dry run: every channel already shows what syncd would publish"
    width = max(len(r.sku) for r in rows)
    lines = [f"{'channel':<11} {'sku':<{width}} {'now':>7} {'would be':>9}  change"]
    for r in rows:
        now = "-" if r.live is None else str(r.live)
        lines.append(f"{r.channel:<11} {r.sku:<{width}} {now:>7} {r.desired:>9}  {r.change}")
    decreases = sum(1 for r in rows if r.change == "decrease")
    lines.append(f"dry run: {len(rows)} change(s), {decreases} decrease(s); nothing was written")
    return "\n".join(lines)


def _copy_ledger(source: Path, target: Path) -> None:
    """A consistent copy of a live WAL database (SQLite's backup API)."""
    if not source.exists():
        return
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


async def _run(config: Config, args: argparse.Namespace) -> int:
    database = Path(config.daemon.database)
    scratch: Path | None = None
    if args.dry_run:
        scratch = Path(tempfile.mkdtemp(prefix="syncd-dry-run-"))
        copy = scratch / "ledger.db"
        await anyio.to_thread.run_sync(_copy_ledger, database, copy)
        database = copy
    else:
        database.parent.mkdir(parents=True, exist_ok=True)
    ledger = await Ledger.open(database)
    assembly = assemble(config, ledger, clock=SystemClock())
    try:
        await read_sources(assembly)
        await assembly.engine.recompute(full=True)
        if await _needs_second_read(assembly):
            # An increase from zero goes out only after a second consistent read.
            await read_sources(assembly)
            await assembly.engine.recompute()
        if args.dry_run:
            diff = await dry_run_diff(assembly)
            if args.json:
                print(json.dumps({"dry_run": True, "changes": [asdict(r) for r in diff]}, indent=2))
            else:
                print(_render_diff(diff))
            return 0
        cycles = await push_all(assembly, confirm=args.confirm)
    finally:
        await assembly.aclose()
        await ledger.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return _report(cycles, as_json=args.json)


def _report(cycles: dict[str, ChannelCycle], *, as_json: bool) -> int:
    problems: list[str] = []
    summary: dict[str, Any] = {}
    for name, cycle in cycles.items():
        summary[name] = {
            "pending": cycle.pending,
            "acknowledged": cycle.acknowledged,
            "parked": cycle.parked,
            "failed": cycle.failed,
            "deferred": cycle.deferred,
            "waiting": cycle.waiting,
            "requests": cycle.requests,
            "held": cycle.held_id,
            "blocked": cycle.blocked,
            "reasons": cycle.reasons,
        }
        if cycle.blocked:
            problems.append(f"{name}: blocked: {cycle.blocked}")
        if cycle.held_id is not None:
            problems.append(
                f"{name}: cycle held (hold {cycle.held_id}): {'; '.join(cycle.reasons)}; "
                "rerun with --confirm or run `syncd confirm`"
            )
        if cycle.parked:
            problems.append(f"{name}: {cycle.parked} variant(s) parked (see `syncd status`)")
        if cycle.failed:
            problems.append(f"{name}: {cycle.failed} update(s) failed; they will be retried")
        if cycle.deferred:
            problems.append(f"{name}: {cycle.deferred} update(s) deferred by the rate budget")
        if cycle.waiting:
            problems.append(f"{name}: {cycle.waiting} increase(s) waiting for a fresh read")
    if as_json:
        print(json.dumps({"ok": not problems, "channels": summary, "problems": problems}, indent=2))
    else:
        for name, item in summary.items():
            print(
                f"{name}: {item['acknowledged']} acknowledged, {item['parked']} parked, "
                f"{item['failed']} failed, {item['requests']} request(s)"
            )
        for problem in problems:
            print(f"syncd once: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cli_once(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    configure_logging(config.daemon.log_format, stream=sys.stderr)
    return anyio.run(_run, config, args)
