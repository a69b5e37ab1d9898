"""The `syncd` command line's conventions: --version, --config everywhere, its default, help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncd import __version__
from syncd.cli import build_parser, main
from syncd.cli_options import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "syncd.example.toml"
EXAMPLE_CREDENTIALS = REPO / "config" / "credentials.example"

CONFIG_COMMANDS = ("run", "once", "status", "confirm", "unpark", "explain", "check-config")


def _syncd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_version_prints_the_package_version() -> None:
    result = _syncd("--version")
    assert result.returncode == 0
    assert result.stdout == f"syncd {__version__}\n"


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_every_config_command_takes_config_and_credentials_dir(command: str) -> None:
    extra = {"confirm": ["ankorstore", "1"], "unpark": ["ankorstore"], "explain": ["SKU-1"]}
    argv = [command, *extra.get(command, []), "--config", "/x/syncd.toml"]
    args = build_parser().parse_args([*argv, "--credentials-dir", "/run/creds"])
    assert args.config == "/x/syncd.toml"
    assert args.credentials_dir == "/run/creds"


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_help_shows_the_default_that_applies(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    help_text = _help(command, capsys)
    assert f"default: $SYNCD_CONFIG, else {DEFAULT_CONFIG}" in help_text
    assert "None" not in help_text

    monkeypatch.setenv("SYNCD_CONFIG", "/srv/brand/100%.toml")
    assert "now: $SYNCD_CONFIG = /srv/brand/100%.toml" in _help(command, capsys)


def test_run_help_from_the_command_line_names_the_real_default() -> None:
    env = {"PATH": "/usr/bin:/bin", "SYNCD_CONFIG": "/etc/syncd/brand-a/syncd.toml"}
    result = _syncd("run", "--help", env=env)
    assert result.returncode == 0
    assert "/etc/syncd/brand-a/syncd.toml" in " ".join(result.stdout.split())


def test_syncd_config_is_the_default_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "from-env.toml"
    monkeypatch.setenv("SYNCD_CONFIG", str(missing))
    assert main(["check-config"]) == 2
    assert f"{missing}: cannot read" in capsys.readouterr().err


def test_check_config_accepts_config_and_the_older_positional_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(EXAMPLE_CREDENTIALS))
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.startswith(f"{EXAMPLE}: ok")
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.startswith(f"{EXAMPLE}: ok")


def test_check_config_refuses_two_different_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.toml"
    assert main(["check-config", str(EXAMPLE), "--config", str(other)]) == 2
    err = capsys.readouterr().err
    assert "two configs given" in err
    assert str(other) in err


def test_a_missing_credentials_dir_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    absent = tmp_path / "absent"
    code = main(["check-config", "--config", str(EXAMPLE), "--credentials-dir", str(absent)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"syncd check-config: --credentials-dir {absent}: not a directory\n"
    )


def test_bare_credential_names_without_a_directory_say_how_to_give_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert main(["check-config", "--config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "'ankorstore' names a systemd credential" in err
    assert "--credentials-dir" in err


def test_credentials_dir_resolves_bare_names_for_the_whole_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Standing in for systemd: the directory is exported as $CREDENTIALS_DIRECTORY.
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))  # wrong one; restored afterwards
    relative = Path("config") / "credentials.example"
    monkeypatch.chdir(REPO)
    argv = ["check-config", "--config", str(EXAMPLE), "--credentials-dir", str(relative)]
    assert main(argv) == 0, capsys.readouterr().err
    assert os.environ["CREDENTIALS_DIRECTORY"] == str(REPO / relative)


@pytest.mark.parametrize("command", ["demo", "sandbox"])
def test_simulator_commands_without_the_sandbox_extra_say_what_to_install(command: str) -> None:
    # A production install has no Starlette: importing it fails as it would there.
    script = (
        "import sys; sys.modules['starlette'] = None; "
        f"from syncd.cli import main; sys.exit(main([{command!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"syncd {command}: the simulators need starlette")
    assert "pip install 'syncd[sandbox]'" in result.stderr
