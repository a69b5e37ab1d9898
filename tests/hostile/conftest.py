"""Fixtures every hostile test shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon._support import short_dir


@pytest.fixture
def directory() -> Iterator[Path]:
    """A short private directory under /tmp (Unix socket paths stop at 107 bytes)."""
    with short_dir() as path:
        yield path
