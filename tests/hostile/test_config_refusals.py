"""Limits and URLs that would weaken syncd are refused by `syncd run`, with file:line.

A rate that is not a positive whole number (``0.5``, ``0``, ``-1``, ``"x"``),
an Ankorstore limit above the documented one, a plain ``http://`` URL to a
host that is not loopback and a URL carrying ``user:pass@``: each makes
`syncd run` exit 78 (a config error) at once naming the line and key, before any request.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.daemon.runtime import EXIT_CONFIG
from syncd.sandbox.world import SandboxWorld
from tests.hostile._support import set_api_key
from tests.integration.daemon._support import write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=10, seed=16)
    with sandbox.threaded():
        yield sandbox


def _line_of(config: Path, api: str, key: str) -> int:
    lines = config.read_text(encoding="utf-8").splitlines()
    section = lines.index(f"[apis.{api}]")
    return next(n for n, line in enumerate(lines, 1) if n > section and line.startswith(f"{key} ="))


@pytest.mark.parametrize(
    "case",
    [
        ("ankorstore", "requests_per_minute", "0.5", "Input should be a valid integer"),
        ("ankorstore", "requests_per_minute", "0", "Input should be greater than 0"),
        ("ankorstore", "requests_per_hour", "-1", "Input should be greater than 0"),
        ("ankorstore", "requests_per_day", '"x"', "Input should be a valid integer"),
        ("ankorstore", "requests_per_minute", "601", "documented limit of 600 requests per minute"),
        ("fabric", "requests_per_minute", "0.5", "Input should be a valid integer"),
        ("ankorstore", "base_url", '"http://www.ankorstore.com"', "must be https://"),
        ("fabric", "auth_url", '"http://auth.example.org/token"', "must be https://"),
        ("activeants", "base_url", '"https://user:pass@shop.example"', "no user:password@"),
        ("fabric", "auth_url", '"http://u:p@127.0.0.1:9/token"', "no user:password@"),
    ],
)
def test_syncd_run_refuses_the_value_with_its_file_and_line(
    world: SandboxWorld, directory: Path, case: tuple[str, str, str, str]
) -> None:
    api, key, value, message = case
    config = write_config(world, directory)
    set_api_key(config, api, key, value)
    completed = subprocess.run(
        [sys.executable, "-m", "syncd", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == EXIT_CONFIG, completed.stderr  # 78, not restarted
    where = f"{config}:{_line_of(config, api, key)}: apis.{api}.{key}: "
    [problem] = [line for line in completed.stderr.splitlines() if line.startswith(where)]
    assert message in problem
    assert "Traceback" not in completed.stderr
    assert "pass@" not in completed.stderr.replace(value, "")  # nothing else echoes it
    assert not (directory / "ledger.db").exists()  # refused before anything was opened
