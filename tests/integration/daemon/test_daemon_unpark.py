"""`syncd unpark` against a real daemon: a refused variant goes out once the cause is fixed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import daemon, short_dir, wait_until, write_config

pytestmark = pytest.mark.integration


def syncd_unpark(*args: str) -> subprocess.CompletedProcess[str]:
    """``syncd unpark ARGS`` as an operator runs it: its own process."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", "unpark", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_unparked_variant_is_published_after_the_listing_is_fixed() -> None:
    world = SandboxWorld.create(variants=20, seed=9)
    [variant, *_] = [v for v in world.catalog.variants if "ankorstore" in v.channels]
    key = variant.ankorstore_variant_id
    # "Always in stock" on Ankorstore: syncd leaves such a variant alone (parks it).
    world.ankorstore.set_stock(key, always_in_stock=True)
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        with daemon(config, directory) as process:
            wait_until(process.answers, what="the daemon")

            def parked() -> list[str]:
                [channel] = [
                    c
                    for c in process.ask({"cmd": "status"})["channels"]
                    if c["name"] == "ankorstore"
                ]
                return [item["sku"] for item in channel["parked"]]

            wait_until(lambda: parked() == [variant.sku], what="the variant parked")
            assert world.ankorstore.listing(key).always_in_stock  # nothing was written over it

            # The brand switches "always in stock" off on Ankorstore, then unparks.
            world.ankorstore.set_stock(key, 0)
            unpark = syncd_unpark(
                "ankorstore",
                variant.sku,
                "--config",
                str(config),
                "--reason",
                "always in stock switched off",
            )
            assert unpark.returncode == 0, unpark.stderr
            assert f"unparked on ankorstore: {variant.sku}" in unpark.stdout
            wait_until(lambda: parked() == [], what="the variant out of the parked list")

            def published() -> int | None:
                reply = process.ask({"cmd": "explain", "sku": variant.sku, "channel": "ankorstore"})
                [entry] = reply["channels"]
                value = entry["acknowledged"]
                return value if isinstance(value, int) else None

            wait_until(lambda: published() is not None, what="the value acknowledged")
            value = published()
            assert value is not None
            assert value > 0
            assert world.ankorstore.listing(key).available_quantity == value
            reply = process.ask({"cmd": "explain", "sku": variant.sku, "channel": "ankorstore"})
            assert reply["channels"][0]["last_push"]["status"] == "acknowledged"

            # Naming a SKU that is not parked is reported with exit status 1.
            again = syncd_unpark("ankorstore", variant.sku, "--config", str(config))
            assert again.returncode == 1
            assert "left alone" in again.stdout
            assert process.stop()[0] == 0
