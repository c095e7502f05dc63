"""The recorder's bookkeeping without ROS: one bag per episode, when bags close, which episode a
mark belongs to, frames paired by stamp, re-published and late messages, names never reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ros2_erl_vlm.core.frames import FrameCodec
from ros2_erl_vlm.recording.mcap_episode import StepRecord, read_episode
from ros2_erl_vlm.recording.session import RecordingSession, SessionConfig

DT = 10_000_000


class FakeClock:
    """Monotonic seconds the test advances by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _session(tmp_path: Path, **cfg: float) -> tuple[RecordingSession, FakeClock, list[tuple[str, str]]]:
    clock, warnings = FakeClock(), []
    settings = {"close_delay_s": 1.0, "mark_timeout_s": 5.0, **cfg}
    s = RecordingSession(SessionConfig(tmp_path / "episodes", task="reach-v3", **settings),
                         clock=clock, warn=lambda m, k: warnings.append((k, m)))
    return s, clock, warnings


def _obs(episode: int, step: int, end: bool = False, t0: int = 0) -> StepRecord:
    return StepRecord(step, np.full(5, episode * 100 + step, np.float32),
                      np.full(2, 0.1 * step, np.float32) if step else np.zeros(0, np.float32),
                      t0 + (episode * 1000 + step) * DT, truncated=end,
                      truncation_reason="time_limit" if end else "")


def _jpeg(value: int) -> tuple[bytes, str]:
    data = FrameCodec("jpeg").encode(np.full((8, 8, 3), value, np.uint8))
    assert isinstance(data, bytes)
    return data, "jpeg"


def _run(s: RecordingSession, episode: int, n: int, end: bool = True) -> None:
    for t in range(n + 1):
        s.observation(episode, _obs(episode, t, end and t == n))
        s.image(_obs(episode, t).stamp_ns, lambda v=t: _jpeg(10 * v))


def test_episodes_marks_and_closing(tmp_path: Path) -> None:
    s, clock, _ = _session(tmp_path)
    _run(s, 0, 3)
    assert s.mark(True, "service:mark_success") == (True, "episode 0 marked success")  # after its end
    assert s.tick() == []  # close_delay_s not over: frames may still be in flight
    clock.t += 1.5
    [bag0] = s.tick()
    assert s.mark(False, "x")[0] is False  # nothing is being recorded now
    assert s.counters["marks_refused"] == 1

    s.observation(1, _obs(1, 0))
    s.mark(True, "topic:success")
    s.mark(False, "topic:success")  # the last mark wins
    _run(s, 1, 2)  # step 0 again: re-published, recorded once
    clock.t += 1.5
    [bag1] = s.tick()

    _run(s, 2, 2, end=False)  # never ends: the next episode supersedes it
    _run(s, 3, 2)
    assert s.mark(True, "m") == (True, "episode 3 marked success")  # the newest, not episode 2
    clock.t += 1.0
    bags = s.tick()
    assert [p.name for p in bags] == ["episode_000002", "episode_000003"]
    _run(s, 4, 1)  # ends, nobody marks it: closed unmarked after mark_timeout_s
    clock.t += 4.0
    assert s.tick() == []
    clock.t += 1.5
    [bag4] = s.tick()

    got = {r.episode: r for r in (read_episode(p) for p in [bag0, bag1, *bags, bag4])}
    assert {e: (r.success, r.marked, r.meta["mark_source"], r.meta["end_reason"]) for e, r in got.items()} == {
        0: (True, True, "service:mark_success", "time_limit"),
        1: (False, True, "topic:success", "time_limit"),
        2: (False, False, "", "next_episode"),
        3: (True, True, "m", "time_limit"),
        4: (False, False, "", "time_limit"),
    }
    assert [st.step for st in got[1].steps] == [0, 1, 2]
    assert s.counters["duplicate_observations"] == 1
    assert s.counters["episodes_recorded"] == 5 and s.counters["episodes_unmarked"] == 2
    for r in got.values():
        assert sorted(r.frames) == [st.step for st in r.steps]
        for step, frame in r.frames.items():
            assert abs(int(frame.rgb().mean()) - 10 * step) <= 2


