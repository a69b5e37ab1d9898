"""The wheel an operator installs: what it carries, and the README's install steps from it.

The wheel is built from a copy of the checkout with the venv's own setuptools
(``pip wheel --no-deps --no-build-isolation``: no download), then unpacked and
run as ``python -m syncd`` with the checkout out of ``sys.path``, the way a
``pip``/``pipx`` install runs it. A temporary directory stands for
``/etc/syncd``.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {
    "syncd/deploy/syncd.service": REPO / "systemd" / "syncd.service",
    "syncd/deploy/syncd@.service": REPO / "systemd" / "syncd@.service",
    "syncd/deploy/syncd.sysusers": REPO / "systemd" / "syncd.sysusers",
    "syncd/deploy/syncd.example.toml": REPO / "config" / "syncd.example.toml",
    "syncd/deploy/catalog.csv": REPO / "config" / "catalog.csv",
}
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "syncd", "systemd", "config")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(path, source / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    built = subprocess.run(
        [*pip, "--wheel-dir", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [found] = (work / "dist").glob("syncd-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked, as site-packages would hold it."""
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_wheel_carries_the_units_sysusers_file_example_config_and_license(
    wheel: Path,
) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for member, source in SHIPPED.items():
            assert member in names, member
            assert archive.read(member) == source.read_bytes(), member
        [license_file] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(license_file) == (REPO / "LICENSE").read_bytes()
        assert "syncd/py.typed" in names


def test_metadata_declares_the_license_and_leaves_the_simulators_to_an_extra(
    wheel: Path,
) -> None:
    metadata = _metadata(wheel)
    assert metadata["License-Expression"] == "Apache-2.0"
    requires = metadata.get_all("Requires-Dist") or []
    web = [r for r in requires if r.startswith(("starlette", "uvicorn"))]
    assert web, requires
    assert all('extra == "sandbox"' in r for r in web), web
    assert "sandbox" in (metadata.get_all("Provides-Extra") or [])


def _syncd(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The unpacked wheel first on the path; cwd outside the checkout.
    env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY",)}
    env["PYTHONPATH"] = str(installed)
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=env,
    )


def test_the_installed_package_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import syncd, sys; sys.stdout.write(syncd.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(installed)},
    )
    assert Path(probe.stdout).is_relative_to(installed)


def test_the_readme_install_steps_give_a_valid_etc_syncd(installed: Path, tmp_path: Path) -> None:
    """README, "Install": the files out of the installed syncd, into what stands for /etc/syncd."""
    staging = tmp_path / "syncd-files"
    written = _syncd(installed, tmp_path, "files", "--to", str(staging))
    assert written.returncode == 0, written.stderr

    etc = tmp_path / "etc-syncd"  # /etc/syncd
    etc.mkdir(mode=0o755)
    shutil.copy(staging / "syncd.example.toml", etc / "syncd.toml")
    shutil.copy(staging / "catalog.csv", etc / "catalog.csv")
    credentials = etc / "credentials"
    credentials.mkdir(mode=0o700)
    for name in ("ankorstore", "activeants", "fabric", "fashiontrade"):
        (credentials / name).write_text(f"the-{name}-secret")

    config = str(etc / "syncd.toml")
    checked = _syncd(
        installed,
        tmp_path,
        "check-config",
        "--config",
        config,
        "--credentials-dir",
        str(credentials),
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == f"{config}: ok (6 variants, 2 bundles, 2 channels)\n"

    # Without the credentials (outside systemd), each missing one is named, nothing else.
    bare = _syncd(installed, tmp_path, "check-config", "--config", config)
    assert bare.returncode == 2
    problems = bare.stderr.splitlines()
    assert len(problems) == 4
    assert all("names a systemd credential" in line for line in problems)
