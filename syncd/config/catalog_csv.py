"""The optional CSV of variants (``[catalog] csv = ...``).

Columns (header row required, any order; only ``sku`` is mandatory)::

    sku,activeants_sku,astral_variant_id,ankorstore_variant_id,ankorstore_sku,
    fabric_sku,barcode,pack_size,channels

Empty cells are "not set"; ``pack_size`` defaults to 1; ``channels`` is a
``;``-separated list (``ankorstore;fabric``), empty for every channel. Cells
are stripped of surrounding spaces. Rows are checked by hand rather than
through pydantic: catalogs run to tens of thousands of rows and every
problem should name its line and column.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

from syncd.config.catalog import IDENTITY_FIELDS, MAX_MULTIPLIER, SourcedVariant, make_variant
from syncd.config.problems import CsvCell, Finding, TomlKey
from syncd.config.sections import CHANNEL_NAMES

COLUMNS = ("sku", *IDENTITY_FIELDS, "pack_size", "channels")


def read_catalog_csv(path: Path, display: str, findings: list[Finding]) -> Iterator[SourcedVariant]:
    """Stream the CSV at ``path``: its variants one row at a time.

    ``display`` is how problems name the file. Problems are appended to
    ``findings`` as the rows are read, so they are complete once the iterator
    is exhausted. The file is never held whole in memory (a 100 000-row
    catalog is 12 MB of text, and four times that as one `io.StringIO`).
    """
    try:
        # utf-8-sig: spreadsheets often save a byte-order mark.
        with path.open(encoding="utf-8-sig", newline="") as file:
            yield from _parse(file, display, findings)
    except UnicodeDecodeError:
        findings.append(Finding(CsvCell(display, _first_bad_line(path), ""), "not valid UTF-8"))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        findings.append(Finding(TomlKey(("catalog", "csv")), f"cannot read {display}: {reason}"))


def _first_bad_line(path: Path) -> int:
    """The number of the first line that is not valid UTF-8 (read line by line)."""
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def parse_catalog_csv(text: str, display: str) -> tuple[list[SourcedVariant], list[Finding]]:
    """Parse CSV text into variants; every bad cell is a finding on its line and column."""
    findings: list[Finding] = []
    variants = list(_parse(io.StringIO(text, newline=""), display, findings))
    return variants, findings


def _parse(lines: Iterable[str], display: str, findings: list[Finding]) -> Iterator[SourcedVariant]:
    reader = csv.reader(lines, strict=True)
    try:
        header = [cell.strip() for cell in next(reader)]
    except StopIteration:
        findings.append(Finding(CsvCell(display, 1, ""), "empty file: a header row is required"))
        return
    except csv.Error as exc:
        findings.append(Finding(CsvCell(display, reader.line_num, ""), f"CSV syntax: {exc}"))
        return

    columns: dict[str, int] = {}
    problems: list[Finding] = []
    for index, name in enumerate(header):
        if name not in COLUMNS:
            expected = ", ".join(COLUMNS)
            problems.append(Finding(CsvCell(display, 1, name), f"unknown column; use {expected}"))
        elif name in columns:
            problems.append(Finding(CsvCell(display, 1, name), "duplicate column"))
        else:
            columns[name] = index
    if "sku" not in columns:
        problems.append(Finding(CsvCell(display, 1, "sku"), "missing required column"))
    if problems:
        findings.extend(problems)
        return

    width = len(header)
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines are harmless
            if len(row) != width:
                findings.append(
                    Finding(CsvCell(display, line, ""), f"{len(row)} cells, header has {width}")
                )
                continue
            variant = _row(row, columns, display, line, findings)
            if variant is not None:
                yield variant
    except csv.Error as exc:
        findings.append(Finding(CsvCell(display, reader.line_num, ""), f"CSV syntax: {exc}"))


def _row(
    row: list[str], columns: dict[str, int], display: str, line: int, findings: list[Finding]
) -> SourcedVariant | None:
    values = [cell.strip() for cell in row]

    def cell(name: str) -> str:
        index = columns.get(name)
        return "" if index is None else values[index]

    sku = cell("sku")
    if not sku:
        findings.append(Finding(CsvCell(display, line, "sku"), "empty SKU"))
        return None
    ok = True
    pack_size = 1
    if raw := cell("pack_size"):
        try:
            pack_size = int(raw)
        except ValueError:
            pack_size = 0
        problem = None
        if pack_size < 1:
            problem = f"{raw!r} is not a whole number >= 1"
        elif pack_size > MAX_MULTIPLIER:
            problem = f"{raw!r} is more than {MAX_MULTIPLIER} units per pack"
        if problem is not None:
            findings.append(Finding(CsvCell(display, line, "pack_size"), problem))
            ok = False
    channels = _NO_CHANNELS
    if raw := cell("channels"):
        channels = _channel_set(raw)
        unknown = sorted(channels - CHANNEL_NAMES)
        if unknown:
            names = ", ".join(map(repr, unknown))
            findings.append(
                Finding(
                    CsvCell(display, line, "channels"),
                    f"unknown channel {names}; use {' or '.join(sorted(CHANNEL_NAMES))}",
                )
            )
            ok = False
    if not ok:
        return None
    ids = {name: values[index] or None for name, index in columns.items() if name in _ID_SET}
    return SourcedVariant(
        make_variant(sku, pack_size, ids), channels, CsvCell(display, line, "sku")
    )


_ID_SET = frozenset(IDENTITY_FIELDS)


@functools.lru_cache(maxsize=64)
def _channel_set(raw: str) -> frozenset[str]:
    """The channels of a ``channels`` cell, one shared set per spelling.

    A catalog has a handful of distinct cells but 100 000s of rows; a set per
    row cost more memory than the variants' own fields.
    """
    return frozenset(name.strip() for name in raw.split(";") if name.strip())


_NO_CHANNELS: frozenset[str] = frozenset()
