"""Shared pytest configuration: anyio's plugin, pinned to asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
