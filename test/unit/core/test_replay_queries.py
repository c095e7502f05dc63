"""Replay relabelling, episode store and query selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.episode_store import EpisodeRecorder, EpisodeStore
from ros2_erl_vlm.core.rating.rater import SimTruth
from ros2_erl_vlm.core.reward.segment_selection import sample_disagreement, sample_uniform
from ros2_erl_vlm.core.rl.replay_buffer import ReplayBuffer


def test_relabel_rewrites_every_reward() -> None:
    rb = ReplayBuffer(2, 1, capacity=10)
    for i in range(7):
        rb.add(np.zeros(2), np.zeros(1), 0.0, np.array([i, 2 * i], np.float32), False)
    n = rb.relabel(lambda x: x[:, 0] + x[:, 1], batch=3)
    assert n == 7
    assert torch.allclose(rb.reward[:7], torch.arange(7).float() * 3)


def test_relabel_is_all_or_nothing() -> None:
    rb = ReplayBuffer(2, 1, capacity=10)
    for i in range(7):
        rb.add(np.zeros(2), np.zeros(1), float(i), np.array([i, 2 * i], np.float32), False)

    def nan_in_second_batch(x: torch.Tensor) -> torch.Tensor:
        r = x[:, 0].clone()
        r[r >= 3] = float("nan")
        return r

    with pytest.raises(ValueError, match="NaN"):
        rb.relabel(nan_in_second_batch, batch=3)
    assert torch.equal(rb.reward[:7], torch.arange(7).float())  # untouched


def _five_into_three() -> ReplayBuffer:
    rb = ReplayBuffer(1, 1, capacity=3)
    for i in range(5):
        rb.add(np.array([i]), np.zeros(1), float(i), np.array([i]), terminated=(i == 4))
    return rb


def test_circular_overwrite_keeps_the_newest() -> None:
    rb = _five_into_three()
    assert len(rb) == 3
    assert sorted(rb.reward.tolist()) == [2.0, 3.0, 4.0]


def test_a_terminated_transition_has_not_done_zero() -> None:
    rb = _five_into_three()
    assert rb.not_done[(rb.pos - 1) % 3] == 0.0


def test_replay_rejects_nan() -> None:
    rb = ReplayBuffer(2, 1, capacity=4, seed=3)
    with pytest.raises(ValueError, match="NaN"):
        rb.add(np.array([np.nan, 0]), np.zeros(1), 0.0, np.zeros(2), False)
    assert len(rb) == 0


def test_replay_state_roundtrips() -> None:
    rb = ReplayBuffer(2, 1, capacity=4, seed=3)
    rb.add(np.ones(2), np.ones(1), 1.0, np.ones(2), False)
    other = ReplayBuffer(2, 1, capacity=4)
    other.load_state_dict(rb.state_dict())
    assert len(other) == 1
    assert other.reward[0] == 1.0
    assert torch.equal(other.sample(5)[0], rb.sample(5)[0])


def _store(n_eps: int = 3, length: int = 5) -> EpisodeStore:
    store = EpisodeStore(max_episodes=2)
    for e in range(n_eps):
        rec = EpisodeRecorder(e)
        for t in range(length):
            rec.add(np.array([e, t], np.float32), np.zeros(1), SimTruth(0.0, t == length - 1, t / length))
        store.add(rec.finish())
    return store


def test_episode_store_fifo() -> None:
    store = _store()
    assert len(store) == 2
    assert [ep.episode_id for ep in store.episodes] == [1, 2]
    assert store.find(0) is None
    assert store.find(2) is not None
    assert store[0].success is True


def test_uniform_sampling_covers_steps() -> None:
    rng = np.random.default_rng(0)
    segs = sample_uniform(_store(), 200, rng, segment_length=2)
    assert {s.episode_id for s in segs} == {1, 2}
    assert {s.start for s in segs} == {0, 1, 2, 3}


def test_uniform_sampling_without_episodes_is_an_error() -> None:
    with pytest.raises(ValueError, match="no complete episodes"):
        sample_uniform(EpisodeStore(), 1, np.random.default_rng(0))


def test_disagreement_prefers_uncertain_states() -> None:
    rng = np.random.default_rng(0)

    def members(x: np.ndarray) -> np.ndarray:  # members disagree only at late steps
        t = x[:, 1]
        return np.stack([t * 0, t * 1.0, -t])

    segs = sample_disagreement(_store(), 5, rng, members, pool_factor=10)
    assert [s.start for s in segs if not s.start >= 3] == []


def _smooth_frames() -> list[np.ndarray]:
    yy, xx = np.mgrid[0:32, 0:32]
    return [np.stack([(xx * 8 + t) % 256, yy * 8, np.full_like(xx, 40 * t)], -1).astype(np.uint8)
            for t in range(5)]


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_recorder_keeps_frames_compressed_and_indexes_like_an_array(fmt: str) -> None:
    from ros2_erl_vlm.core.episode_store import EncodedFrames
    from ros2_erl_vlm.core.frames import FrameCodec

    frames = _smooth_frames()
    rec = EpisodeRecorder(3, FrameCodec(fmt, 95))
    for t, f in enumerate(frames):
        rec.add(np.full(2, t, np.float32), np.zeros(1, np.float32), None, f)
    ep = rec.finish()
    assert isinstance(ep.frames, EncodedFrames)
    assert len(ep.frames) == 5
    assert ep.frames.nbytes < 5 * frames[0].nbytes  # smooth frames compress
    seg = ep.frames[1:3]
    assert seg.shape == (2, 32, 32, 3)
    assert seg.dtype == np.uint8
    tol = 0 if fmt == "png" else 12  # jpeg is lossy
    assert np.abs(seg.astype(int) - np.stack(frames[1:3]).astype(int)).max() <= tol
    assert np.abs(ep.frames[4].astype(int) - frames[4].astype(int)).max() <= tol


def test_recorder_without_a_codec_keeps_one_raw_array() -> None:
    raw = EpisodeRecorder(4)
    raw.add(np.zeros(2, np.float32), np.zeros(1, np.float32), None, _smooth_frames()[0])
    assert isinstance(raw.finish().frames, np.ndarray)
