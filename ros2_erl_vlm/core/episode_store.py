"""The recent-episode store the reward learner samples queries from (paper: last 100 episodes).

An episode is recorded step by step; only complete episodes enter the store (FIFO). For every
step it keeps the reward-model input (observation after the step and, optionally, the frame,
raw or compressed), the action and, in simulation, the truth the oracle rater needs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ros2_erl_vlm.core.frames import FrameCodec
from ros2_erl_vlm.core.rating.rater import SimTruth


class EncodedFrames:
    """An episode's frames stored compressed (``FrameCodec``), indexed like the ``(T, H, W, 3)``
    array they stand for: ``frames[i]`` is one frame, ``frames[a:b]`` a stacked array."""

    def __init__(self, codec: FrameCodec, encoded: list[bytes | np.ndarray]) -> None:
        self.codec = codec
        self.encoded = list(encoded)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            return np.stack([self.codec.decode(e) for e in self.encoded[index]])
        return self.codec.decode(self.encoded[index])

    @property
    def nbytes(self) -> int:
        """Stored size."""
        return sum(self.codec.nbytes(e) for e in self.encoded)

    def to_state(self) -> dict[str, Any]:
        """Plain values for a checkpoint (:meth:`from_state` restores them)."""
        return {"fmt": self.codec.fmt, "quality": self.codec.quality, "encoded": list(self.encoded)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EncodedFrames:
        """Inverse of :meth:`to_state`."""
        return cls(FrameCodec(state["fmt"], int(state["quality"])), list(state["encoded"]))


def _stack_sim_states(truth: tuple[SimTruth, ...]) -> np.ndarray | None:
    """The steps' simulator states as one ``(T, k)`` float64 array, or None unless every step has
    one of the same size (a simulator that gives none, or a state size that changed)."""
    states = [t.sim_state for t in truth]
    if not states or any(st is None for st in states):
        return None
    arrays = [np.asarray(st, np.float64).reshape(-1) for st in states]
    if len({a.shape for a in arrays}) != 1:
        return None
    return np.stack(arrays)


@dataclass
class Episode:
    """One complete episode. Arrays are indexed by step (0 = the first step taken)."""

    episode_id: int
    next_obs: np.ndarray  # (T, obs_dim) float32: observation after each step
    actions: np.ndarray  # (T, action_dim) float32
    truth: tuple[SimTruth, ...] | None = None
    frames: np.ndarray | EncodedFrames | None = None  # (T, H, W, 3) uint8: frame after each step

    def __len__(self) -> int:
        return len(self.next_obs)

    @property
    def success(self) -> bool | None:
        """Whether the task succeeded at any step (None without truth)."""
        return None if self.truth is None else any(t.success for t in self.truth)

    def to_state(self) -> dict[str, Any]:
        """Plain values (arrays, numbers, lists) for a checkpoint; :meth:`from_state` restores it."""
        frames: Any = self.frames
        if isinstance(frames, EncodedFrames):
            frames = {"encoded": frames.to_state()}
        truth = None if self.truth is None else {
            "reward": np.array([t.reward for t in self.truth], dtype=np.float64),
            "success": np.array([t.success for t in self.truth], dtype=np.bool_),
            "progress": np.array([np.nan if t.progress is None else t.progress for t in self.truth],
                                 dtype=np.float64),
            "sim_state": _stack_sim_states(self.truth)}
        return {"episode_id": int(self.episode_id), "next_obs": self.next_obs, "actions": self.actions,
                "truth": truth, "frames": frames}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Episode:
        """Inverse of :meth:`to_state`."""
        truth = None
        if state["truth"] is not None:
            tr = state["truth"]
            states = tr.get("sim_state")  # absent in checkpoints written before it was kept
            states = [None] * len(tr["reward"]) if states is None else list(np.asarray(states, np.float64))
            truth = tuple(SimTruth(float(r), bool(s), None if np.isnan(p) else float(p), st)
                          for r, s, p, st in zip(tr["reward"], tr["success"], tr["progress"], states,
                                                 strict=True))
        frames = state["frames"]
        if isinstance(frames, dict):
            frames = EncodedFrames.from_state(frames["encoded"])
        return cls(int(state["episode_id"]), state["next_obs"], state["actions"], truth, frames)


@dataclass
class EpisodeRecorder:
    """Accumulates one episode's steps; :meth:`finish` turns it into an :class:`Episode`.

    With a ``codec`` the frames are kept compressed (:class:`EncodedFrames`), else as one array.
    """

    episode_id: int
    codec: FrameCodec | None = None
    next_obs: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    truth: list[SimTruth] = field(default_factory=list)
    frames: list[bytes | np.ndarray] = field(default_factory=list)

    def add(self, next_obs: np.ndarray, action: np.ndarray, truth: SimTruth | None = None,
            frame: np.ndarray | None = None) -> None:
        """Record one step."""
        self.next_obs.append(np.asarray(next_obs, dtype=np.float32))
        self.actions.append(np.asarray(action, dtype=np.float32))
        if truth is not None:
            self.truth.append(truth)
        if frame is not None:
            frame = np.asarray(frame, dtype=np.uint8)
            self.frames.append(self.codec.encode(frame) if self.codec is not None else frame)

    def __len__(self) -> int:
        return len(self.next_obs)

    def finish(self) -> Episode:
        """The recorded episode (truth/frames kept only if recorded for every step)."""
        if not self.next_obs:
            raise ValueError(f"episode {self.episode_id} has no steps")
        n = len(self.next_obs)
        truth = tuple(self.truth) if len(self.truth) == n else None
        frames: np.ndarray | EncodedFrames | None = None
        if len(self.frames) == n:
            frames = np.stack(self.frames) if self.codec is None else EncodedFrames(self.codec, self.frames)
        return Episode(self.episode_id, np.stack(self.next_obs), np.stack(self.actions), truth, frames)


class EpisodeStore:
    """FIFO of the most recent complete episodes."""

    def __init__(self, max_episodes: int = 100) -> None:
        if max_episodes <= 0:
            raise ValueError(f"max_episodes must be positive, got {max_episodes}")
        self.max_episodes = max_episodes
        self._episodes: deque[Episode] = deque(maxlen=max_episodes)

    def add(self, episode: Episode) -> None:
        """Append a complete episode (drops the oldest when full)."""
        self._episodes.append(episode)

    def __len__(self) -> int:
        return len(self._episodes)

    def __getitem__(self, i: int) -> Episode:
        return self._episodes[i]

    def find(self, episode_id: int) -> Episode | None:
        """The stored episode with this id, or None (evicted or never seen)."""
        for ep in self._episodes:
            if ep.episode_id == episode_id:
                return ep
        return None

    @property
    def episodes(self) -> list[Episode]:
        """Stored episodes, oldest first."""
        return list(self._episodes)
