"""`syncd files`: the unit files, sysusers entry, example config and catalog, out of the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.cli import main
from syncd.deploy_files import SHIPPED, shipped_file

REPO = Path(__file__).resolve().parents[2]
SOURCES = {
    "syncd.service": REPO / "systemd" / "syncd.service",
    "syncd@.service": REPO / "systemd" / "syncd@.service",
    "syncd.sysusers": REPO / "systemd" / "syncd.sysusers",
    "syncd.example.toml": REPO / "config" / "syncd.example.toml",
    "catalog.csv": REPO / "config" / "catalog.csv",
}


def test_the_package_ships_exactly_the_checkouts_files() -> None:
    assert set(SHIPPED) == set(SOURCES)
    for name, source in SOURCES.items():
        assert shipped_file(name).read_bytes() == source.read_bytes(), name


def test_listing_names_every_file_and_where_it_goes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["files"]) == 0
    out = capsys.readouterr().out
    for name, (where, _) in SHIPPED.items():
        assert any(line.startswith(name) and where in line for line in out.splitlines()), name


def test_print_writes_one_file_to_stdout(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["files", "--print", "syncd@.service"]) == 0
    assert capfdbinary.readouterr().out == SOURCES["syncd@.service"].read_bytes()


def test_an_unknown_name_is_refused_with_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["files", "--print", "syncd.timer"]) == 2
    err = capsys.readouterr().err
    assert "no shipped file 'syncd.timer'" in err
    assert "syncd@.service" in err


def test_to_writes_every_file_and_never_overwrites_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    assert main(["files", "--to", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted(SOURCES)
    for name, source in SOURCES.items():
        assert (target / name).read_bytes() == source.read_bytes()
        assert (target / name).stat().st_mode & 0o777 == 0o644
    capsys.readouterr()

    (target / "syncd.service").write_text("edited by the operator\n")
    assert main(["files", "--to", str(target)]) == 1
    assert f"{target / 'syncd.service'} exists" in capsys.readouterr().err
    assert (target / "syncd.service").read_text() == "edited by the operator\n"

    assert main(["files", "--to", str(target), "--force"]) == 0
    assert (target / "syncd.service").read_bytes() == SOURCES["syncd.service"].read_bytes()


def test_print_and_to_together_are_refused(tmp_path: Path) -> None:
    assert main(["files", "--print", "syncd.service", "--to", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []
