"""Run many seeds: in worker processes (one per core), each seed in its own directory.

The simulation is single-threaded Python plus one SQLite thread, so the
batch uses every core by giving each worker process its own seeds. Workers
are started with ``spawn`` (a fork of a process running an event loop and
SQLite threads is not safe) and report one :class:`Outcome` per seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from tests.sim.harness import Simulation, SimulationFailure


@dataclass(frozen=True, slots=True)
class Outcome:
    seed: int
    failure: str | None
    seconds: float
    crashes: int = 0
    faults: int = 0
    writes: int = 0
    known: tuple[str, ...] = ()
    """Known issues (known.py) this seed met."""


@dataclass(slots=True)
class Batch:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failure is not None]

    def known(self) -> dict[str, list[int]]:
        """Known issue id -> the seeds that met it."""
        seeds: dict[str, list[int]] = {}
        for outcome in self.outcomes:
            for issue in outcome.known:
                seeds.setdefault(issue, []).append(outcome.seed)
        return seeds

    def summary(self) -> str:
        crashes = sum(o.crashes for o in self.outcomes)
        faults = sum(o.faults for o in self.outcomes)
        writes = sum(o.writes for o in self.outcomes)
        return (
            f"{len(self.outcomes)} seeds in {self.seconds:.1f}s: {len(self.failures)} failed, "
            f"{crashes} crashes, {faults} faults fired, {writes} channel writes"
        )


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """syncd logs every request and a simulation makes thousands: silence them, then restore.

    The previous configuration comes back afterwards, so tests that capture
    syncd's log events still see them.
    """
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    try:
        yield
    finally:
        structlog.configure(**saved)


def run_seed(seed: int, directory: Path) -> Outcome:
    """One seed, synchronously (own event loop); the directory is removed on success."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(Simulation(seed, directory).run())
    except SimulationFailure as failure:
        return Outcome(seed, str(failure), time.perf_counter() - started)
    shutil.rmtree(directory, ignore_errors=True)
    return Outcome(
        seed,
        None,
        time.perf_counter() - started,
        crashes=sum(report.crashes.values()),
        faults=sum(report.faults.values()),
        writes=report.writes,
        known=tuple(sorted(report.known)),
    )


def _worker_init() -> None:
    # A worker process only ever runs simulations: silence it for good.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def _run_in(seed: int, root: str) -> Outcome:
    return run_seed(seed, Path(root) / f"seed-{seed}")


def run_batch(seeds: Iterable[int], root: Path, *, workers: int | None = None) -> Batch:
    """Every seed, spread over ``workers`` processes.

    Default: ``SYNCD_SIM_WORKERS``, else one per core. With one worker the
    seeds run in this process.
    """
    seeds = list(seeds)
    workers = workers or int(os.environ.get("SYNCD_SIM_WORKERS", "0")) or (os.cpu_count() or 1)
    workers = max(1, min(workers, len(seeds)))
    started = time.perf_counter()
    batch = Batch()
    if workers == 1:
        with quiet_logs():
            batch.outcomes = [_run_in(seed, str(root)) for seed in seeds]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
            # Small chunks keep the workers evenly busy; seeds differ in length.
            batch.outcomes = list(pool.map(_run_in, seeds, [str(root)] * len(seeds), chunksize=4))
    batch.seconds = time.perf_counter() - started
    return batch
