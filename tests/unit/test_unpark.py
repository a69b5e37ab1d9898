"""`syncd unpark`: through the daemon's socket, or in the ledger file when no daemon runs."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from syncd.cli import main
from syncd.daemon.lock import RuntimeLock
from syncd.ledger.store import Ledger
from syncd.model import Desired, Explanation, now_utc
from syncd.status.protocol import StatusRequestError, unpark_args
from tests.unit.status._support import serving_in_thread, short_dir

CH = "ankorstore"


@pytest.fixture
def directory() -> Iterator[Path]:
    with short_dir() as path:
        yield path


def _config(directory: Path) -> Path:
    path = directory / "syncd.toml"
    path.write_text(
        "[daemon]\n"
        f'database = "{directory / "ledger.db"}"\n'
        f'status_socket = "{directory / "status.sock"}"\n',
        encoding="utf-8",
    )
    return path


def _desired(sku: str, quantity: int) -> Desired:
    return Desired(CH, sku, quantity, Explanation(CH, sku, {}, (), None, quantity))


async def _park(database: Path, *skus: str) -> None:
    async with await Ledger.open(database) as ledger:
        await ledger.set_desired([_desired(s, 4) for s in ("A", "B", "C")], now_utc())
        for sku in skus:
            assert await ledger.mark_parked(CH, sku, 1, "422 unknown variant", now_utc())


async def _statuses(database: Path) -> dict[str, str]:
    async with await Ledger.open(database) as ledger:
        return {row.sku: row.status for row in await ledger.outbox_rows(CH)}


def test_without_a_daemon_the_ledger_file_is_unparked_under_the_lock(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(directory)
    database = directory / "ledger.db"
    anyio.run(_park, database, "A", "B")
    code = main(["unpark", CH, "A", "--config", str(config), "--reason", "variant mapped"])
    assert code == 0
    assert "unparked on ankorstore: A" in capsys.readouterr().out
    assert anyio.run(_statuses, database) == {"A": "pending", "B": "parked", "C": "pending"}

    async def last_entry() -> tuple[str, str | None]:
        async with await Ledger.open(database) as ledger:
            [entry, *_] = await ledger.push_log(CH, "A")
            return entry.status, entry.reply

    status, note = anyio.run(last_entry)
    assert status == "unparked"
    # No daemon, no socket: the user is this process's real uid; --reason is only a note.
    me = pwd.getpwuid(os.getuid()).pw_name
    assert note == f"unparked by {me} (uid {os.getuid()}); note: variant mapped"

    # A SKU that is not parked is reported, and the exit status says so.
    assert main(["unpark", CH, "C", "B", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "unparked on ankorstore: B" in out
    assert "not parked on ankorstore (left alone): C" in out
    assert main(["unpark", CH, "--all", "--config", str(config)]) == 0
    assert "nothing was parked" in capsys.readouterr().out


def test_a_running_daemon_that_does_not_answer_is_never_bypassed(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(directory)
    database = directory / "ledger.db"
    anyio.run(_park, database, "A")
    with RuntimeLock(database.with_name("ledger.db.lock"), database):
        assert main(["unpark", CH, "A", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "another syncd is running" in err
    assert "did not answer" in err
    assert anyio.run(_statuses, database)["A"] == "parked"


def test_no_daemon_and_no_ledger_is_a_clear_error(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(directory)
    assert main(["unpark", CH, "A", "--config", str(config)]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert not (directory / "ledger.db").exists()


@pytest.mark.parametrize("argv", [[CH], [CH, "A", "--all"]])
def test_skus_or_all_but_not_both(
    directory: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["unpark", *argv, "--config", str(_config(directory))]) == 2
    assert "name the SKUs to unpark, or pass --all" in capsys.readouterr().err


def test_with_a_daemon_the_request_goes_over_its_socket(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(directory)
    seen: list[dict[str, Any]] = []

    async def handle(request: dict[str, Any]) -> Mapping[str, Any]:
        channel, skus, note = unpark_args(request)
        if channel != CH:
            raise StatusRequestError(f"unknown channel {channel!r} (running: ankorstore)")
        seen.append({"skus": skus, "note": note})
        return {"ok": True, "channel": channel, "unparked": ["A", "B"], "not_parked": []}

    with serving_in_thread(directory / "status.sock", handle):
        assert main(["unpark", CH, "--all", "--config", str(config), "--json"]) == 0
        assert '"unparked": [' in capsys.readouterr().out
        assert main(["unpark", "shopify", "A", "--config", str(config)]) == 2
        assert "unknown channel 'shopify'" in capsys.readouterr().err
        assert main(["unpark", CH, "A", "--reason", "mapped", "--config", str(config)]) == 0
    assert seen[0]["skus"] == "all"
    # The client names nobody: the daemon takes the user from the socket's peer credentials.
    assert seen[0]["note"] == ""
    assert seen[1]["note"] == "mapped"
    # The daemon did it: the command never opened the ledger itself.
    assert not (directory / "ledger.db").exists()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"channel": "", "skus": "all"}, 'needs a "channel"'),
        ({"channel": CH, "skus": ["A", 3]}, "non-empty list of SKU strings"),
        ({"channel": CH, "skus": ["  "]}, "non-empty list of SKU strings"),
        ({"channel": CH, "skus": "A"}, "non-empty list of SKU strings"),
        ({"channel": CH, "skus": ["A"] * 1_001}, "at most 1000 SKUs"),
        ({"channel": CH, "skus": "all", "note": "x" * 301}, "at most 300 characters"),
        ({"channel": CH, "skus": "all", "note": 5}, '"note" must be a string'),
    ],
)
def test_unpark_requests_are_checked(request_: dict[str, Any], message: str) -> None:
    with pytest.raises(StatusRequestError, match=message):
        unpark_args({"cmd": "unpark", **request_})


def test_unpark_request_names_are_deduplicated_and_sorted() -> None:
    assert unpark_args({"channel": CH, "skus": ["B", "A", "B"], "note": " fixed\n now "}) == (
        CH,
        ["A", "B"],
        "fixed now",
    )
