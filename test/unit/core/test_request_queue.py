"""The rater's bounded inbox: drops the oldest when full, stale items, duplicate ids."""

from __future__ import annotations

from ros2_erl_vlm.core.rating.request_queue import RequestQueue


def test_bounded_fifo_with_stale_and_duplicate_drops() -> None:
    now = [0.0]
    q = RequestQueue(max_size=3, max_age_s=10.0, clock=lambda: now[0])
    for i in range(5):
        assert q.put(f"r{i}", i)
    assert q.dropped_full == 2 and len(q) == 3
    assert not q.put("r4", 4) and q.duplicates == 1
    assert q.take(2, timeout_s=0) == [("r2", 2), ("r3", 3)]
    now[0] = 20.0
    q.put("r5", 5)
    assert q.take(10, timeout_s=0) == [("r5", 5)] and q.dropped_stale == 1
    assert q.take(1, timeout_s=0.01) == []
