"""`load_config`: read, parse, validate and resolve a syncd config in one go.

Every problem found is collected and raised together as a `ConfigError`, each
with the file and line it is on, so one run of ``syncd check-config`` shows
everything to fix. The stages, each run only when the previous one passed:

1. read and decode the file; parse TOML (``tomllib`` knows the line);
2. validate the structure with the pydantic sections (every error at once);
3. cross-section checks, secrets, the CSV catalog and catalog integrity.
"""

from __future__ import annotations

import difflib
import itertools
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from syncd.config.catalog import (
    SourcedVariant,
    assemble_catalog,
    drop_catalog_entries,
    inline_variants,
)
from syncd.config.catalog_csv import read_catalog_csv
from syncd.config.checks import check_config, needed_apis
from syncd.config.credentials import check_secret_choice, resolve_secret
from syncd.config.locate import KeyLocator
from syncd.config.problems import (
    ConfigError,
    ConfigProblem,
    CsvCell,
    Finding,
    KeyPath,
    TomlKey,
    format_key,
)
from syncd.config.root import Config
from syncd.config.sections import DaemonSection
from syncd.config.syntax import parse_toml


def read_daemon_section(config_path: Path) -> DaemonSection:
    """``[daemon]`` of the config file alone, as the daemon reads it.

    For the commands that talk to a daemon or open its ledger (`syncd
    status`, ``confirm``, ``explain``, ``unpark``): not `load_config`, which
    also resolves API secrets and reads the catalog -- files an operator in
    syncd's group usually may not read, and none of it needed here.
    Validating ``[daemon]`` with the config's own model keeps the defaults and
    relative-path rules identical to the daemon's. Raises ``OSError``,
    ``tomllib.TOMLDecodeError`` or a pydantic ``ValidationError``.
    """
    data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    return DaemonSection.model_validate(
        data.get("daemon", {}), context={"base_dir": config_path.absolute().parent}
    )


