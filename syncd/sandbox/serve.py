"""`syncd sandbox`: start every simulator on loopback, write a config, wait.

For trying syncd by hand (`syncd run --config <written file>` in another
terminal) and for tests that run the daemon as a separate process against
simulators they can still inspect and drive over the ``/_sandbox/`` admin
routes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

import anyio

from syncd.sandbox.world import SandboxWorld


async def _serve(args: argparse.Namespace) -> int:
    world = SandboxWorld.create(variants=args.variants, seed=args.seed)
    state_dir = (
        Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="syncd-sandbox-"))
    )
    async with world.running():
        target = Path(args.write_config) if args.write_config else state_dir / "syncd.toml"
        written = await anyio.to_thread.run_sync(
            lambda: world.write_config(target.parent, name=target.name)
        )
        for api, url in world.urls.items():
            print(f"{api:<13} {url}")
        print(f"config        {written}")
        print("admin         GET <url>/_sandbox/state, POST <url>/_sandbox/faults")
        print("ready; Ctrl-C to stop", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
    return 0


def cli_sandbox(args: argparse.Namespace) -> int:
    try:
        return anyio.run(_serve, args)
    except OSError as exc:
        print(f"syncd sandbox: {exc}", file=sys.stderr)
        return 1
