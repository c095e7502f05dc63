"""The recorder's bookkeeping without ROS: one bag per episode, when bags close, which episode a
mark belongs to (and the grace after an episode's end), frames paired by stamp (and the alarm when
they never pair), re-published and late messages, a restarted bridge, names never reused, bags
that fail to close."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ros2_erl_vlm.core.frames import FrameCodec
from ros2_erl_vlm.recording.mcap_episode import StepRecord, read_episode
from ros2_erl_vlm.recording.session import (
    ARM_SYNC_TOLERANCE_S,
    UNPAIRED_ALARM_OBSERVATIONS,
    BagsNotClosedError,
    RecordingSession,
    SessionConfig,
)

DT = 10_000_000


class FakeClock:
    """Monotonic seconds the test advances by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _session(tmp_path: Path, **cfg: float) -> tuple[RecordingSession, FakeClock, list[tuple[str, str]]]:
    """A session on a fake clock; its warnings as ``(counter, message)``, its info and error lines
    as ``("info" | "error", line)``. Frames pair by equal stamps unless ``sync_tolerance_s`` is
    given (the synthetic stamps are lock-step's)."""
    clock, warnings = FakeClock(), []
    settings = {"close_delay_s": 1.0, "mark_timeout_s": 5.0, "sync_tolerance_s": 0.0, **cfg}
    s = RecordingSession(SessionConfig(tmp_path / "episodes", task="reach-v3", **settings),
                         clock=clock, warn=lambda m, k: warnings.append((k, m)),
                         info=lambda m: warnings.append(("info", m)),
                         error=lambda m: warnings.append(("error", m)))
    return s, clock, warnings


def _obs(episode: int, step: int, end: bool = False, t0: int = 0, truth: bool = False) -> StepRecord:
    return StepRecord(step, np.full(5, episode * 100 + step, np.float32),
                      np.full(2, 0.1 * step, np.float32) if step else np.zeros(0, np.float32),
                      t0 + (episode * 1000 + step) * DT, truncated=end,
                      truncation_reason="time_limit" if end else "", has_truth=truth)


def _jpeg(value: int) -> tuple[bytes, str]:
    data = FrameCodec("jpeg").encode(np.full((8, 8, 3), value, np.uint8))
    assert isinstance(data, bytes)
    return data, "jpeg"


def _run(s: RecordingSession, episode: int, n: int, end: bool = True, t0: int = 0) -> None:
    for t in range(n + 1):
        s.observation(episode, _obs(episode, t, end and t == n, t0))
        s.image(_obs(episode, t, t0=t0).stamp_ns, lambda v=t: _jpeg(10 * v))


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
    assert [p.name for p in bags] == ["episode_000003"]  # marked: closed after close_delay_s
    clock.t += 1.0
    bags += s.tick()  # superseded: kept through mark_grace_s for a late mark
    assert [p.name for p in bags] == ["episode_000003", "episode_000002"]
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
    again, _, warnings = _session(tmp_path)  # a restarted recorder on the same folder
    _run(again, 7, 1)
    [bag2] = again.close_all()
    assert bag2.name == "episode_000007_1"
    assert [st.step for st in read_episode(bag).steps] == [0, 1, 2]  # the first bag is untouched
    assert [k for k, _ in warnings if k != "info"] == ["name_collisions"]


