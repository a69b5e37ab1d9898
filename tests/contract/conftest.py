"""Fixtures of the contract suite: the shared sandbox servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.contract._switchboard import Switchboards


@pytest.fixture(scope="session")
def boards() -> Iterator[Switchboards]:
    with ExitStack() as stack:
        yield Switchboards(stack)
