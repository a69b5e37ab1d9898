"""An API key sent as a bearer token: a rejected key is not hammered."""

from __future__ import annotations

import pytest

from syncd.clock import FakeClock
from syncd.http.api_key import StaticBearer
from syncd.http.errors import AuthError


@pytest.mark.anyio
async def test_static_key_rejected_fails_fast_then_probes_again_later() -> None:
    clock = FakeClock()
    bearer = StaticBearer(
        api="fashiontrade", key="ft-api-key", clock=clock, rejected_cooldown=300.0
    )
    assert await bearer.token() == "ft-api-key"
    bearer.invalidate("some-other-value")
    assert await bearer.token() == "ft-api-key"
    bearer.invalidate("ft-api-key")
    with pytest.raises(AuthError, match="rejected"):
        await bearer.token()
    clock.advance(301)
    assert await bearer.token() == "ft-api-key"
