"""The TOML key locator: every kind of key lands on the line it is written on."""

from __future__ import annotations

import tomllib
from textwrap import dedent

from syncd.config.locate import KeyLocator

DOC = dedent(
    '''\
    # comment [not.a.table]
    title = "x"                       # line 2
    multi = """
    [looks.like.a.table]
    fake = 1
    """
    literal = \'\'\'
    [also.fake]\'\'\'
    [daemon]
    database = "a.db"                 # line 10
    "quoted.key" = 1
    dotted.inner = 2
    [channels.ankorstore]
    locations = [
      "activeants",                   # line 15
      # a comment inside an array
      "astral:*",
    ]
    [[catalog.bundles]]
    sku = "B1"                        # line 20
    components = { "SKU-A" = 2, 'SKU.B' = 1 }
    [[catalog.bundles]]
    sku = "B2"
    [catalog.bundles.extra]
    note = "belongs to B2"            # line 25
    rows = [{ sku = "r0" }, { sku = "r1" }]
    when = 1979-05-27 07:32:00Z
    after = true
    '''
)


def test_document_is_valid_toml() -> None:
    # The locator assumes valid TOML; make sure the fixture is.
    assert tomllib.loads(DOC)["catalog"]["bundles"][1]["extra"]["note"] == "belongs to B2"


def test_plain_and_dotted_and_quoted_keys() -> None:
    locator = KeyLocator(DOC)
    assert locator.line_of(("title",)) == 2
    assert locator.line_of(("daemon",)) == 9
    assert locator.line_of(("daemon", "database")) == 10
    assert locator.line_of(("daemon", "quoted.key")) == 11
    assert locator.line_of(("daemon", "dotted", "inner")) == 12


def test_multiline_strings_hide_their_content() -> None:
    locator = KeyLocator(DOC)
    assert locator.line_of(("multi",)) == 3
    assert locator.line_of(("literal",)) == 7
    assert locator.line_of(("looks",)) is None
    assert locator.line_of(("also",)) is None
    assert locator.line_of(("fake",)) is None


def test_array_elements_have_their_own_lines() -> None:
    locator = KeyLocator(DOC)
    assert locator.line_of(("channels", "ankorstore", "locations")) == 14
    assert locator.line_of(("channels", "ankorstore", "locations", 0)) == 15
    assert locator.line_of(("channels", "ankorstore", "locations", 1)) == 17


def test_array_tables_are_indexed_and_subtables_join_the_last_element() -> None:
    locator = KeyLocator(DOC)
    assert locator.line_of(("catalog", "bundles", 0)) == 19
    assert locator.line_of(("catalog", "bundles", 0, "sku")) == 20
    assert locator.line_of(("catalog", "bundles", 1)) == 22
    assert locator.line_of(("catalog", "bundles", 1, "sku")) == 23
    assert locator.line_of(("catalog", "bundles", 1, "extra", "note")) == 25


def test_inline_tables_and_arrays_of_inline_tables() -> None:
    locator = KeyLocator(DOC)
    assert locator.line_of(("catalog", "bundles", 0, "components", "SKU-A")) == 21
    assert locator.line_of(("catalog", "bundles", 0, "components", "SKU.B")) == 21
    assert locator.line_of(("catalog", "bundles", 1, "extra", "rows", 1, "sku")) == 26
    # A datetime with a space does not derail the keys after it.
    assert locator.line_of(("catalog", "bundles", 1, "extra", "after")) == 28


def test_missing_key_falls_back_to_its_table_header() -> None:
    locator = KeyLocator(DOC)
    assert locator.nearest_line(("catalog", "bundles", 1, "components")) == 22
    assert locator.nearest_line(("channels", "ankorstore", "buffer")) == 13
    assert locator.nearest_line(("nothing", "here")) is None


def test_multiline_arrays_of_inline_tables() -> None:
    text = 'variants = [\n  { sku = "A" },\n\n  { sku = "B", pack_size = 6 },\n]\nnext = 1\n'
    locator = KeyLocator(text)
    assert locator.line_of(("variants", 0, "sku")) == 2
    assert locator.line_of(("variants", 1, "pack_size")) == 4
    assert locator.line_of(("next",)) == 6


def test_escaped_quotes_in_strings_and_keys() -> None:
    text = 'a = "say \\"[x]\\" = 1"\n"k\\"q" = 2\nb = """ends with quotes"""""\nc = 3\n'
    assert tomllib.loads(text)["b"] == 'ends with quotes""'
    locator = KeyLocator(text)
    assert locator.line_of(('k"q',)) == 2
    assert locator.line_of(("c",)) == 4


def test_crlf_line_endings() -> None:
    text = "[daemon]\r\ndatabase = 'x'\r\n\r\n[catalog]\r\ncsv = 'c.csv'\r\n"
    locator = KeyLocator(text)
    assert locator.line_of(("daemon", "database")) == 2
    assert locator.line_of(("catalog", "csv")) == 5
