"""The CSV catalog: each bad cell is reported on its line and column; good rows load."""

from __future__ import annotations

from pathlib import Path

from syncd.config.catalog_csv import parse_catalog_csv, read_catalog_csv
from syncd.config.problems import CsvCell, Finding


def _problems(text: str) -> list[tuple[int, str, str]]:
    _, findings = parse_catalog_csv(text, "c.csv")
    out = []
    for finding in findings:
        assert isinstance(finding.where, CsvCell)
        assert finding.where.file == "c.csv"
        out.append((finding.where.line, finding.where.column, finding.message))
    return out


def test_rows_become_variants_with_channels_and_pack_size() -> None:
    text = "\ufeffsku, barcode ,pack_size,channels\nA,871,6,ankorstore; fabric\n\n B ,,,\n"
    variants, findings = parse_catalog_csv(text.removeprefix("\ufeff"), "c.csv")
    assert findings == []
    a, b = variants
    assert (a.variant.sku, a.variant.barcode, a.variant.pack_size) == ("A", "871", 6)
    assert a.channels == {"ankorstore", "fabric"}
    assert (b.variant.sku, b.variant.barcode, b.variant.pack_size, b.channels) == (
        "B",
        None,
        1,
        frozenset(),
    )
    assert b.where == CsvCell("c.csv", 4, "sku")


def test_header_problems() -> None:
    assert _problems("sku,colour,sku\n") == [
        (
            1,
            "colour",
            "unknown column; use sku, activeants_sku, astral_variant_id, ankorstore_variant_id, "
            "ankorstore_sku, fabric_sku, barcode, pack_size, channels",
        ),
        (1, "sku", "duplicate column"),
    ]
    assert _problems("barcode\n871\n") == [(1, "sku", "missing required column")]
    assert _problems("") == [(1, "", "empty file: a header row is required")]


def test_cell_problems_name_line_and_column() -> None:
    text = "sku,pack_size,channels\nA,1,\n,1,\nB,zero,\nC,0,\nD,1,amazon\nE,1\n"
    assert _problems(text) == [
        (3, "sku", "empty SKU"),
        (4, "pack_size", "'zero' is not a whole number >= 1"),
        (5, "pack_size", "'0' is not a whole number >= 1"),
        (6, "channels", "unknown channel 'amazon'; use ankorstore or fabric"),
        (7, "", "2 cells, header has 3"),
    ]


def test_quoted_multiline_cell_keeps_later_line_numbers_right() -> None:
    text = 'sku,barcode\n"A","871"\n"B\nC",872\nD,x,extra\n'
    assert _problems(text) == [(5, "", "3 cells, header has 2")]


def test_the_file_is_streamed_and_a_late_bad_byte_names_its_line(tmp_path: Path) -> None:
    """Rows come one at a time from the file (never one string of it); bad UTF-8 far down
    the file is still reported on its own line."""
    rows = "".join(f"S{i},SKU-{i}\n" for i in range(20_000))
    path = tmp_path / "big.csv"
    path.write_bytes(b"\xef\xbb\xbfsku,fabric_sku\n" + rows.encode() + b"S-bad,\xff\n")
    findings: list[Finding] = []
    variants = read_catalog_csv(path, "big.csv", findings)
    first = next(variants)  # available before the rest of the file is decoded
    assert (first.variant.sku, first.variant.fabric_sku, findings) == ("S0", "SKU-0", [])
    assert isinstance(first.where, CsvCell)
    assert first.where.line == 2
    list(variants)
    assert findings == [Finding(CsvCell("big.csv", 20_002, ""), "not valid UTF-8")]


def test_an_identity_equal_to_the_sku_shares_its_string() -> None:
    variants, _ = parse_catalog_csv("sku,ankorstore_sku,fabric_sku\nA-1,A-1,F-1\n", "c.csv")
    variant = variants[0].variant
    assert variant.ankorstore_sku is variant.sku
    assert variant.fabric_sku == "F-1"
