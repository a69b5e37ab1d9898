"""Secret resolution: files, systemd credentials, environment variables, inline values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from syncd.config.apis import ActiveAntsApiSection
from syncd.config.credentials import (
    MAX_SECRET_BYTES,
    check_secret_choice,
    resolve_secret,
    secret_file_path,
)
from syncd.config.problems import TomlKey

SECTION = ("apis", "activeants")


def _api(**secret: Any) -> ActiveAntsApiSection:
    return ActiveAntsApiSection.model_validate({"username": "shop", **secret})


def _resolve(api: ActiveAntsApiSection, base: Path | None, environ: dict[str, str]) -> Any:
    value, findings = resolve_secret(SECTION, api, "password", base_dir=base, environ=environ)
    return value, [(f.where, f.message) for f in findings]


def test_file_relative_to_config_dir_loses_one_newline(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "aa").write_text("pass word\n\n")
    value, problems = _resolve(_api(password_file="creds/aa"), tmp_path, {})
    assert problems == []
    assert value.get_secret_value() == "pass word\n"


def test_crlf_is_one_newline(tmp_path: Path) -> None:
    (tmp_path / "aa").write_bytes(b"pw\r\n")
    value, _ = _resolve(_api(password_file=str(tmp_path / "aa")), None, {})
    assert value.get_secret_value() == "pw"


@pytest.mark.parametrize("written", ["activeants", "%d/activeants"])
def test_systemd_credentials_directory(tmp_path: Path, written: str) -> None:
    (tmp_path / "activeants").write_text("from-systemd")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    value, problems = _resolve(_api(password_file=written), Path("/elsewhere"), environ)
    assert problems == []
    assert value.get_secret_value() == "from-systemd"


def test_credential_name_without_credentials_directory() -> None:
    value, problems = _resolve(_api(password_file="activeants"), Path("/etc/syncd"), {})
    assert value is None
    ((where, message),) = problems
    assert where == TomlKey((*SECTION, "password_file"))
    assert "$CREDENTIALS_DIRECTORY is not set" in message


def test_secret_file_path_rules(tmp_path: Path) -> None:
    creds = {"CREDENTIALS_DIRECTORY": "/run/credentials/syncd.service"}
    assert secret_file_path("x", base_dir=tmp_path, environ=creds) == Path(
        "/run/credentials/syncd.service/x"
    )
    assert secret_file_path("./x", base_dir=tmp_path, environ=creds) == tmp_path / "x"
    assert secret_file_path("/abs/x", base_dir=tmp_path, environ=creds) == Path("/abs/x")


@pytest.mark.parametrize(
    ("setup", "secret", "message"),
    [
        ("none", {"password_file": "nope/x"}, "secret file {tmp}/nope/x does not exist"),
        (
            "dir",
            {"password_file": "d/"},
            "secret file {tmp}/d is a directory; it must be a regular file",
        ),
        (
            "fifo",
            {"password_file": "./pipe"},
            "secret file {tmp}/pipe is a FIFO (named pipe); it must be a regular file",
        ),
        (
            "device",
            {"password_file": "/dev/zero"},
            "secret file /dev/zero is a device; it must be a regular file",
        ),
        (
            "huge",
            {"password_file": "./big"},
            "secret file {tmp}/big is 16385 bytes; a secret is at most 16384 bytes",
        ),
        ("empty", {"password_file": "e/x"}, "the secret is empty"),
        ("none", {"password_env": "AA_PASSWORD"}, "environment variable AA_PASSWORD is not set"),
        ("none", {"password_env": "EMPTY"}, "the secret is empty"),
        ("none", {"password": ""}, "the secret is empty"),
    ],
)
def test_unusable_secrets(tmp_path: Path, setup: str, secret: dict[str, str], message: str) -> None:
    if setup == "dir":
        (tmp_path / "d").mkdir()
    if setup == "fifo":
        # Opening a FIFO for reading blocks until a writer comes: the loader must not.
        os.mkfifo(tmp_path / "pipe")
    if setup == "huge":
        (tmp_path / "big").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    if setup == "empty":
        (tmp_path / "e").mkdir()
        (tmp_path / "e" / "x").write_text("\n")
    value, problems = _resolve(_api(**secret), tmp_path, {"EMPTY": ""})
    assert value is None
    ((where, text),) = problems
    assert where == TomlKey((*SECTION, next(iter(secret))))
    assert text == message.format(tmp=tmp_path)


def test_env_and_inline() -> None:
    value, _ = _resolve(_api(password_env="AA_PASSWORD"), None, {"AA_PASSWORD": "e"})
    assert value.get_secret_value() == "e"
    value, _ = _resolve(_api(password="inline"), None, {})
    assert value.get_secret_value() == "inline"


def test_exactly_one_way() -> None:
    value, problems = _resolve(_api(), None, {})
    assert value is None
    assert problems == [
        (
            TomlKey((*SECTION, "password")),
            "required: set one of password_file, password_env or password",
        )
    ]
    both = _api(password_env="X", password="y")
    assert [(f.where, f.message) for f in check_secret_choice(SECTION, both, "password")] == [
        (TomlKey((*SECTION, "password")), "password_env and password both given; keep only one")
    ]
