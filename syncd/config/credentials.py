"""Resolve the secrets of the `[apis.*]` sections at load time.

A secret ``X`` is given exactly one way:

- ``X_file``: a file holding the secret (one trailing newline is stripped). It
  must be a regular file of at most `MAX_SECRET_BYTES`; a device, FIFO,
  socket or directory is refused without being read (or waited on).
  ``%d/name`` and a bare ``name`` (no ``/``) are systemd credentials, read
  from ``$CREDENTIALS_DIRECTORY`` which ``LoadCredential=`` sets (or
  ``--credentials-dir`` on the command line, see `syncd.cli_options`); any other
  relative path is relative to the config file.
- ``X_env``: the name of an environment variable holding it.
- ``X``: the value inline (fine for tests; prefer a credential in production).

Messages name files and variables, never a secret's value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from syncd.config.apis import ApiSection, Secret
from syncd.config.problems import Finding, KeyPath, TomlKey
from syncd.redaction import register_secret

CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
_SYSTEMD_PREFIX = "%d/"


def check_secret_choice(section_path: KeyPath, section: ApiSection, name: str) -> list[Finding]:
    """At most one way of giving ``name`` (checked even when no integration needs the API)."""
    given = list(section.secret_sources(name))
    if len(given) <= 1:
        return []
    keys = " and ".join(given)
    return [Finding(TomlKey((*section_path, given[1])), f"{keys} both given; keep only one")]


def resolve_secret(
    section_path: KeyPath,
    section: ApiSection,
    name: str,
    *,
    base_dir: Path | None,
    environ: Mapping[str, str],
) -> tuple[Secret | None, list[Finding]]:
    """The value of secret ``name``, or the findings that explain why there is none."""
    given = section.secret_sources(name)
    if len(given) != 1:
        if given:
            return None, []  # reported by check_secret_choice
        how = f"{name}_file, {name}_env or {name}"
        return None, [Finding(TomlKey((*section_path, name)), f"required: set one of {how}")]
    key, value = next(iter(given.items()))
    where = TomlKey((*section_path, key))
    if isinstance(value, Secret):
        text = value.get_secret_value()
    elif key.endswith("_env"):
        env_value = environ.get(value)
        if env_value is None:
            return None, [Finding(where, f"environment variable {value} is not set")]
        text = env_value
    else:
        path_or_error = secret_file_path(value, base_dir=base_dir, environ=environ)
        if isinstance(path_or_error, str):
            return None, [Finding(where, path_or_error)]
        try:
            text = _read_secret_file(path_or_error)
        except _UnreadableError as exc:
            return None, [Finding(where, str(exc))]
    if not text:
        return None, [Finding(where, "the secret is empty")]
    # Every secret syncd holds is known to the log redactor, so even an
    # accidental f-string that quotes it is masked before it is written.
    register_secret(text)
    return Secret(text), []


def secret_file_path(
    value: str, *, base_dir: Path | None, environ: Mapping[str, str]
) -> Path | str:
    """Where ``X_file = value`` points, or a message saying why it cannot be found."""
    credential: str | None = None
    if value.startswith(_SYSTEMD_PREFIX):
        credential = value[len(_SYSTEMD_PREFIX) :]
    elif "/" not in value and value not in (".", ".."):
        credential = value
    if credential is not None:
        directory = environ.get(CREDENTIALS_DIRECTORY)
        if not directory:
            return (
                f"{value!r} names a systemd credential but ${CREDENTIALS_DIRECTORY} is not set "
                "(run under systemd with LoadCredential=, pass --credentials-dir DIR, "
                "or give a path containing '/')"
            )
        return Path(directory) / credential
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


MAX_SECRET_BYTES = 16 * 1024
"""Largest secret file accepted: a client secret, password or API key is at most a
few hundred bytes; a larger file is the wrong file."""


class _UnreadableError(Exception):
    """A secret file that cannot be used; the message says why."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _read_regular(fd: int, path: Path) -> bytes:
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _UnreadableError(
                f"secret file {path} is {_kind(info.st_mode)}; it must be a regular file"
            )
        if info.st_size > MAX_SECRET_BYTES:
            raise _UnreadableError(
                f"secret file {path} is {info.st_size} bytes; a secret is at most "
                f"{MAX_SECRET_BYTES} bytes"
            )
        # Up to one byte more than allowed: a file that grew after fstat is still caught.
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SECRET_BYTES:
            chunk = os.read(fd, MAX_SECRET_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise _UnreadableError(f"cannot read secret file {path}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise _UnreadableError(
            f"secret file {path} is larger than {MAX_SECRET_BYTES} bytes; it must hold one secret"
        )
    return data


def _read_secret_file(path: Path) -> str:
    """The file's text, read only if it is a regular file under `MAX_SECRET_BYTES`.

    Opened with ``O_NONBLOCK`` and checked with ``fstat`` *before* reading: a
    FIFO would otherwise block the open (and a reload, and SIGTERM behind it)
    until some writer appears, and ``/dev/zero`` would be read until memory
    runs out. ``O_NOCTTY`` keeps a terminal device from becoming syncd's.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _UnreadableError(f"secret file {path} does not exist") from None
    except PermissionError:
        raise _UnreadableError(f"secret file {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise _UnreadableError(f"cannot read secret file {path}: {exc.strerror}") from None
    try:
        data = _read_regular(fd, path)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _UnreadableError(f"secret file {path} is not UTF-8 text") from None
    # Editors and `echo` add one newline; strip exactly one so a secret may end in whitespace.
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
