"""Counters every rater keeps: ratings, abstentions by kind, retries, errors, cache hits, latency.

An abstention reason reads ``"<kind>: <detail>"`` (e.g. ``"timeout: no reply after 3 attempts"``);
``kind`` is what the counters group by. Thread-safe (the HTTP backend rates concurrently).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ros2_erl_vlm.core.rating.rater import RatingResult


def reason_kind(reason: str) -> str:
    """The kind of an abstention reason: the text before the first ``:``."""
    return reason.split(":", 1)[0].strip() or "unknown"


@dataclass
class RaterStats:
    """Running counts of one rater (see module docstring)."""

    requests: int = 0
    ratings: int = 0
    abstentions: int = 0
    retries: int = 0
    cache_hits: int = 0
    latency_s: float = 0.0
    abstain_reasons: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_result(self, result: RatingResult) -> None:
        """Count one final result."""
        with self._lock:
            self.requests += 1
            self.latency_s += result.latency_s
            if result.label is None:
                self.abstentions += 1
                self.abstain_reasons[reason_kind(result.abstain_reason)] += 1
            else:
                self.ratings += 1

    def count_error(self, kind: str, retried: bool) -> None:
        """Count one failed attempt (``retried``: another attempt follows)."""
        with self._lock:
            self.errors[kind] += 1
            if retried:
                self.retries += 1

    def count_cache_hit(self) -> None:
        """Count one answer served from a cache."""
        with self._lock:
            self.cache_hits += 1

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot."""
        with self._lock:
            return {
                "requests": self.requests, "ratings": self.ratings, "abstentions": self.abstentions,
                "retries": self.retries, "cache_hits": self.cache_hits,
                "mean_latency_s": self.latency_s / self.requests if self.requests else 0.0,
                "abstain_reasons": dict(self.abstain_reasons), "errors": dict(self.errors),
            }