def test_frames_pair_by_stamp_in_any_order_and_late_ones_are_counted(tmp_path: Path) -> None:
    s, clock, warnings = _session(tmp_path, sync_tolerance_s=0.004)
    s.image(_obs(0, 0).stamp_ns - 3_000_000, lambda: _jpeg(0))  # before its observation, 3 ms early
    s.observation(0, _obs(0, 0))
    s.observation(0, _obs(0, 1, end=True))
    s.image(_obs(0, 1).stamp_ns + 2_000_000, lambda: _jpeg(10))
    clock.t += 2.0
    assert s.tick() == []  # unmarked: it waits for a mark up to mark_timeout_s
    clock.t += 4.0
    [bag] = s.tick()
    s.image(_obs(0, 1).stamp_ns, lambda: _jpeg(10))
    s.observation(0, _obs(0, 2))  # after the bag closed
    rec = read_episode(bag)
    assert sorted(rec.frames) == [0, 1]
    assert rec.frames[0].header_stamp_ns == _obs(0, 0).stamp_ns - 3_000_000  # the camera's own stamp
    assert s.counters["stale_observations"] == 1
    assert ("stale_observations", "observation of episode 0 step 2 after its bag closed: not recorded") in warnings


def test_bad_images_are_dropped(tmp_path: Path) -> None:
    s, _, _ = _session(tmp_path)
    s.observation(0, _obs(0, 0))

    def broken() -> tuple[bytes, str]:
        raise ValueError("unsupported encoding '16UC1'")

    s.image(_obs(0, 0).stamp_ns, broken)
    assert s.counters["bad_images"] == 1 and s.counters["frames"] == 0


def test_side_channels_go_to_the_newest_episode(tmp_path: Path) -> None:
    s, _, _ = _session(tmp_path)
    s.intervention(True)  # nothing recorded yet
    assert s.counters["unrecorded_messages"] == 1
    s.observation(0, _obs(0, 0))
    s.observation(0, _obs(0, 1))
    s.intervention(True)
    s.safety_status('{"phase": "episode"}')
    s.observation(0, _obs(0, 2, end=True))
    s.safety_status('{"phase": "homing"}')  # after the end, before the next episode: still episode 0
    [bag] = s.close_all()
    rec = read_episode(bag)
    assert rec.interventions == [(1, True)]
    assert rec.safety_status == [(1, '{"phase": "episode"}'), (2, '{"phase": "homing"}')]


def test_shutdown_closes_unfinished_episodes_and_names_are_never_reused(tmp_path: Path) -> None:
    s, _, warnings = _session(tmp_path)
    _run(s, 7, 2, end=False)
    [bag] = s.close_all()
    assert read_episode(bag).meta["end_reason"] == "shutdown"
    again, _, warnings = _session(tmp_path)  # a restarted bridge numbering from the same id
    _run(again, 7, 1)
    [bag2] = again.close_all()
    assert bag2.name == "episode_000007_1"
    assert [st.step for st in read_episode(bag).steps] == [0, 1, 2]  # the first bag is untouched
    assert warnings[0][0] == "name_collisions"


def test_a_step_gap_is_recorded_and_counted(tmp_path: Path) -> None:
    s, _, warnings = _session(tmp_path)
    s.observation(0, _obs(0, 0))
    s.observation(0, _obs(0, 2))
    assert s.counters["missing_steps"] == 1
    assert "step 2 follows step 0" in warnings[-1][1]
    [bag] = s.close_all()
    assert [st.step for st in read_episode(bag).steps] == [0, 2]


def test_a_marked_episode_closes_at_once_without_a_delay(tmp_path: Path) -> None:
    s, _, _ = _session(tmp_path, close_delay_s=0.0)
    s.observation(0, _obs(0, 0))
    s.mark(True, "m")
    s.observation(0, _obs(0, 1, end=True))
    assert [p.name for p in s.tick()] == ["episode_000000"]
