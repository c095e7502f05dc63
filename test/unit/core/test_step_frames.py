"""StepFrameJoin: observations released in order with their step's frame, or without it after the wait."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core.step_frames import StepFrameJoin


def _frame(v: int) -> np.ndarray:
    return np.full((2, 2, 3), v, np.uint8)


def test_an_observation_waits_for_its_frame_and_comes_out_with_it() -> None:
    j: StepFrameJoin[str] = StepFrameJoin(wait_s=1.0)
    assert j.add_observation(0, 1, "o1", now=0.0) == []
    assert len(j) == 1
    (item, frame), = j.add_frame(0, 1, _frame(1), now=0.1)
    assert item == "o1" and frame is not None and frame[0, 0, 0] == 1
    assert len(j) == 0 and j.missing == 0


def test_a_frame_that_comes_first_is_kept_for_its_observation() -> None:
    j: StepFrameJoin[str] = StepFrameJoin(wait_s=1.0)
    assert j.add_frame(3, 7, _frame(7), now=0.0) == []
    (item, frame), = j.add_observation(3, 7, "o", now=0.0)
    assert item == "o" and frame[0, 0, 0] == 7


def test_release_is_in_order_and_an_episode_start_needs_no_frame() -> None:
    j: StepFrameJoin[str] = StepFrameJoin(wait_s=1.0)
    assert [i for i, _ in j.add_observation(0, 0, "start", now=0.0, needs_frame=False)] == ["start"]
    j.add_observation(0, 1, "a", now=0.0)
    j.add_observation(0, 2, "b", now=0.0)
    assert j.add_frame(0, 2, _frame(2), now=0.0) == []  # b waits behind a
    out = j.add_frame(0, 1, _frame(1), now=0.0)
    assert [(i, int(f[0, 0, 0])) for i, f in out] == [("a", 1), ("b", 2)]


def test_a_lost_frame_releases_its_observation_without_one_after_the_wait() -> None:
    j: StepFrameJoin[str] = StepFrameJoin(wait_s=0.5)
    j.add_observation(0, 1, "a", now=0.0)
    assert j.release_due(now=0.4) == []
    assert j.release_due(now=0.5) == [("a", None)]
    assert j.missing == 1
    # Its frame arriving afterwards is counted as late and not kept.
    assert j.add_frame(0, 1, _frame(1), now=0.6) == []
    assert j.late_frames == 1
    (item, frame), = j.add_observation(0, 2, "b", now=0.7) + j.add_frame(0, 2, _frame(2), now=0.7)
    assert item == "b" and frame is not None


def test_bounds_drop_the_oldest_frames_and_push_out_waiting_observations() -> None:
    j: StepFrameJoin[int] = StepFrameJoin(wait_s=10.0, max_frames=2, max_waiting=2)
    for s in (10, 11, 12):
        j.add_frame(1, s, _frame(s), now=0.0)
    assert j.dropped_frames == 1
    assert j.add_observation(1, 10, 10, now=0.0) == []  # frame 10 was the oldest, dropped: it waits
    assert [(i, int(f[0, 0, 0])) for i, f in j.add_observation(1, 11, 11, now=0.0)] == []
    assert j.release_due(now=10.0)[0] == (10, None)
    j2: StepFrameJoin[int] = StepFrameJoin(wait_s=10.0, max_waiting=2)
    j2.add_observation(0, 1, 1, now=0.0)
    j2.add_observation(0, 2, 2, now=0.0)
    assert j2.add_observation(0, 3, 3, now=0.0) == [(1, None)]
    assert j2.missing == 1


@pytest.mark.parametrize("kw", [{"wait_s": 0}, {"wait_s": 1, "max_frames": 0}, {"wait_s": 1, "max_waiting": 0}])
def test_bad_settings_are_refused(kw) -> None:
    with pytest.raises(ValueError):
        StepFrameJoin(**kw)


def test_an_episode_start_claims_its_frame_and_a_repeat_needs_none() -> None:
    j: StepFrameJoin[str] = StepFrameJoin(wait_s=1.0, max_frames=4)
    j.add_frame(0, 0, _frame(0), now=0.0)
    assert j.add_observation(0, 0, "start", now=0.0, needs_frame=False) == [("start", None)]
    assert j.dropped_frames == 0 and j.late_frames == 0
    # The step-0 frame is not left behind to be evicted and counted as dropped later.
    for s in range(1, 9):
        j.add_observation(0, s, f"o{s}", now=0.0)
        j.add_frame(0, s, _frame(s), now=0.0)
    assert j.dropped_frames == 0 and j.missing == 0
    # A repeated observation (re-published while its bridge waits) comes out at once, not missing.
    assert j.add_observation(0, 8, "again", now=0.0) == [("again", None)]
    assert j.missing == 0
