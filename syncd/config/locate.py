"""Find the line a TOML key is written on.

`tomllib` returns plain dicts without positions, yet a useful config error
points at a line. This scanner walks the source text once more and records,
for every key path it sees -- table headers, ``[[array]]`` tables (with their
index), dotted keys, inline tables and array elements -- the line where it
first appears.

It runs only on text `tomllib` has already accepted, so it assumes valid TOML
and stays small: it skips values it does not descend into rather than
checking them.
"""

from __future__ import annotations

import bisect
import re
import tomllib

from syncd.config.problems import KeyPath

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\n#]")


class KeyLocator:
    """Line numbers of every key path in one TOML document."""

    def __init__(self, text: str) -> None:
        # Scanned on first use: a valid config never asks for a line, and on a
        # 100 000-variant catalog the scan costs more than parsing the file.
        self._text = text
        self._scanned: tuple[dict[KeyPath, int], KeyPath] | None = None

    @property
    def _lines(self) -> dict[KeyPath, int]:
        return self._scan()[0]

    @property
    def final_table(self) -> KeyPath:
        """The table the document ends in (``("catalog", "bundles", 1)``): where a
        key written right after it would go. Used to name a duplicate key."""
        return self._scan()[1]

    def _scan(self) -> tuple[dict[KeyPath, int], KeyPath]:
        if self._scanned is None:
            scanner = _Scanner(self._text)
            self._scanned = (scanner.scan(), scanner.table)
        return self._scanned

    def line_of(self, path: KeyPath) -> int | None:
        """The line where ``path`` itself is written, or ``None``."""
        return self._lines.get(tuple(path))

    def nearest_line(self, path: KeyPath) -> int | None:
        """The line of ``path`` or, when it is absent (a missing key), of its closest parent."""
        path = tuple(path)
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def paths(self) -> dict[KeyPath, int]:
        """Every located path (a copy), for tests and diagnostics."""
        return dict(self._lines)


class _Scanner:
    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]
        self._lines: dict[KeyPath, int] = {}
        self._array_tables: dict[KeyPath, int] = {}  # concrete path -> element count
        self.table: KeyPath = ()

    def scan(self) -> dict[KeyPath, int]:
        text = self._text
        table: KeyPath = ()
        while self._pos < len(text):
            self._skip_blank()
            if self._pos >= len(text):
                break
            char = text[self._pos]
            if char in "\r\n":
                self._pos += 1
            elif char == "#":
                self._skip_comment()
            elif char == "[":
                table = self._header()
            else:
                self._key_value(table)
        self.table = table
        return self._lines

    # --- structure -------------------------------------------------------

    def _header(self) -> KeyPath:
        line = self._line()
        is_array = self._text.startswith("[[", self._pos)
        self._pos += 2 if is_array else 1
        self._skip_blank()
        keys = self._key()
        self._skip_blank()
        self._pos += 2 if is_array else 1
        path: KeyPath = ()
        for index, key in enumerate(keys):
            path = (*path, key)
            if index == len(keys) - 1 and is_array:
                element = self._array_tables.get(path, 0)
                self._array_tables[path] = element + 1
                self._lines.setdefault(path, line)
                path = (*path, element)
            elif path in self._array_tables:
                # A sub-table of an array table belongs to its latest element.
                path = (*path, self._array_tables[path] - 1)
            self._lines.setdefault(path, line)
        self._lines[path] = line
        return path

    def _key_value(self, table: KeyPath) -> None:
        line = self._line()
        path = table
        for key in self._key():
            path = (*path, key)
            self._lines.setdefault(path, line)
        self._skip_blank()
        self._pos += 1  # "="
        self._skip_blank()
        self._value(path)

    def _value(self, path: KeyPath) -> None:
        text, pos = self._text, self._pos
        if text.startswith('"""', pos) or text.startswith("'''", pos):
            self._multiline_string(text[pos])
        elif text[pos] == '"':
            self._basic_string()
        elif text[pos] == "'":
            self._pos = text.index("'", pos + 1) + 1
        elif text[pos] == "[":
            self._array(path)
        elif text[pos] == "{":
            self._inline_table(path)
        else:
            match = _SCALAR_END.search(text, pos)
            self._pos = match.start() if match else len(text)

    def _array(self, path: KeyPath) -> None:
        self._pos += 1
        index = 0
        while True:
            self._skip_blank_lines()
            if self._text[self._pos] == "]":
                self._pos += 1
                return
            element = (*path, index)
            self._lines.setdefault(element, self._line())
            self._value(element)
            index += 1
            self._skip_blank_lines()
            if self._text[self._pos] == ",":
                self._pos += 1

    def _inline_table(self, path: KeyPath) -> None:
        self._pos += 1
        while True:
            self._skip_blank()
            if self._text[self._pos] == "}":
                self._pos += 1
                return
            if self._text[self._pos] == ",":
                self._pos += 1
                continue
            self._key_value(path)

    # --- keys ------------------------------------------------------------

    def _key(self) -> list[str]:
        keys = [self._simple_key()]
        while True:
            self._skip_blank()
            if self._pos < len(self._text) and self._text[self._pos] == ".":
                self._pos += 1
                self._skip_blank()
                keys.append(self._simple_key())
            else:
                return keys

    def _simple_key(self) -> str:
        text, start = self._text, self._pos
        if text[start] == '"':
            self._basic_string()
            # Escapes are rare in keys; let tomllib decode them exactly.
            return str(tomllib.loads("k = " + text[start : self._pos])["k"])
        if text[start] == "'":
            end = text.index("'", start + 1)
            self._pos = end + 1
            return text[start + 1 : end]
        match = _BARE_KEY.match(text, start)
        assert match is not None, f"locator: no key at offset {start}"
        self._pos = match.end()
        return match.group()

    # --- lexical skipping ------------------------------------------------

    def _basic_string(self) -> None:
        text, pos = self._text, self._pos + 1
        while text[pos] != '"':
            pos += 2 if text[pos] == "\\" else 1
        self._pos = pos + 1

    def _multiline_string(self, quote: str) -> None:
        text, pos = self._text, self._pos + 3
        closing = quote * 3
        while not text.startswith(closing, pos):
            pos += 2 if quote == '"' and text[pos] == "\\" else 1
        pos += 3
        # Up to two quotes right before the delimiter belong to the content.
        for _ in range(2):
            if pos < len(text) and text[pos] == quote:
                pos += 1
        self._pos = pos

    def _skip_blank(self) -> None:
        text, pos = self._text, self._pos
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        self._pos = pos

    def _skip_blank_lines(self) -> None:
        """Whitespace, newlines and comments, as allowed inside arrays."""
        while self._pos < len(self._text):
            char = self._text[self._pos]
            if char in " \t\r\n":
                self._pos += 1
            elif char == "#":
                self._skip_comment()
            else:
                return

    def _skip_comment(self) -> None:
        end = self._text.find("\n", self._pos)
        self._pos = len(self._text) if end < 0 else end

    def _line(self) -> int:
        return bisect.bisect_left(self._newlines, self._pos) + 1
