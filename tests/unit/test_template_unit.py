"""systemd/syncd@.service: one syncd per brand, the same service as syncd.service otherwise."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.unit.test_unit_file import UNIT, _analyze, _directives, needs_analyze

TEMPLATE = UNIT.with_name("syncd@.service")
CREDENTIALS = ("activeants", "ankorstore", "fabric", "fashiontrade")

PER_INSTANCE = {
    "Description",
    "ExecStart",
    "StateDirectory",
    "RuntimeDirectory",
    "ConfigurationDirectory",
    "LoadCredential",
    "InaccessiblePaths",
}
"""The only directives in which an instance differs from syncd.service: its paths."""


@pytest.fixture(scope="module")
def template() -> dict[str, dict[str, list[str]]]:
    return _directives(TEMPLATE.read_text())


def test_everything_but_the_paths_is_the_single_unit(
    template: dict[str, dict[str, list[str]]],
) -> None:
    single = _directives(UNIT.read_text())
    assert set(template) == set(single)
    for section, keys in single.items():
        same = {k: v for k, v in keys.items() if k not in PER_INSTANCE}
        mine = {k: v for k, v in template[section].items() if k not in PER_INSTANCE}
        assert mine == same, f"[{section}] differs from syncd.service beyond the paths"


def test_each_instance_has_its_own_config_ledger_socket_and_credentials(
    template: dict[str, dict[str, list[str]]],
) -> None:
    service = template["Service"]
    assert service["ExecStart"] == ["/usr/local/bin/syncd run --config /etc/syncd/%i/syncd.toml"]
    assert service["StateDirectory"] == ["syncd/%i"]
    assert service["RuntimeDirectory"] == ["syncd/%i"]
    assert service["ConfigurationDirectory"] == ["syncd/%i"]
    loaded = dict(line.split(":", 1) for line in service["LoadCredential"])
    assert loaded == {name: f"/etc/syncd/%i/credentials/{name}" for name in CREDENTIALS}
    assert service["InaccessiblePaths"] == ["-/etc/syncd/%i/credentials"]
    assert "%i" in template["Unit"]["Description"][0]


@needs_analyze
def test_systemd_analyze_verify_accepts_an_instance(tmp_path: Path) -> None:
    # As for syncd.service: the commands point at `true`, since where syncd is
    # installed is an install-time fact. An instance of the template is verified,
    # so systemd expands %i in every path.
    true = shutil.which("true")
    assert true is not None
    text = re.sub(
        r"^(Exec\w+=)(\S+)", lambda m: m.group(1) + true, TEMPLATE.read_text(), flags=re.M
    )
    (tmp_path / "syncd@.service").write_text(text)

    result = _analyze(
        "verify", "--man=no", "--recursive-errors=no", str(tmp_path / "syncd@brand-a.service")
    )

    complaints = [line for line in result.stderr.splitlines() if "syncd@" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []
