"""Choosing which segments to ask the rater about.

* ``uniform`` (the paper): episodes drawn uniformly from the recent-episode store (distinct ones
  once it holds enough, as the reference code), and a uniformly random segment start in each.
* ``disagreement`` (ours): a uniform candidate pool ``pool_factor`` times larger is scored by the
  reward ensemble's disagreement (std over members of the segment return) and the most
  uncertain segments are asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ros2_erl_vlm.core.episode_store import EpisodeStore

STRATEGIES = ("uniform", "disagreement")


@dataclass(frozen=True)
class Segment:
    """A segment to rate: ``length`` steps of stored episode ``index`` starting at ``start``."""

    index: int
    episode_id: int
    start: int
    length: int

    @property
    def steps(self) -> tuple[int, ...]:
        """Step indices of the segment."""
        return tuple(range(self.start, self.start + self.length))


def sample_uniform(store: EpisodeStore, n: int, rng: np.random.Generator,
                   segment_length: int = 1) -> list[Segment]:
    """``n`` segments: uniform episodes (distinct while the store holds at least ``n``, with
    replacement otherwise, as the reference), a uniform start within each."""
    if len(store) == 0:
        raise ValueError("no complete episodes to query from yet")
    if segment_length <= 0:
        raise ValueError(f"segment_length must be positive, got {segment_length}")
    out = []
    for i in rng.choice(len(store), size=n, replace=len(store) < n):
        ep = store[int(i)]
        if len(ep) < segment_length:
            raise ValueError(f"episode {ep.episode_id} is shorter than the segment length")
        start = int(rng.integers(0, len(ep) - segment_length + 1))
        out.append(Segment(int(i), ep.episode_id, start, segment_length))
    return out


def sample_disagreement(store: EpisodeStore, n: int, rng: np.random.Generator,
                        member_rewards: Callable[[np.ndarray], np.ndarray],
                        segment_length: int = 1, pool_factor: int = 10,
                        use_frames: bool = False) -> list[Segment]:
    """The ``n`` segments of a uniform pool with the largest ensemble disagreement.

    ``member_rewards(inputs)`` maps per-step inputs ``(B, ...)`` to per-member rewards ``(E, B)``.
    """
    if pool_factor < 1:
        raise ValueError(f"pool_factor must be >= 1, got {pool_factor}")
    pool = sample_uniform(store, n * pool_factor, rng, segment_length)
    inputs = []
    for seg in pool:
        ep = store[seg.index]
        src = ep.frames if use_frames else ep.next_obs
        if src is None:
            raise ValueError("disagreement sampling on frames needs episodes with frames")
        inputs.append(src[seg.start : seg.start + seg.length])
    flat = np.concatenate(inputs)
    r = np.asarray(member_rewards(flat))  # (E, B * L)
    returns = r.reshape(r.shape[0], len(pool), segment_length).sum(-1)
    score = returns.std(axis=0)
    order = np.argsort(-score, kind="stable")[:n]
    return [pool[int(i)] for i in order]


class MemberRewards(Protocol):
    """A reward ensemble as segment selection sees it."""

    @property
    def num_ratings_seen(self) -> int:
        """Ratings the ensemble was trained on (0: untrained)."""
        ...

    def member_rewards(self, inputs: np.ndarray) -> Any:
        """Per-member rewards ``(E, B)`` of per-step inputs ``(B, ...)`` (a tensor or array)."""
        ...


def _host(rewards: Any) -> np.ndarray:
    """``rewards`` as a numpy array (a tensor on a GPU is copied to the host first)."""
    return np.asarray(rewards.cpu() if hasattr(rewards, "cpu") else rewards)


def select_segments(strategy: str, store: EpisodeStore, n: int, rng: np.random.Generator,
                    model: MemberRewards, segment_length: int = 1, *,
                    use_frames: bool = False) -> list[Segment]:
    """The segments of one query round under ``strategy`` (one of :data:`STRATEGIES`);
    ``disagreement`` falls back to ``uniform`` while the ensemble is untrained."""
    if strategy not in STRATEGIES:
        raise ValueError(f"query strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "uniform" or model.num_ratings_seen == 0:
        return sample_uniform(store, n, rng, segment_length)
    return sample_disagreement(store, n, rng, lambda x: _host(model.member_rewards(x)),
                               segment_length, use_frames=use_frames)
