"""Shared pytest configuration: anyio's plugin pinned to asyncio, Hypothesis's settings,
and the spec conformance check of every integration test's simulator traffic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from syncd.sandbox.traffic import TrafficLog

# Property tests run the same examples every time and judge no example by how long it
# took: Hypothesis's "ci" profile (derandomize, no deadline, no too_slow health check).
# Random exploration is one variable away: SYNCD_HYPOTHESIS_PROFILE=default.
settings.load_profile(os.environ.get("SYNCD_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- spec conformance of every integration test's simulator traffic -----------------------
#
# Every SandboxWorld an integration test starts records what its simulators were
# asked and answered (syncd.sandbox.traffic); after the test, the Ankorstore/ASTRAL
# (and fabric) exchanges are validated against ../shared/specs
# (tests/conformance/traffic_check.py). A test whose traffic breaks the spec errors
# at teardown with the list of violations. Without the specs nothing is checked.
# A request broken on purpose carries an ``X-Test-Invalid`` header (only the answer
# is checked); a world given its own ``traffic`` log is left to its test.


@pytest.fixture(scope="session")
def _sandbox_traffic(request: pytest.FixtureRequest) -> Iterator[TrafficLog | None]:
    """The log every SandboxWorld records into, when the session runs integration tests.

    Session-scoped so that worlds built by module-scoped fixtures (a daemon
    serving several tests) are recorded from their first request.
    """
    items = request.session.items
    if not any(item.get_closest_marker("integration") for item in items):
        yield None
        return
    from syncd.sandbox.traffic import TrafficLog
    from syncd.sandbox.world import SandboxWorld

    log = TrafficLog()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SandboxWorld, "default_traffic", log)
        yield log


@pytest.fixture(autouse=True)
def _spec_conformance(
    request: pytest.FixtureRequest, _sandbox_traffic: TrafficLog | None
) -> Iterator[None]:
    log = _sandbox_traffic
    if log is None:
        yield
        return
    # Traffic between tests (a module fixture starting or stopping a world) is
    # checked with the next test rather than lost.
    earlier = log.drain()
    yield
    exchanges = earlier + log.drain()
    if request.node.get_closest_marker("integration") is None or not exchanges:
        return
    from tests.conformance.traffic_check import check, specs_present

    if not specs_present():
        return
    report = check(exchanges)
    if report.violations:
        pytest.fail(
            f"{len(report.violations)} exchange(s) with the simulators break the published "
            f"API specs (tests/conformance/traffic_check.py):\n{report.describe()}",
            pytrace=False,
        )
