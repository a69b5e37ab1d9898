"""A production config (secrets named as systemd credentials) used from a shell.

``syncd once --dry-run`` runs as a separate process against the sandbox with
a config whose secrets are bare credential names, as the shipped unit
provides them; ``--credentials-dir`` (or ``$CREDENTIALS_DIRECTORY``) points at
the secrets the way systemd's ``LoadCredential=`` would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration._cycle_support import sandbox_config

pytestmark = pytest.mark.integration

SECRETS = ("ankorstore", "activeants", "fabric", "fashiontrade")


@pytest.fixture(scope="module")
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=20, seed=3)
    with sandbox.threaded():
        yield sandbox


def production_config(world: SandboxWorld, directory: Path, *, style: str) -> tuple[Path, Path]:
    """The sandbox config with ``X_file = "<style><name>"``; the secrets moved out of its reach."""
    config = sandbox_config(world, directory / "etc")
    text = config.read_text(encoding="utf-8")
    for name in SECRETS:
        old = f'"credentials/{name}"'
        assert old in text
        text = text.replace(old, f'"{style}{name}"')
    config.write_text(text, encoding="utf-8")
    # Where systemd would have copied them: nowhere relative to the config.
    credentials = directory / "run-credentials"
    shutil.move(directory / "etc" / "credentials", credentials)
    return config, credentials


def dry_run(config: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "syncd",
            "once",
            "--config",
            str(config),
            "--dry-run",
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _shell_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    return env | extra


@pytest.mark.parametrize("style", ["", "%d/"])
def test_dry_run_with_credential_names_and_credentials_dir(
    world: SandboxWorld, tmp_path: Path, style: str
) -> None:
    config, credentials = production_config(world, tmp_path, style=style)

    refused = dry_run(config, env=_shell_env())
    assert refused.returncode == 2
    assert f"'{style}ankorstore' names a systemd credential" in refused.stderr
    assert "--credentials-dir" in refused.stderr

    done = dry_run(config, "--credentials-dir", str(credentials), env=_shell_env())
    assert_planned_with_every_secret(done)


def assert_planned_with_every_secret(done: subprocess.CompletedProcess[str]) -> None:
    """The dry run logged in to every API and planned values for both channels."""
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["dry_run"] is True
    assert {row["channel"] for row in report["changes"]} == {"ankorstore", "fabric"}
    # The channels' live values were read, i.e. their logins worked.
    assert any(row["live"] is not None for row in report["changes"])
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    logged_in = {e["api"] for e in events if e["event"] == "http.token_obtained"}
    assert {"ankorstore", "fabric"} <= logged_in
    polled = {e["source"] for e in events if e["event"] == "source.polled"}
    assert "activeants" in polled


def test_credentials_directory_from_the_environment_is_honoured(
    world: SandboxWorld, tmp_path: Path
) -> None:
    config, credentials = production_config(world, tmp_path, style="")
    done = dry_run(config, env=_shell_env(CREDENTIALS_DIRECTORY=str(credentials)))
    assert_planned_with_every_secret(done)
