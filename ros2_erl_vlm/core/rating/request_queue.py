"""A bounded, thread-safe work queue of rating requests (the ``vlm_rater`` node's inbox).

A slow rater never piles up stale work: the queue holds at most ``max_size`` requests (the oldest
is dropped when a new one arrives), requests older than ``max_age_s`` are dropped when taken, and
a request id already waiting is not queued twice. Dropped requests are not lost for good: the
reward learner re-sends what stays unanswered.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class RequestQueue:
    """FIFO of ``(request_id, item)`` with the limits of the module docstring."""

    def __init__(self, max_size: int = 100, max_age_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_size <= 0 or max_age_s <= 0:
            raise ValueError("max_size and max_age_s must be positive")
        self.max_size, self.max_age_s, self.clock = int(max_size), float(max_age_s), clock
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped_full = 0
        self.dropped_stale = 0
        self.duplicates = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, request_id: str, item: Any) -> bool:
        """Queue an item; False if that id is already waiting."""
        with self._cond:
            if request_id in self._items:
                self.duplicates += 1
                return False
            self._items[request_id] = (self.clock(), item)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
                self.dropped_full += 1
            self._cond.notify()
            return True

    def take(self, max_items: int, timeout_s: float | None = None) -> list[tuple[str, Any]]:
        """Up to ``max_items`` fresh items, oldest first; waits up to ``timeout_s`` for one."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            now = self.clock()
            out: list[tuple[str, Any]] = []
            while self._items and len(out) < max_items:
                rid, (t, item) = self._items.popitem(last=False)
                if now - t > self.max_age_s:
                    self.dropped_stale += 1
                    continue
                out.append((rid, item))
            return out

    def close(self) -> None:
        """Wake any waiting :meth:`take`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
