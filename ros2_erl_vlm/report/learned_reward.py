"""The learned reward against true task progress, on the run's own rated states.

Each reward model version the run saved (``models/reward_model_v<N>.pt``) is evaluated, as the agent
uses it (ensemble mean), on every rated segment that carries simulator truth (a segment's reward is
the sum over its steps; the truth is its last step's progress). Per version: the rank correlation
(Spearman) with progress; for the newest: the points themselves, for a scatter plot. Without model
files, rated inputs or truth there is nothing to score (None). Long runs are sampled (at most
:data:`MAX_VERSIONS` versions and :data:`MAX_POINTS` segments, :data:`MAX_IMAGE_POINTS` for frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ros2_erl_vlm.report.read_run import RunData

#: At most this many model versions are scored (evenly spread, the newest always included).
MAX_VERSIONS = 25
#: At most this many rated segments (evenly spread over the log) are scored: state inputs, frames
#: (an image reward model's CNN on the CPU).
MAX_POINTS = 3000
MAX_IMAGE_POINTS = 300


@dataclass
class RewardFit:
    """Per-version rank correlations and the newest version's points."""

    versions: list[int]
    spearman: list[float | None]
    latest_version: int
    reward: np.ndarray
    progress: np.ndarray
    labels: np.ndarray  # -1: abstention
    points: int


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation (ties averaged); None when either side is constant or n < 3."""
    if len(a) < 3:
        return None
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _spread(n: int, k: int) -> np.ndarray:
    """``k`` evenly spread indices of ``range(n)`` (all when ``n <= k``), the last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def _load(path: Path) -> object:
    from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble

    return RewardEnsemble.from_bytes(path.read_bytes())


def reward_fit(run: RunData) -> RewardFit | None:
    """Score the run's reward model versions (see module docstring); None when there is no data.

    A model file that cannot be read (written by another version of the code, damaged) is skipped
    and noted in ``run.notes``.
    """
    rated = [r for r in run.ratings if r.inputs is not None and r.truth_progress is not None]
    if not rated or not run.models:
        return None
    images = rated[0].inputs is not None and rated[0].inputs.ndim == 4
    rated = [rated[i] for i in _spread(len(rated), MAX_IMAGE_POINTS if images else MAX_POINTS)]
    inputs = np.stack([r.inputs for r in rated])  # (N, T, ...)
    flat = inputs.reshape(-1, *inputs.shape[2:])
    progress = np.array([r.truth_progress for r in rated], dtype=np.float64)
    labels = np.array([-1 if r.label is None else r.label for r in rated])
    chosen = [run.models[i] for i in _spread(len(run.models), MAX_VERSIONS)]
    versions, rhos = [], []
    latest: np.ndarray | None = None
    latest_version = 0
    for version, path in chosen:
        try:
            model = _load(path)
            rewards = model.predict(flat).numpy().reshape(len(rated), -1).sum(1)  # type: ignore[attr-defined]
        except (ValueError, OSError, RuntimeError) as exc:
            run.notes.append(f"{path}: not scored ({exc})")
            continue
        versions.append(version)
        rhos.append(spearman(rewards, progress))
        latest, latest_version = rewards, version
    if latest is None:
        return None
    return RewardFit(versions, rhos, latest_version, latest, progress, labels, len(rated))
