"""Retry rules: what is retried, how long the waits are, when it stops."""

from __future__ import annotations

import random

import pytest

from syncd.http.retry import NEVER_RETRIED, Outcome, RetryPolicy, classify


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.OK),
        (204, Outcome.OK),
        (401, Outcome.REAUTH),
        (429, Outcome.RATE_LIMITED),
        (408, Outcome.TRANSIENT),
        (500, Outcome.TRANSIENT),
        (502, Outcome.TRANSIENT),
        (503, Outcome.TRANSIENT),
        (504, Outcome.TRANSIENT),
        (501, Outcome.FATAL),
        (301, Outcome.FATAL),
        (409, Outcome.FATAL),
        *[(status, Outcome.FATAL) for status in sorted(NEVER_RETRIED)],
    ],
)
def test_classify(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_documented_client_errors_are_all_never_retried() -> None:
    assert {400, 403, 404, 406, 415, 422} == NEVER_RETRIED


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    rng = random.Random(7)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0), (200, 8.0)]:
        draws = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        # Jitter: the draws spread over the range instead of sitting on one value.
        assert max(draws) > 0.8 * ceiling
        assert min(draws) < 0.2 * ceiling


def test_backoff_is_reproducible_from_a_seed() -> None:
    policy = RetryPolicy()
    first = [policy.backoff(n, random.Random(42)) for n in range(1, 6)]
    again = [policy.backoff(n, random.Random(42)) for n in range(1, 6)]
    assert first == again


def test_may_retry_bounds_attempts_and_total_time() -> None:
    policy = RetryPolicy(max_attempts=3, max_elapsed=10.0)
    assert policy.may_retry(1, 0.0, 1.0)
    assert policy.may_retry(2, 8.0, 2.0)
    assert not policy.may_retry(3, 0.0, 0.0)
    assert not policy.may_retry(1, 9.5, 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -1.0},
        {"base_delay": 5.0, "max_delay": 1.0},
        {"max_elapsed": -1.0},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- one message per bound
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