_INT64 = range(-(2**63), 2**63)
"""TOML integers are 64-bit: "if an integer cannot be represented losslessly, an error
must be thrown" (TOML 1.0, Integer). `tomllib` accepts any size, so syncd checks."""


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Load the config at ``path``; secrets come from ``environ`` (default: `os.environ`).

    Raises `ConfigError` listing every problem found.
    """
    display = os.fspath(path)
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([ConfigProblem(display, None, "", f"cannot read: {reason}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(display, line, "", "not valid UTF-8")]) from None
    return load_config_text(
        text, path=display, base_dir=file.absolute().parent, environ=environ, source=file
    )


def load_config_text(
    text: str,
    *,
    path: str = "<config>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    source: Path | None = None,
) -> Config:
    """Load a config from TOML text; relative paths resolve against ``base_dir``."""
    data, locator = parse_toml(text, path)
    too_large = [_place(finding, locator, path) for finding in _oversized_integers(data, ())]
    if too_large:
        raise ConfigError(too_large)
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = [_validation_problem(error, locator, path) for error in exc.errors()]
        raise ConfigError(_sorted(problems, path)) from None

    findings = check_config(config) + _nothing_enabled(config, data)
    findings += _resolve_secrets(config, base_dir, os.environ if environ is None else environ)
    csv_findings: list[Finding] = []
    csv_variants = _read_csv(config, data, path, csv_findings)  # streamed into the catalog
    build = assemble_catalog(
        itertools.chain(csv_variants, inline_variants(config.catalog)), config.catalog
    )
    findings += csv_findings + build.findings
    if findings:
        raise ConfigError(_sorted([_place(f, locator, path) for f in findings], path))
    config = drop_catalog_entries(config)
    config.attach_loaded(build, source)
    return config


def _oversized_integers(node: object, at: KeyPath) -> list[Finding]:
    """Integers outside 64 bits, which TOML itself forbids (and SQLite cannot store)."""
    if isinstance(node, bool):
        return []
    if isinstance(node, int):
        if node in _INT64:
            return []
        return [Finding(TomlKey(at), "integer out of range: TOML integers are 64-bit")]
    if isinstance(node, dict):
        return [f for key, value in node.items() for f in _oversized_integers(value, (*at, key))]
    if isinstance(node, list):
        return [
            f for index, item in enumerate(node) for f in _oversized_integers(item, (*at, index))
        ]
    return []


def _nothing_enabled(config: Config, data: dict[str, Any]) -> list[Finding]:
    """A config that enables no source and no channel gives the daemon nothing to do.

    That is an empty file, a file of comments, or every section disabled --
    almost always the wrong file (or a systemd unit pointing at a template).
    """
    if config.sources.enabled() or config.channels.enabled():
        return []
    where = ("sources",) if "sources" in data else ("channels",) if "channels" in data else ()
    return [
        Finding(
            TomlKey(where),
            "no source or channel is enabled: syncd would have nothing to do"
            " (add a [sources.*] and a [channels.*] section)",
        )
    ]


def _resolve_secrets(
    config: Config, base_dir: Path | None, environ: Mapping[str, str]
) -> list[Finding]:
    findings: list[Finding] = []
    needed = needed_apis(config)
    for name, section in config.apis.present().items():
        for secret in section.SECRETS:
            choice = check_secret_choice(("apis", name), section, secret)
            findings += choice
            if name not in needed or choice:
                continue  # a disabled integration's secrets are never read
            value, problems = resolve_secret(
                ("apis", name), section, secret, base_dir=base_dir, environ=environ
            )
            findings += problems
            if value is not None:
                section.set_resolved(secret, value)
    return findings


def _read_csv(
    config: Config, data: dict[str, Any], path: str, findings: list[Finding]
) -> Iterator[SourcedVariant]:
    csv_path = config.catalog.csv
    if csv_path is None:
        return iter(())
    written = str(data["catalog"]["csv"])
    # Name the CSV in problems the way the user can find it: next to the config as given.
    display = (
        written if Path(written).is_absolute() else os.path.join(os.path.dirname(path), written)
    )
    return read_catalog_csv(csv_path, display, findings)


def _validation_problem(error: ErrorDetails, locator: KeyLocator, path: str) -> ConfigProblem:
    loc: KeyPath = tuple(part for part in error["loc"] if part != "[key]")
    return ConfigProblem(path, locator.nearest_line(loc), format_key(loc), _message(error, loc))


def _message(error: ErrorDetails, loc: KeyPath) -> str:
    kind, message, value = error["type"], error["msg"], error.get("input")
    if kind == "extra_forbidden":
        key = loc[-1] if loc else ""
        close = difflib.get_close_matches(str(key), _allowed_keys(loc[:-1]), n=1)
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"should be a table (got {_toml_type(value)})"
    if kind == "list_type":
        return f"should be an array (got {_toml_type(value)})"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind.endswith(("_type", "_parsing")):
        # Name the type, never the value: it may be a mistyped secret.
        return f"{message} (got {_toml_type(value)})"
    return message


def _allowed_keys(parent: KeyPath) -> list[str]:
    model: type[BaseModel] | None = Config
    for part in parent:
        if isinstance(part, int):
            continue  # an array element has the array's item model
        if model is None or part not in model.model_fields:
            return []
        model = _model_in(model.model_fields[part].annotation)
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    names = {str: "string", int: "integer", float: "float", list: "array", dict: "table"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "date/time" if value is not None else "nothing"


def _place(finding: Finding, locator: KeyLocator, path: str) -> ConfigProblem:
    where = finding.where
    if isinstance(where, CsvCell):
        return ConfigProblem(where.file, where.line, where.column, finding.message)
    line = locator.nearest_line(where.path)
    if line is None and not where.path:
        line = 1  # about the whole file (e.g. it is empty): point at its start
    return ConfigProblem(path, line, format_key(where.path), finding.message)


def _sorted(problems: list[ConfigProblem], path: str) -> list[ConfigProblem]:
    """The config file's problems first, in line order; then the CSV's."""
    return sorted(problems, key=lambda p: (p.path != path, p.path, p.line or 0))
