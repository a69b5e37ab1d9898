"""`syncd sandbox`: the simulators as a separate process a daemon can be pointed at."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.config import load_config

pytestmark = pytest.mark.integration

APIS = ("activeants", "ankorstore", "fabric", "fashiontrade")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A running `syncd sandbox` process, its URLs by API and the config it wrote."""
    config = tmp_path / "sandbox.toml"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd",
            "sandbox",
            "--variants",
            "30",
            "--write-config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    urls: dict[str, str] = {}
    try:
        for line in process.stdout:
            name, _, value = line.strip().partition(" ")
            if name in APIS:
                urls[name] = value.strip()
            if line.startswith("ready"):
                break
        else:
            pytest.fail(
                f"syncd sandbox exited early: {process.stderr.read() if process.stderr else ''}"
            )
        yield urls, config
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def test_it_serves_every_api_and_writes_a_config_syncd_accepts(
    sandbox: tuple[dict[str, str], Path],
) -> None:
    urls, config = sandbox
    assert set(urls) == set(APIS)
    # The simulators enforce auth from the first request on.
    me = httpx.get(f"{urls['ankorstore']}/api/v1/me", timeout=60)
    assert me.status_code == 401
    checked = subprocess.run(
        [sys.executable, "-m", "syncd", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    for url in urls.values():
        assert url in config.read_text(encoding="utf-8")


def _outbox(config: Path) -> dict[tuple[str, str], int]:
    """What syncd computed, (channel, sku) -> desired, read from the ledger file."""
    database = load_config(config).daemon.database
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT channel, sku, desired FROM outbox WHERE status != 'parked'")
        return {(str(c), str(s)): int(d) for c, s, d in rows}


def test_syncd_once_against_it_publishes_what_it_computed_to_both_channels(
    sandbox: tuple[dict[str, str], Path],
) -> None:
    urls, config = sandbox
    # A first publication sets many variants to zero (the generated catalog has
    # sold-out items), which the mass-zero interlock holds until confirmed.
    first = subprocess.run(
        [sys.executable, "-m", "syncd", "once", "--config", str(config), "--confirm"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    ankorstore = httpx.get(f"{urls['ankorstore']}/_sandbox/state", timeout=60).json()
    fabric = httpx.get(f"{urls['fabric']}/_sandbox/state", timeout=60).json()
    shown = {("ankorstore", v["sku"]): v["availableQuantity"] for v in ankorstore["variants"]}
    shown |= {("fabric", sku): item["inventory"] for sku, item in fabric["items"].items()}
    computed = _outbox(config)
    assert {channel for channel, _ in computed} == {"ankorstore", "fabric"}
    assert {key: shown[key] for key in computed} == computed
    assert ankorstore["counters"]["rateLimited"] == 0

    # Nothing changed since: a second run has nothing to write.
    writes = ankorstore["counters"]["writeRequests"]
    again = subprocess.run(
        [sys.executable, "-m", "syncd", "once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    after = httpx.get(f"{urls['ankorstore']}/_sandbox/state", timeout=60).json()
    assert after["counters"]["writeRequests"] == writes


def _sandbox_leaves(tmp: Path, *args: str) -> list[str]:
    """Start `syncd sandbox`, wait until ready, stop it; what is left in its $TMPDIR."""
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sandbox", "--variants", "10", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith("ready"):
                break
        else:
            pytest.fail(f"syncd sandbox exited early: {process.stderr}")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    return sorted(p.name for p in tmp.iterdir())


def test_write_config_leaves_no_temporary_directory(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    config = tmp_path / "here" / "syncd.toml"
    assert _sandbox_leaves(tmp, "--write-config", str(config)) == []
    assert config.exists()
    # Without --write-config its files go to a temporary directory, removed when it stops.
    assert _sandbox_leaves(tmp) == []
