"""`syncd run` exit codes: an invalid config is told apart from a crash, so systemd stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.cli import main
from syncd.daemon.runtime import EXIT_CONFIG


def test_an_invalid_config_exits_78_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text("[daemon]\nmetrics_port = 70000\n", encoding="utf-8")
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG == 78
    err = capsys.readouterr().err
    assert str(config) in err
    assert "metrics_port" in err


def test_a_missing_config_is_a_config_error_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--config", str(tmp_path / "absent.toml")]) == 78
    assert "absent.toml" in capsys.readouterr().err
