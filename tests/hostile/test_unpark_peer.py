"""`unpark` records who really asked (the socket's peer credentials), not who the client says.

Before, the push log kept whatever user name the client sent; any member of
the socket's group could write someone else's name into the audit trail.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from syncd.ledger.store import Ledger
from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import (
    DaemonProcess,
    daemon,
    short_dir,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

NOBODY = 65534


def _parked(process: DaemonProcess) -> list[str]:
    [channel] = [c for c in process.ask({"cmd": "status"})["channels"] if c["name"] == "ankorstore"]
    return sorted(item["sku"] for item in channel["parked"])


def _raw_unpark(path: Path, sku: str, note: str) -> dict[str, object]:
    """A hand-written client that claims to be someone else in its note."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        request = {"cmd": "unpark", "channel": "ankorstore", "skus": [sku], "note": note}
        client.sendall(json.dumps(request).encode() + b"\n")
        reply: dict[str, object] = json.loads(client.makefile("rb").readline())
        return reply


AS_OPERATOR = """
import os, sys
# Everything the command needs is imported while still root: the interpreter itself
# lives where uid 65534 may not read. Then drop to an operator: uid 65534 in the
# socket's group, as `usermod -aG syncd` would make it.
import anyio, anyio._backends._asyncio, asyncio, json
import syncd.cli, syncd.unpark, syncd.status.client
gid = int(sys.argv[1])
os.setgroups([gid])
os.setgid(65534)
os.setuid(65534)
sys.exit(syncd.cli.main(sys.argv[2:]))
"""


async def _unpark_notes(database: Path, sku: str) -> list[str]:
    async with await Ledger.open(database) as ledger:
        return [
            entry.reply or ""
            for entry in await ledger.push_log("ankorstore", sku)
            if entry.status == "unparked"
        ]


def test_unpark_records_the_peer_user_whatever_name_the_client_claims() -> None:
    world = SandboxWorld.create(variants=20, seed=9)
    first, second = [v for v in world.catalog.variants if "ankorstore" in v.channels][:2]
    for variant in (first, second):
        # "Always in stock" on Ankorstore: syncd leaves such a variant alone (parks it).
        world.ankorstore.set_stock(variant.ankorstore_variant_id, always_in_stock=True)
    me = f"{pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        database = directory / "ledger.db"
        with daemon(config, directory) as process:
            wait_until(process.answers, timeout=60, what="the daemon")
            wait_until(
                lambda: _parked(process) == sorted([first.sku, second.sku]),
                timeout=60,
                what="both variants parked",
            )

            # 1. A client that writes "unparked by mallory" into its note.
            reply = _raw_unpark(process.socket, first.sku, "unparked by mallory: trust me")
            assert reply["ok"] is True, reply
            assert reply["unparked"] == [first.sku]

            # 2. `syncd unpark` run by another user (uid 65534) in the socket's group.
            switched = os.getuid() == 0
            if switched:
                socket_gid = process.socket.stat().st_gid
                directory.chmod(0o711)  # let the operator reach the socket, not read the rest
                result = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        AS_OPERATOR,
                        str(socket_gid),
                        "unpark",
                        "ankorstore",
                        second.sku,
                        "--socket",
                        str(process.socket),
                        "--config",
                        str(config),
                        "--reason",
                        "listing fixed",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                    cwd="/",
                )
                assert result.returncode == 0, result.stderr
            assert process.stop()[0] == 0

        [claimed] = anyio.run(_unpark_notes, database, first.sku)
        # The kernel's word first; the client's claim survives only as a note.
        assert claimed == f"unparked by {me}; note: unparked by mallory: trust me"
        if switched:
            [operator] = anyio.run(_unpark_notes, database, second.sku)
            nobody = pwd.getpwuid(NOBODY).pw_name
            assert operator == f"unparked by {nobody} (uid {NOBODY}); note: listing fixed"