def test_a_restarted_bridge_numbering_from_0_again_is_recorded(tmp_path: Path) -> None:
    s, clock, warnings = _session(tmp_path)
    _run(s, 0, 3)  # the first bridge: episodes 0 and 1, both closed
    _run(s, 1, 2)
    clock.t += 6.0
    assert [p.name for p in s.tick()] == ["episode_000000", "episode_000001"]
    assert s.observation(0, _obs(0, 4)) is False  # a continuation of a closed bag: dropped
    assert s.counters["stale_observations"] == 1

    later = 10**12  # the bridge restarts and numbers from 0 again (its clock runs on)
    _run(s, 0, 2, t0=later)
    _run(s, 1, 3, end=False, t0=later)
    assert s.observation(1, _obs(1, 2, t0=later)) is False  # a re-published step: recorded once
    _run(s, 1, 2, t0=2 * later)  # restarted again, in the middle of episode 1
    s.observation(1, _obs(1, 2, end=True, t0=2 * later))  # re-published by the waiting bridge
    paths = s.close_all()
    assert [p.name for p in paths] == ["episode_000000_1", "episode_000001_1", "episode_000001_2"]
    recs = {p.name: read_episode(p) for p in [*s.recorded]}
    assert {n: ([st.step for st in r.steps], r.meta["end_reason"]) for n, r in recs.items()} == {
        "episode_000000": ([0, 1, 2, 3], "time_limit"), "episode_000001": ([0, 1, 2], "time_limit"),
        "episode_000000_1": ([0, 1, 2], "time_limit"), "episode_000001_1": ([0, 1, 2, 3], "bridge_restart"),
        "episode_000001_2": ([0, 1, 2], "time_limit")}
    for name, r in recs.items():
        t0 = {"_1": later, "_2": 2 * later}.get(name[-2:], 0)
        assert [st.stamp_ns for st in r.steps] == [_obs(r.episode, t, t0=t0).stamp_ns for t in range(len(r.steps))]
        assert sorted(r.frames) == [st.step for st in r.steps]  # each frame in the bag of its stamp
    assert s.counters["restarted_episodes"] == 3 and s.counters["name_collisions"] == 3
    assert s.counters["duplicate_observations"] == 2 and s.counters["stale_observations"] == 1
    assert any("a restarted bridge" in m for k, m in warnings if k == "info")


def test_a_bag_that_fails_to_close_stays_open_and_the_others_close(tmp_path: Path) -> None:
    s, _, _ = _session(tmp_path)
    _run(s, 0, 2)
    _run(s, 1, 2)
    _run(s, 2, 1, end=False)
    shutil.rmtree(s.slot(0).writer.path)  # removed under the recorder: its metadata cannot be written
    with pytest.raises(BagsNotClosedError, match=r"1 bag\(s\) could not be closed .*2 other\(s\) "
                                                 r"closed.*episode_000000: episode 0 .*closing the bag failed"):
        s.close_all()
    assert [sl.episode for sl in s.open_slots()] == [0]  # not forgotten: still open, listed
    assert list(s.status()["not_closed"]) == [str(tmp_path / "episodes" / "episode_000000")]
    assert [p.name for p in s.recorded] == ["episode_000001", "episode_000002"]
    assert read_episode(s.recorded[1]).meta["end_reason"] == "shutdown"  # the later bags closed
    with pytest.raises(BagsNotClosedError, match="episode_000000"):  # tried again, still reported
        s.close_all()
    assert s.counters["close_failures"] == 2 and s.counters["episodes_recorded"] == 2


def test_a_failed_close_in_tick_does_not_stop_the_other_bags(tmp_path: Path) -> None:
    s, clock, _ = _session(tmp_path)
    _run(s, 0, 1)
    _run(s, 1, 1)
    s.mark(True, "m")
    shutil.rmtree(s.slot(0).writer.path)
    clock.t += 2.5
    with pytest.raises(BagsNotClosedError) as err:
        s.tick()
    assert [p.name for p in err.value.closed] == ["episode_000001"]
    assert [sl.episode for sl in s.open_slots()] == [0]
    clock.t += 1.0
    assert s.tick() == []  # a failed close is not retried every tick (close_all tries it again)


