"""Retry policy for remote raters: exponential backoff with jitter, honouring ``Retry-After``.

Replaces the reference code's fixed sleeps (5 s + 3 s per attempt, plus 5 s after every success):
a request is retried only after a failure, waiting ``base * 2**(attempt-1)`` seconds (capped, with
random jitter so concurrent workers do not retry in lockstep), or at least as long as the server
asked for with ``Retry-After`` / ``retry-after-ms``.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        max_attempts: total attempts per request (1 = no retry).
        base_delay_s: first backoff delay.
        max_delay_s: cap of the exponential backoff.
        jitter: fraction of each backoff delay that is randomised (0 = none, 1 = "full jitter").
        max_retry_after_s: longest server-requested wait that is honoured; a longer one gives up.
    """

    max_attempts: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    jitter: float = 0.5
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("retry delays must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay after failed attempt number ``attempt`` (1-based), without a server hint."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempt - 1))
        u = (rng or random).random()
        return delay * (1.0 - self.jitter * u)

    def delay(self, attempt: int, retry_after: float | None,
              rng: random.Random | None = None) -> float | None:
        """Delay before the next attempt, or ``None`` to give up (attempts used up, or the server
        asks for a longer wait than ``max_retry_after_s``)."""
        if attempt >= self.max_attempts:
            return None
        backoff = self.backoff(attempt, rng)
        if retry_after is None:
            return backoff
        if retry_after > self.max_retry_after_s:
            return None
        return max(retry_after, backoff)


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
