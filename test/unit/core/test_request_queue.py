"""The rater's bounded inbox: drops the oldest when full, stale items, duplicate ids."""

from __future__ import annotations

from ros2_erl_vlm.core.rating.request_queue import RequestQueue


def _full_queue(now: list[float]) -> RequestQueue:
    """max_size 3 after five puts r0..r4 at time ``now[0]``."""
    q = RequestQueue(max_size=3, max_age_s=10.0, clock=lambda: now[0])
    for i in range(5):
        assert q.put(f"r{i}", i)
    return q


def test_a_full_queue_drops_the_oldest() -> None:
    q = _full_queue([0.0])
    assert q.dropped_full == 2
    assert len(q) == 3


def test_items_are_taken_oldest_first() -> None:
    q = _full_queue([0.0])
    assert q.take(2, timeout_s=0) == [("r2", 2), ("r3", 3)]


def test_an_id_already_waiting_is_not_queued_twice() -> None:
    q = _full_queue([0.0])
    assert not q.put("r4", 4)
    assert q.duplicates == 1


def test_stale_items_are_dropped_when_taken() -> None:
    now = [0.0]
    q = _full_queue(now)
    assert q.take(2, timeout_s=0) == [("r2", 2), ("r3", 3)]
    now[0] = 20.0  # r4 is now older than max_age_s
    q.put("r5", 5)
    assert q.take(10, timeout_s=0) == [("r5", 5)]
    assert q.dropped_stale == 1


def test_take_from_an_empty_queue_returns_nothing_after_its_timeout() -> None:
    q = RequestQueue(max_size=3, max_age_s=10.0)
    assert q.take(1, timeout_s=0.01) == []