def test_a_mark_just_after_the_end_goes_to_the_ended_episode(tmp_path: Path) -> None:
    s, clock, lines = _session(tmp_path, mark_grace_s=2.0, mark_timeout_s=30.0)
    _run(s, 0, 3)
    s.observation(1, _obs(1, 0))  # auto_reset: the next episode starts the instant one ends
    clock.t += 0.8  # the operator presses on seeing the end
    ok, message = s.mark(True, "service:mark_success")
    assert ok and message.startswith("episode 0 marked success (ended 0.8 s ago, within mark_grace_s 2 s; "
                                     "episode 1 runs")
    assert any(k == "info" and m.startswith("episode 0 marked success (service:mark_success) (ended 0.8 s")
               for k, m in lines)
    clock.t += 1.0
    assert s.tick() == []  # kept open through the grace: a second press still lands
    assert s.mark(False, "topic:success")[1].startswith("episode 0 marked failure")  # the last one wins
    clock.t += 0.5  # 2.3 s after the end: marks are the running episode's again
    assert s.mark(True, "topic:success") == (True, "episode 1 marked success")
    [bag0] = s.tick()
    s.observation(1, _obs(1, 1, end=True))
    [bag1] = s.close_all()
    assert [(r.episode, r.success, r.marked, r.meta["mark_source"]) for r in map(read_episode, (bag0, bag1))] == [
        (0, False, True, "topic:success"), (1, True, True, "topic:success")]
    assert s.counters["marks_after_end"] == 2 and s.counters["marks"] == 3

    s2, clock2, _ = _session(tmp_path / "no_grace", mark_grace_s=0.0)
    _run(s2, 0, 1)
    s2.observation(1, _obs(1, 0))
    clock2.t += 0.5
    assert s2.mark(True, "m") == (True, "episode 1 marked success")  # without the grace: the new one


def test_images_that_never_pair_raise_an_error(tmp_path: Path) -> None:
    s, _, lines = _session(tmp_path, sync_tolerance_s=0.0)
    n = 2 * UNPAIRED_ALARM_OBSERVATIONS + 10
    for t in range(n):  # a real camera: its stamps are 3 ms off the observations'
        s.image(_obs(0, t).stamp_ns + 3_000_000, lambda: _jpeg(0))
        s.observation(0, _obs(0, t))
    errors = [m for k, m in lines if k == "error"]
    assert len(errors) == 2 == s.counters["frame_sync_alarms"]
    assert errors[0].startswith(f"{UNPAIRED_ALARM_OBSERVATIONS} observations in a row got no camera frame "
                                f"while {UNPAIRED_ALARM_OBSERVATIONS} images arrived")
    assert "set sync_tolerance_s" in errors[0]
    status = s.status()
    assert (status["observations_without_frame"], status["images_since_last_frame"]) == (n, n)
    s.observation(0, _obs(0, n))
    s.image(_obs(0, n).stamp_ns, lambda: _jpeg(0))  # a frame pairs: the count starts again
    assert s.status()["observations_without_frame"] == 0 and s.counters["frames"] == 1

    quiet, _, quiet_lines = _session(tmp_path / "no_camera", sync_tolerance_s=0.0)
    for t in range(n):  # no images at all (camera off): nothing to pair, no alarm
        quiet.observation(0, _obs(0, t))
    assert quiet.counters["frame_sync_alarms"] == 0 and not [k for k, _ in quiet_lines if k == "error"]


@pytest.mark.parametrize("truth", [True, False], ids=["sim", "arm"])
def test_the_auto_tolerance_is_exact_in_sim_and_nearest_on_an_arm(tmp_path: Path, truth: bool) -> None:
    s, _, lines = _session(tmp_path, sync_tolerance_s=-1.0)
    assert s.sync_tolerance_s is None  # decided by the first observation
    for t in range(3):  # 10 Hz observations, each image stamped 20 ms before its observation
        stamp = 10**9 + t * 100_000_000
        s.image(stamp - 20_000_000, lambda v=t: _jpeg(10 * v))
        s.observation(0, StepRecord(t, np.zeros(5, np.float32), np.zeros(2 if t else 0, np.float32), stamp,
                                    has_truth=truth))
    assert s.sync_tolerance_s == (0.0 if truth else ARM_SYNC_TOLERANCE_S)
    assert s.counters["frames"] == (0 if truth else 3)
    [bag] = s.close_all()
    frames = read_episode(bag).frames
    assert [abs(int(frames[t].rgb().mean()) - 10 * t) <= 2 for t in sorted(frames)] == [True] * len(frames)
    assert any(m.startswith("sync_tolerance_s auto: ") for k, m in lines if k == "info")


def test_bad_settings_name_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parameter 'sync_tolerance_s'"):
        RecordingSession(SessionConfig(tmp_path, sync_tolerance_s=-0.5))
    with pytest.raises(ValueError, match="parameter 'mark_grace_s'"):
        RecordingSession(SessionConfig(tmp_path, mark_grace_s=-1.0))


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
