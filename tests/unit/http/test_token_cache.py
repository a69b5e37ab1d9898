"""Tokens kept in the ledger: reused by the next process, only by the same account, never stale."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.http.auth import OAuthClientCredentials
from syncd.http.errors import AuthError
from syncd.http.token_cache import usable
from syncd.ledger.store import Ledger
from syncd.ledger.tokens import StoredToken, TokenKey

from .test_auth import SECRET, TOKEN_URL, TokenServer, oauth

pytestmark = pytest.mark.anyio


async def _provider_run(
    ledger: Ledger,
    server: TokenServer,
    clock: FakeClock,
    *,
    api: str = "ankorstore",
    client_id: str = "my-client",
    token_url: str = TOKEN_URL,
) -> str:
    """One process' worth: a fresh provider on the same ledger asks for a token."""
    provider = OAuthClientCredentials(
        api=api,
        http=server.http(),
        token_url=token_url,
        clock=clock,
        client_id=client_id,
        client_secret=SECRET,
    )
    provider.use_store(ledger)
    return await provider.token()


async def test_ten_runs_in_a_row_ask_the_endpoint_once(tmp_path: Path) -> None:
    clock = FakeClock()
    server = TokenServer(clock)
    async with await Ledger.open(tmp_path / "ledger.db") as ledger:
        tokens = []
        for _ in range(10):
            tokens.append(await _provider_run(ledger, server, clock))
            clock.advance(60.0)  # `syncd once` every minute
    assert len(server.requests) == 1
    assert set(tokens) == {"tok-1"}


async def test_a_stored_token_is_not_used_once_its_refresh_margin_is_reached(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    server = TokenServer(clock, expires_in=3600)
    async with await Ledger.open(tmp_path / "ledger.db") as ledger:
        assert await _provider_run(ledger, server, clock) == "tok-1"
        clock.advance(3600 - 300)  # 5 minutes left: inside the 10 % refresh margin
        assert await _provider_run(ledger, server, clock) == "tok-2"
        clock.advance(3600 + 1)  # tok-2 has expired: never handed out again
        assert await _provider_run(ledger, server, clock) == "tok-3"
    assert len(server.requests) == 3


async def test_a_token_is_only_reused_by_the_same_api_endpoint_and_client(tmp_path: Path) -> None:
    clock = FakeClock()
    server = TokenServer(clock)
    async with await Ledger.open(tmp_path / "ledger.db") as ledger:
        assert await _provider_run(ledger, server, clock) == "tok-1"
        assert await _provider_run(ledger, server, clock, client_id="other-client") == "tok-2"
        assert await _provider_run(ledger, server, clock, api="fabric") == "tok-3"
        assert await _provider_run(ledger, server, clock, token_url=TOKEN_URL + "/other") == "tok-4"
        assert await _provider_run(ledger, server, clock) == "tok-1"
    assert len(server.requests) == 4


async def test_a_rejected_token_is_removed_from_the_store(tmp_path: Path) -> None:
    clock = FakeClock()
    server = TokenServer(clock)
    async with await Ledger.open(tmp_path / "ledger.db") as ledger:
        provider = oauth(server, clock)
        provider.use_store(ledger)
        assert await provider.token() == "tok-1"
        provider.invalidate("tok-1")  # the API answered 401
        assert await provider.token() == "tok-2"
        # The next process finds tok-2, never the refused tok-1.
        assert await _provider_run(ledger, server, clock) == "tok-2"
    assert len(server.requests) == 2


async def test_a_rejected_token_is_not_read_back_even_when_the_refresh_fails(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    server = TokenServer(clock)
    async with await Ledger.open(tmp_path / "ledger.db") as ledger:
        provider = oauth(server, clock)
        provider.use_store(ledger)
        assert await provider.token() == "tok-1"
        provider.invalidate("tok-1")
        server.answer = lambda: httpx.Response(401, json={"error": "invalid_client"})
        with pytest.raises(AuthError):
            await provider.token()
        assert await ledger.load_token(TokenKey("ankorstore", TOKEN_URL, "my-client")) is None


async def test_tokens_and_secrets_never_reach_the_log(tmp_path: Path) -> None:
    clock = FakeClock()
    server = TokenServer(clock)
    async with await Ledger.open(tmp_path / "ledger.db") as ledger:
        with capture_logs() as logs:
            await _provider_run(ledger, server, clock)
            await _provider_run(ledger, server, clock)
    assert "http.token_reused" in [event["event"] for event in logs]
    assert "tok-1" not in repr(logs)
    assert SECRET not in repr(logs)


def test_usable_refuses_times_that_cannot_be_trusted() -> None:
    fresh = StoredToken(value="t", obtained_at=1_000.0, expires_at=4_600.0)
    fit = usable(fresh, wall_now=1_060.0, margin=360.0)
    assert fit is not None
    assert fit.remaining == 3_540.0
    # The clock was set back by an hour since the token was stored.
    assert usable(fresh, wall_now=1_000.0 - 3_600.0, margin=360.0) is None
    assert usable(fresh, wall_now=4_300.0, margin=360.0) is None  # inside the margin
    assert usable(fresh, wall_now=5_000.0, margin=360.0) is None  # expired
    broken = StoredToken(value="t", obtained_at=1_000.0, expires_at=1_000.0)
    assert usable(broken, wall_now=1_000.0, margin=0.0) is None
    assert "t'" not in repr(fresh)


async def test_the_ledger_file_holding_tokens_is_not_readable_by_others(tmp_path: Path) -> None:
    fresh = tmp_path / "new.db"
    async with await Ledger.open(fresh):
        pass
    assert stat.S_IMODE(fresh.stat().st_mode) & 0o007 == 0
    loose = tmp_path / "loose.db"
    async with await Ledger.open(loose):
        pass
    os.chmod(loose, 0o644)
    with capture_logs() as logs:
        async with await Ledger.open(loose):
            pass
    assert stat.S_IMODE(loose.stat().st_mode) == 0o640
    assert "ledger.permissions_tightened" in [event["event"] for event in logs]
