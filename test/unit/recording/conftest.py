"""Fixtures for the recording tests: a synthetic episode written through the episode writer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ros2_erl_vlm.recording.mcap_episode import EpisodeWriter, StepRecord, episode_dir_name

DT_NS = 12_500_000


@dataclass
class WrittenEpisode:
    """What :func:`write_episode` wrote, to compare with what is read back."""

    path: Path
    episode: int
    steps: list[StepRecord]
    frames: dict[int, bytes] = field(default_factory=dict)
    rgb: dict[int, np.ndarray] = field(default_factory=dict)


def _write(folder: Path, episode: int = 3, n_steps: int = 6, *, obs_dim: int = 39, action_dim: int = 4,
           success: bool | None = True, frames: bool = True, seed: int = 0, task: str = "reach-v3",
           size: int = 24, nan_at: int | None = None, name: str | None = None,
           action_scale: float = 1.0, sim_state_dim: int = 30, types: object = None) -> WrittenEpisode:
    """An episode of ``n_steps`` steps (``n_steps + 1`` observations), random states/actions and
    simulator states; ``types``: the writer's typestore (default: the package's msg/)."""
    from ros2_erl_vlm.core.frames import FrameCodec

    rng = np.random.default_rng(seed)
    path = folder / (name or episode_dir_name(episode))
    w = EpisodeWriter(path, episode, task=task, layout="stock", source="test", types=types)
    out = WrittenEpisode(path, episode, [])
    codec = FrameCodec("jpeg", 90)
    for t in range(n_steps + 1):
        state = rng.normal(size=obs_dim).astype(np.float32)
        if nan_at == t:
            state[2] = np.nan
        action = (rng.uniform(-1, 1, action_dim) * action_scale).astype(np.float32) if t else np.zeros(0, np.float32)
        rec = StepRecord(t, state, action, 1_000_000_000 + t * DT_NS, truncated=t == n_steps,
                         truncation_reason="time_limit" if t == n_steps else "", has_truth=True,
                         true_reward=float(rng.uniform(0, 10)), progress=float(rng.uniform()),
                         success=bool(t == n_steps), sim_state=rng.normal(size=sim_state_dim))
        w.write_step(rec)
        out.steps.append(rec)
        if frames:
            rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            data = codec.encode(rgb)
            assert isinstance(data, bytes)
            w.write_frame(t, data, "jpeg", header_stamp_ns=rec.stamp_ns + 1000, frame_id="cam")
            out.frames[t], out.rgb[t] = data, rgb
        w.write_intervention(t, t % 3 == 0)
    w.write_safety_status(2, '{"phase": "episode", "step": 2}')
    w.close(success, mark_source="test" if success is not None else "", end_reason="time_limit")
    return out


@pytest.fixture
def write_episode() -> Callable[..., WrittenEpisode]:
    """``write_episode(folder, episode=3, n_steps=6, ...)`` -> :class:`WrittenEpisode`."""
    return _write
