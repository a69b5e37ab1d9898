"""Shared pieces of the bad-input corpus: hostile bodies, a scripted transport, ledger views.

Every payload case serves its bad answer through ``httpx.MockTransport`` to
the real source or channel class, recording into a real SQLite ledger, and
compares what the ledger holds before and after with :class:`LedgerView`.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from syncd.http.retry import RetryPolicy
from syncd.ledger.store import Ledger
from syncd.model import Account, StockStatus

Json = dict[str, Any]
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]
NO_RETRY = RetryPolicy(max_attempts=1, max_rate_limited=1)
"""Bad answers are judged once: a retry would only ask the script for its next answer."""

TENS_OF_MB = 40 * 1024 * 1024
"""Above the default 32 MiB body limit of the paged APIs (syncd.http.client)."""


# --- hostile bodies --------------------------------------------------------------------


def raw_json(text: str, status: int = 200) -> httpx.Response:
    """A body served verbatim as JSON (NaN tokens, truncation: what json= cannot build)."""
    return httpx.Response(
        status, content=text.encode(), headers={"content-type": "application/json"}
    )


def html_page(status: int = 200) -> httpx.Response:
    """A proxy's or CDN's error page, served with the status it came with."""
    body = (
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
        "<body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>"
    )
    return httpx.Response(status, content=body.encode(), headers={"content-type": "text/html"})


def truncated(document: Any) -> httpx.Response:
    text = json.dumps(document)
    return raw_json(text[: len(text) // 2])


def enormous(size: int = TENS_OF_MB) -> httpx.Response:
    """A body of ``size`` bytes: a JSON array of filler that is never closed."""
    chunk = b'"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",' * 1024
    body = b"[" + chunk * (size // len(chunk) + 1)
    return httpx.Response(200, content=body, headers={"content-type": "application/json"})


class EndlessStream(httpx.AsyncByteStream):
    """A body that never ends; ``served`` counts the bytes handed out."""

    def __init__(self, chunk_size: int = 64 * 1024) -> None:
        self.chunk = b" " * chunk_size
        self.served = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.served += len(self.chunk)
            yield self.chunk


def whole_body_failures(good: Json) -> dict[str, Callable[[], httpx.Response]]:
    """Answers no page of any API can be read from, named for test ids.

    ``good`` is a valid page of the API under test, so truncating it and
    replacing its numbers with NaN hit that API's real shape.
    """
    return {
        "not_json": lambda: httpx.Response(200, content=b"Service temporarily unavailable"),
        "html_with_200": lambda: html_page(200),
        "truncated_json": lambda: truncated(good),
        "empty_body": lambda: httpx.Response(200, content=b""),
        "json_null": lambda: raw_json("null"),
        "json_array": lambda: raw_json("[1, 2, 3]"),
        "json_string": lambda: raw_json('"ok"'),
        "nan_document": lambda: raw_json('{"data": NaN, "result": Infinity, "results": NaN}'),
        "binary_garbage": lambda: httpx.Response(
            200, content=bytes(range(256)) * 64, headers={"content-type": "application/json"}
        ),
        "enormous": enormous,
    }


# --- a scripted transport --------------------------------------------------------------


@dataclass
class Script:
    """Queued answers per path (served first, in order), else the fake API's own answer."""

    fallback: Callable[[httpx.Request], httpx.Response]
    queued: dict[str, deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    always: dict[str, Answer] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def queue(self, path: str, *answers: Answer) -> None:
        self.queued[path].extend(answers)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.queued.get(path):
            return _answer(self.queued[path].popleft(), request)
        if path in self.always:
            return _answer(self.always[path], request)
        return self.fallback(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.url.path == path)


def _answer(answer: Answer, request: httpx.Request) -> httpx.Response:
    return answer(request) if callable(answer) else answer


def token(_: httpx.Request | None = None) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}
    )


# --- the ledger, before and after --------------------------------------------------------


@dataclass(frozen=True)
class LedgerView:
    """Everything a bad answer must not change when nothing valid arrived."""

    balances: dict[Account, int]
    reservations: list[tuple[str, str, str, int, str]]
    last_txn: int
    cursors: dict[str, str | None]


async def view(ledger: Ledger, feeds: Iterable[str] = ()) -> LedgerView:
    reservations = sorted(
        (r.channel, r.order_ref, r.sku, r.quantity, r.location)
        for r in await ledger.open_reservations()
    )
    return LedgerView(
        balances=await ledger.balances(),
        reservations=reservations,
        last_txn=await ledger.last_txn_id(),
        cursors={feed: await ledger.cursor(feed) for feed in feeds},
    )


async def assert_sound(ledger: Ledger) -> None:
    """The invariants hold and no stock or reservation is negative."""
    assert await ledger.check_invariants() == []
    negative = {
        account: quantity
        for account, quantity in (await ledger.balances()).items()
        if account.status is not StockStatus.VOID and quantity < 0
    }
    assert negative == {}
    assert all(r.quantity > 0 for r in await ledger.open_reservations())


async def feed_error(ledger: Ledger, feed: str) -> str | None:
    for state in await ledger.feed_states():
        if state.feed == feed:
            return state.last_error
    return None


def available(balances: dict[Account, int], location: str) -> dict[str, int]:
    return {
        a.sku: q
        for a, q in balances.items()
        if a.location == location and a.status is StockStatus.AVAILABLE
    }


@asynccontextmanager
async def open_ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with await Ledger.open(tmp_path / "ledger.db") as ledger:
        yield ledger
        await assert_sound(ledger)


def skipped_events(logs: Sequence[Mapping[str, Any]], source: str) -> list[tuple[str, str]]:
    """(item, reason) of every ``source.item_skipped`` event of ``source``."""
    return [
        (str(e["item"]), str(e["reason"]))
        for e in logs
        if e.get("event") == "source.item_skipped" and e.get("source") == source
    ]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
