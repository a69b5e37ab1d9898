"""What goes wrong in a config, in the shape `syncd check-config` prints it.

A problem names the file, the line (when one can be found), the dotted key
and a message: ``PATH:LINE: key: message``, the format compilers use, so
editors can jump to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]
"""A key as a path of table keys and array indexes: ``("catalog", "bundles", 0, "sku")``."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file (or the CSV catalog it names)."""

    path: str
    """The file the problem is in, as the user gave it."""
    line: int | None
    """1-based line; ``None`` when the problem has no place in the file (a missing section)."""
    key: str
    """Dotted key (``channels.ankorstore.buffer``) or CSV column; empty for file-level problems."""
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config cannot be used; ``problems`` lists every reason found."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True, slots=True)
class TomlKey:
    """A place in the TOML file, by key path (its line is looked up later)."""

    path: KeyPath


@dataclass(frozen=True, slots=True)
class CsvCell:
    """A place in the CSV catalog: its file, 1-based line and column name."""

    file: str
    line: int
    column: str


Where = TomlKey | CsvCell


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found by a pure check, before it is given a file and line."""

    where: Where
    message: str


def describe(where: Where) -> str:
    """Name a place in a message: ``catalog.variants[2]`` or ``catalog.csv line 12``."""
    if isinstance(where, CsvCell):
        return f"{where.file} line {where.line}"
    return format_key(where.path)


def format_key(path: Iterable[str | int]) -> str:
    """Render a key path the way it is written in TOML: ``catalog.bundles[0].components."A.1"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _BARE_KEY.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
        out = f"{out}.{text}" if out else text
    return out
