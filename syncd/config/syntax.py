"""TOML syntax errors as config problems, with duplicate keys named.

`tomllib` reports where it stopped (``at line 4, column 22``) but not which
key was at fault: a key written twice comes out as "Cannot overwrite a
value". A user editing a long file needs the key, so for the duplicate
family of errors the key path is recovered: everything before the offending
line is valid TOML (``tomllib`` reads sequentially and stopped there), so
`KeyLocator` can tell which table that line is in and where the key was
first written. When that recovery fails the plain syntax message is kept.
"""

from __future__ import annotations

import ast
import re
import tomllib
from typing import Any

from syncd.config.locate import KeyLocator
from syncd.config.problems import ConfigError, ConfigProblem, KeyPath, format_key

_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")
_SIMPLE_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_DOTTED_KEY = rf"{_SIMPLE_KEY}(?:[ \t]*\.[ \t]*{_SIMPLE_KEY})*"
_ASSIGNMENT = re.compile(rf"[ \t]*({_DOTTED_KEY})[ \t]*=")
_HEADER = re.compile(rf"[ \t]*\[\[?[ \t]*({_DOTTED_KEY})[ \t]*\]")
_DECLARED_TWICE = re.compile(r"Cannot declare (\(.*\)) twice")
_IMMUTABLE = re.compile(r"Cannot mutate immutable namespace (\(.*\))")
_INLINE_DUPLICATE = re.compile(r"Duplicate inline table key '(.*)'")
_LONG_NUMBER = re.compile(r"\d{4000,}")
_MAX_DEPTH = 100
"""Arrays or inline tables nested deeper than this are reported where they start."""


def parse_toml(text: str, path: str) -> tuple[dict[str, Any], KeyLocator]:
    """The parsed document and its key lines; `ConfigError` for anything unparseable.

    Besides syntax errors, hostile input makes `tomllib` raise what it does
    not document: a number of thousands of digits trips Python's integer
    conversion limit (``ValueError``) and a few hundred nested arrays its
    recursion (``RecursionError``). Both are a user's error, reported on
    their line like any other, never a traceback.
    """
    try:
        data = tomllib.loads(text)
        return data, KeyLocator(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([syntax_problem(str(exc), text, path)]) from None
    except ValueError as exc:
        match = _LONG_NUMBER.search(text)
        if match is None:
            problem = ConfigProblem(path, 1, "", f"TOML syntax: {exc}")
        else:
            line = text.count("\n", 0, match.start()) + 1
            problem = ConfigProblem(
                path, line, "", "TOML syntax: a number with thousands of digits"
            )
    except RecursionError:
        problem = ConfigProblem(
            path, _deep_line(text), "", f"TOML syntax: values nested more than {_MAX_DEPTH} deep"
        )
    raise ConfigError([problem])


def _deep_line(text: str) -> int:
    """The line where brackets first nest deeper than `_MAX_DEPTH` (strings ignored: a hint)."""
    depth = 0
    for index, char in enumerate(text):
        if char in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return text.count("\n", 0, index) + 1
        elif char in "]}":
            depth = max(0, depth - 1)
    return 1


def syntax_problem(message: str, text: str, path: str) -> ConfigProblem:
    """The problem for a `tomllib.TOMLDecodeError` message about ``text``."""
    match = _TOML_POSITION.search(message)
    if match is None:
        return ConfigProblem(path, None, "", f"TOML syntax: {message}")
    line = int(match.group(1)) if match.group(1) else text.count("\n") + 1
    reason = message[: match.start()]
    context = _context(text, line)
    if context is not None:
        locator, statement = context
        named = _duplicate(reason, locator, statement)
        if named is not None:
            key, detail = named
            return ConfigProblem(path, line, format_key(key), detail)
    column = f" (column {match.group(2)})" if match.group(2) else " (at end of file)"
    return ConfigProblem(path, line, "", f"TOML syntax: {reason}{column}")


def _context(text: str, line: int) -> tuple[KeyLocator, str] | None:
    """A locator for everything before ``line`` and the text of ``line``.

    None when that prefix is not valid TOML itself: the offending statement
    started on an earlier line (a multi-line value), so no key can be named.
    """
    lines = text.splitlines(keepends=True)
    if not 1 <= line <= len(lines):
        return None
    prefix = "".join(lines[: line - 1])
    try:
        tomllib.loads(prefix)
    except tomllib.TOMLDecodeError:
        return None
    return KeyLocator(prefix), lines[line - 1]


def _duplicate(reason: str, locator: KeyLocator, statement: str) -> tuple[KeyPath, str] | None:
    """(key path, message) for a duplicate key or table written by ``statement``."""
    if declared := _DECLARED_TWICE.fullmatch(reason):
        table = _literal_path(declared.group(1))
        if table is None:
            return None
        return table, f"table declared twice{_first(locator.line_of(table))}"
    if immutable := _IMMUTABLE.fullmatch(reason):
        fixed = _literal_path(immutable.group(1))
        if fixed is None:
            return None
        first = _first(locator.line_of(fixed))
        return fixed, f"already set as a value or inline table{first}; it cannot be extended"
    if reason == "Cannot overwrite a value":
        key = _statement_key(statement, locator.final_table)
        if key is None:
            return None
        return key, f"set twice{_first(locator.line_of(key))}"
    if inline := _INLINE_DUPLICATE.fullmatch(reason):
        owner = _statement_key(statement, locator.final_table)
        if owner is None:
            return None
        return (*owner, inline.group(1)), "set twice in one inline table"
    return None


def _first(line: int | None) -> str:
    return f" (first on line {line})" if line is not None else ""


def _literal_path(text: str) -> KeyPath | None:
    """``('channels', 'ankorstore')`` as tomllib prints a table path."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, tuple) and all(isinstance(part, str) for part in value):
        return tuple(value)
    return None


def _statement_key(statement: str, table: KeyPath) -> KeyPath | None:
    """The full key path a ``key = value`` or ``[table]`` line writes."""
    header = _HEADER.match(statement)
    if header is not None:
        return _dotted(header.group(1))
    assignment = _ASSIGNMENT.match(statement)
    if assignment is None:
        return None
    key = _dotted(assignment.group(1))
    return None if key is None else (*table, *key)


def _dotted(key: str) -> KeyPath | None:
    """Decode a dotted TOML key exactly as tomllib would (quotes, escapes)."""
    try:
        node: Any = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:
        return None
    parts: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        name, node = next(iter(node.items()))
        parts.append(name)
    return tuple(parts) if node == 0 else None
