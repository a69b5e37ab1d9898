"""`syncd sandbox`: start every simulator on loopback, write a config, wait.

For trying syncd by hand (`syncd run --config <written file>` in another
terminal) and for tests that run the daemon as a separate process against
simulators they can still inspect and drive over the ``/_sandbox/`` admin
routes.

The config, its throw-away credentials and the catalog CSV go next to
``--write-config PATH``, or into ``--state-dir``; without either, into a
temporary directory that is removed when the sandbox stops.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import anyio

from syncd.sandbox.world import SandboxWorld


def _config_target(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Where the config goes, and the temporary directory to remove afterwards (if any)."""
    if args.write_config:
        return Path(args.write_config), None
    if args.state_dir:
        return Path(args.state_dir) / "syncd.toml", None
    scratch = Path(tempfile.mkdtemp(prefix="syncd-sandbox-"))
    return scratch / "syncd.toml", scratch


async def _serve(args: argparse.Namespace, target: Path) -> int:
    world = SandboxWorld.create(variants=args.variants, seed=args.seed)
    async with world.running():
        written = await anyio.to_thread.run_sync(
            lambda: world.write_config(target.parent, name=target.name)
        )
        for api, url in world.urls.items():
            print(f"{api:<13} {url}")
        print(f"config        {written}")
        print("admin         GET <url>/_sandbox/state, POST <url>/_sandbox/faults")
        # Catch the signals before saying "ready": a SIGTERM right after it stops cleanly.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            print("ready; Ctrl-C to stop", flush=True)
            async for _ in signals:
                break
    return 0


def cli_sandbox(args: argparse.Namespace) -> int:
    target, scratch = _config_target(args)
    try:
        return anyio.run(_serve, args, target)
    except OSError as exc:
        print(f"syncd sandbox: {exc}", file=sys.stderr)
        return 1
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
