"""Retry policy: exponential backoff with jitter, Retry-After honoured and capped."""

from __future__ import annotations

import email.utils
import random

import pytest

from ros2_erl_vlm.raters.retry import RetryPolicy, parse_retry_after


def test_backoff_grows_exponentially_with_bounded_jitter():
    p = RetryPolicy(max_attempts=6, base_delay_s=1.0, max_delay_s=5.0, jitter=0.5)
    rng = random.Random(0)
    for attempt, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (5, 5.0)]:
        delays = [p.delay(attempt, None, rng) for _ in range(200)]
        out_of_range = [d for d in delays if not 0.5 * nominal <= d <= nominal]
        assert out_of_range == [], f"attempt {attempt}: delays outside [{0.5 * nominal}, {nominal}]"
        assert max(delays) - min(delays) > 0.2 * nominal  # really jittered


def test_no_delay_once_the_attempts_are_used_up():
    p = RetryPolicy(max_attempts=6, base_delay_s=1.0, max_delay_s=5.0, jitter=0.5)
    assert p.delay(6, None, random.Random(0)) is None


def test_no_jitter_is_deterministic():
    p = RetryPolicy(base_delay_s=0.5, jitter=0.0)
    assert [p.delay(a, None) for a in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, None]


def test_retry_after_wins_over_shorter_backoff():
    p = RetryPolicy(base_delay_s=0.1, jitter=0.0, max_retry_after_s=10)
    assert p.delay(1, 3.0) == 3.0
    assert p.delay(3, 0.01) == pytest.approx(0.4)


def test_retry_after_beyond_its_cap_gives_up():
    p = RetryPolicy(base_delay_s=0.1, jitter=0.0, max_retry_after_s=10)
    assert p.delay(1, 11.0) is None


def test_parse_retry_after_forms():
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "2"}) == 0.25
    when = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert parse_retry_after({"Retry-After": when}, now=1_000_000.0) == pytest.approx(30.0)
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("kw", [{"max_attempts": 0}, {"jitter": 1.5}, {"base_delay_s": -1}])
def test_bad_policy(kw):
    with pytest.raises(ValueError):
        RetryPolicy(**kw)
