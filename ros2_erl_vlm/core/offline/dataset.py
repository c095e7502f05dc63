"""The offline dataset: load and validate an export, normalise states, relabel rewards.

An export is ``<name>.npz`` + ``<name>.json`` (+ ``<name>_frames/``), format
``erl_vlm.offline/1`` (``docs/offline.md``): N transitions in episode order with D-dimensional
states and A-dimensional applied actions. :func:`load_dataset` checks every array's key, shape
and dtype, the json against the arrays (dimensions, episodes, step counts, success marks), the
episode structure (rows of an episode together, steps 0..n-1 in order, the end flag on the last
row only) and the values (no NaN/inf in states or actions, actions in [-1, 1]); anything wrong
is an :class:`OfflineDataError` (a ``ValueError``) naming the file and, where it applies, the
episode and step. Nothing is written.

Rewards are never read from the file (``rewards`` is the simulator's logged truth, for analysis):
a method trains on :func:`sparse_success_rewards` (the operator's success mark at an episode's
last step) or on rewards computed by a relabelling function (:func:`relabel_rewards`: a learned
reward model on the next states or on the camera frames).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "erl_vlm.offline/1"

#: Tolerance on actions outside [-1, 1] (float32 rounding of a clipped action).
ACTION_TOLERANCE = 1e-5

#: Every npz key with its dtype check: ``f4`` float32, ``f`` any float, ``i`` any integer,
#: ``b`` bool, ``U`` text; and whether it is per transition (N,) or (N, dim).
_KEYS: dict[str, str] = {
    "observations": "f4", "actions": "f4", "next_observations": "f4",
    "terminals": "b", "timeouts": "b", "episode_ids": "i", "steps": "i", "success": "b",
    "rewards": "f", "frame_files": "U",
}
_DTYPE_TEXT = {"f4": "float32", "f": "a float type", "i": "an integer type", "b": "bool",
               "U": "text (numpy str)"}


class OfflineDataError(ValueError):
    """An export that cannot be trained on; the message names the file (and episode/step)."""


@dataclass
class OfflineDataset:
    """One validated export (arrays as in the file; see the module docstring)."""

    path: Path
    observations: np.ndarray
    actions: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_ids: np.ndarray
    steps: np.ndarray
    success: np.ndarray
    logged_rewards: np.ndarray
    frame_files: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def obs_dim(self) -> int:
        """State size D."""
        return int(self.observations.shape[1])

    @property
    def action_dim(self) -> int:
        """Action size A."""
        return int(self.actions.shape[1])

    @property
    def task(self) -> str | None:
        """The task the episodes were recorded on (the json's ``task``)."""
        task = self.meta.get("task")
        return None if task is None else str(task)

    @property
    def num_episodes(self) -> int:
        """Number of episodes."""
        return len(np.unique(self.episode_ids))

    def episode_last_rows(self) -> np.ndarray:
        """``(N,)`` bool: true at each episode's last transition."""
        last = np.ones(len(self), dtype=bool)
        last[:-1] = self.episode_ids[1:] != self.episode_ids[:-1]
        return last

    def success_rate(self) -> float:
        """Share of episodes marked successful."""
        last = self.episode_last_rows()
        return float(self.success[last].mean())

    def frame_paths(self) -> list[Path | None]:
        """Absolute path of each row's frame (None where the step has no frame)."""
        base = self.path.parent
        return [base / f if f else None for f in self.frame_files.tolist()]

    def where(self, row: int) -> str:
        """``episode E step S of <file>`` for row ``row`` (for error messages)."""
        return f"episode {int(self.episode_ids[row])} step {int(self.steps[row])} of {self.path}"


def json_path(npz_path: str | Path) -> Path:
    """The json beside an export's npz (``<name>.json``)."""
    return Path(npz_path).with_suffix(".json")


def _dtype_ok(arr: np.ndarray, want: str) -> bool:
    if want == "f4":
        return arr.dtype == np.float32
    return arr.dtype.kind == want


def _read_meta(path: Path) -> dict[str, Any]:
    jpath = json_path(path)
    if not jpath.is_file():
        raise OfflineDataError(f"{path}: the export's json {jpath} is missing (an export is "
                               f"<name>.npz + <name>.json side by side)")
    try:
        meta = json.loads(jpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OfflineDataError(f"{jpath}: cannot read the export's json: {exc}") from exc
    if not isinstance(meta, dict):
        raise OfflineDataError(f"{jpath}: expected a JSON object")
    if meta.get("format") != FORMAT:
        raise OfflineDataError(f"{jpath}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    for key in ("obs_dim", "action_dim"):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise OfflineDataError(f"{jpath}: {key!r} must be a positive integer, got {v!r}")
    if not isinstance(meta.get("episodes"), list) or not meta["episodes"]:
        raise OfflineDataError(f"{jpath}: 'episodes' must be a non-empty list")
    return meta


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise OfflineDataError(f"{path}: not a readable npz (not a zip archive: truncated, or "
                               f"another kind of file)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if missing:
                raise OfflineDataError(f"{path}: missing keys {missing} (an export has "
                                       f"{', '.join(_KEYS)})")
            return {k: npz[k] for k in _KEYS}
    except OfflineDataError:
        raise
    except ValueError as exc:  # object arrays need pickle, which is never allowed
        raise OfflineDataError(f"{path}: cannot read the arrays without unpickling objects "
                               f"({exc}); frame_files must be a numpy str array") from exc
    except Exception as exc:  # zip/format errors of a truncated or foreign file
        raise OfflineDataError(f"{path}: not a readable npz ({type(exc).__name__}: {exc})") from exc


def _check_shapes(path: Path, a: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    for key, want in _KEYS.items():
        if not _dtype_ok(a[key], want):
            raise OfflineDataError(f"{path}: {key} must be {_DTYPE_TEXT[want]}, got {a[key].dtype}")
    n = a["observations"].shape[0] if a["observations"].ndim == 2 else -1
    if n <= 0:
        raise OfflineDataError(f"{path}: observations must be (N, D) with N >= 1, got "
                               f"{a['observations'].shape}")
    dims = {"observations": meta["obs_dim"], "next_observations": meta["obs_dim"],
            "actions": meta["action_dim"]}
    for key, dim in dims.items():
        if a[key].shape != (n, dim):
            raise OfflineDataError(f"{path}: {key} must be ({n}, {dim}) (N, and the json's "
                                   f"{'action_dim' if key == 'actions' else 'obs_dim'}), got "
                                   f"{a[key].shape}")
    for key in _KEYS:
        if key not in dims and a[key].shape != (n,):
            raise OfflineDataError(f"{path}: {key} must be ({n},), got {a[key].shape}")


def _episode_bounds(path: Path, ids: np.ndarray, steps: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` row ranges of the episodes; checks order and step numbering."""
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(ids)]])
    seen: set[int] = set()
    bounds = []
    for s, e in zip(starts.tolist(), stops.tolist(), strict=True):
        ep = int(ids[s])
        if ep in seen:
            raise OfflineDataError(f"{path}: episode {ep}'s rows are not together (it appears again "
                                   f"at row {s}); rows must be in episode order")
        seen.add(ep)
        bad = np.flatnonzero(steps[s:e] != np.arange(e - s))
        if bad.size:
            r = s + int(bad[0])
            raise OfflineDataError(f"{path}: episode {ep}: row {r} has step {int(steps[r])}, "
                                   f"expected {r - s} (steps 0..n-1 in order)")
        bounds.append((s, e))
    return bounds


def _check_episodes(path: Path, a: dict[str, np.ndarray], meta: dict[str, Any],
                    bounds: list[tuple[int, int]]) -> None:
    jpath = json_path(path)
    listed: dict[int, dict[str, Any]] = {}
    for i, ep in enumerate(meta["episodes"]):
        if not isinstance(ep, dict) or not {"episode", "steps", "success"} <= set(ep):
            raise OfflineDataError(f"{jpath}: episodes[{i}] must have 'episode', 'steps' and 'success'")
        listed[int(ep["episode"])] = ep
    in_npz = [int(a["episode_ids"][s]) for s, _ in bounds]
    unlisted = sorted(set(in_npz) - set(listed))
    absent = sorted(e for e in set(listed) - set(in_npz) if int(listed[e]["steps"]) != 0)
    if unlisted or absent:
        raise OfflineDataError(f"{path}: the arrays and {jpath.name} disagree on the episodes "
                               f"(in the arrays only: {unlisted}; in the json only: {absent})")
    done = a["terminals"] | a["timeouts"]
    for s, e in bounds:
        ep = int(a["episode_ids"][s])
        entry = listed[ep]
        if int(entry["steps"]) != e - s:
            raise OfflineDataError(f"{path}: episode {ep} has {e - s} transitions, {jpath.name} "
                                   f"says {entry['steps']}")
        marks = a["success"][s:e]
        if marks.min() != marks.max():
            raise OfflineDataError(f"{path}: episode {ep}: the success mark changes within the "
                                   f"episode (it must be repeated on every row)")
        if bool(marks[0]) != bool(entry["success"]):
            raise OfflineDataError(f"{path}: episode {ep}: success is {bool(marks[0])} in the arrays, "
                                   f"{bool(entry['success'])} in {jpath.name}")
        if not done[e - 1]:
            raise OfflineDataError(f"{path}: episode {ep}: its last transition (step {e - s - 1}) "
                                   f"is marked neither timeout nor terminal (a truncated export?)")
        early = np.flatnonzero(done[s:e - 1])
        if early.size:
            raise OfflineDataError(f"{path}: episode {ep}: step {int(early[0])} is marked "
                                   f"{'terminal' if a['terminals'][s + early[0]] else 'timeout'} "
                                   f"but the episode goes on")


def _check_values(path: Path, a: dict[str, np.ndarray]) -> None:
    for key in ("observations", "next_observations", "actions"):
        bad = ~np.isfinite(a[key]).all(axis=1)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise OfflineDataError(f"{path}: episode {int(a['episode_ids'][r])} step "
                                   f"{int(a['steps'][r])}: {key} holds NaN or inf "
                                   f"({int(bad.sum())} rows in all)")
    out = (np.abs(a["actions"]) > 1.0 + ACTION_TOLERANCE).any(axis=1)
    if out.any():
        r = int(np.flatnonzero(out)[0])
        raise OfflineDataError(f"{path}: episode {int(a['episode_ids'][r])} step {int(a['steps'][r])}: "
                               f"action {a['actions'][r].tolist()} is outside [-1, 1] (the export "
                               f"holds the applied, normalised action)")


def load_dataset(path: str | Path, obs_dim: int | None = None, action_dim: int | None = None,
                 where: str = "the task") -> OfflineDataset:
    """Read and validate an export (see the module docstring).

    ``obs_dim``/``action_dim``: the sizes the consumer needs (e.g. the task's simulator state, an
    arm config's state); a dataset of other sizes is refused naming ``where``.
    """
    path = Path(path)
    if not path.is_file():
        raise OfflineDataError(f"dataset {path} does not exist")
    meta = _read_meta(path)
    arrays = _read_arrays(path)
    _check_shapes(path, arrays, meta)
    bounds = _episode_bounds(path, arrays["episode_ids"], arrays["steps"])
    _check_episodes(path, arrays, meta, bounds)
    _check_values(path, arrays)
    ds = OfflineDataset(
        path=path, observations=arrays["observations"], actions=arrays["actions"],
        next_observations=arrays["next_observations"], terminals=arrays["terminals"],
        timeouts=arrays["timeouts"], episode_ids=arrays["episode_ids"].astype(np.int64),
        steps=arrays["steps"].astype(np.int64), success=arrays["success"],
        logged_rewards=arrays["rewards"].astype(np.float32), frame_files=arrays["frame_files"],
        meta=meta)
    check_dims(ds, obs_dim, action_dim, where)
    return ds


def check_dims(ds: OfflineDataset, obs_dim: int | None, action_dim: int | None,
               where: str = "the task") -> None:
    """``OfflineDataError`` unless the dataset's state/action sizes are the wanted ones."""
    for name, have, want in (("state", ds.obs_dim, obs_dim), ("action", ds.action_dim, action_dim)):
        if want is not None and have != want:
            task = f" (recorded on {ds.task})" if ds.task else ""
            raise OfflineDataError(f"{ds.path}: the dataset{task} has {have}-D {name}s but {where} "
                                   f"uses {want}-D ones")


def write_dataset(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``<name>.npz`` + ``<name>.json`` in this format (the reference writer; ``meta``
    gets the format tag and the dimensions), then read it back through :func:`load_dataset`."""
    path = Path(path)
    missing = [k for k in _KEYS if k not in arrays]
    if missing:
        raise ValueError(f"write_dataset: missing arrays {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.asarray(arrays[k]) for k in _KEYS})
    full = {"format": FORMAT, "obs_dim": int(np.shape(arrays["observations"])[1]),
            "action_dim": int(np.shape(arrays["actions"])[1]), **meta}
    json_path(path).write_text(json.dumps(full, indent=1), encoding="utf-8")
    load_dataset(path)
    return path


# -- state normalisation ---------------------------------------------------------------------------
@dataclass
class StateNorm:
    """Per-dimension state standardisation ``(s - mean) / std`` (identity: mean 0, std 1)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_observations(cls, observations: np.ndarray, eps: float = 1e-3) -> StateNorm:
        """Mean and std over the dataset's ``observations`` (``std + eps``, as CORL's IQL: a
        dimension that never varies maps to 0 instead of dividing by zero)."""
        obs = np.asarray(observations, dtype=np.float64)
        return cls(obs.mean(0).astype(np.float32), (obs.std(0) + eps).astype(np.float32))

    @classmethod
    def identity(cls, dim: int) -> StateNorm:
        """No normalisation."""
        return cls(np.zeros(dim, np.float32), np.ones(dim, np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Standardised ``x`` (float32; ``(D,)`` or ``(N, D)``)."""
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)


# -- rewards -----------------------------------------------------------------------------------------
#: A relabelling function: the ``(N, D)`` next states, or the N frame paths, in; ``(N,)`` rewards out.
RewardFunction = Callable[[Any], np.ndarray]
#: What a :data:`RewardFunction` reads.
REWARD_SOURCES = ("next_observations", "frames")


def sparse_success_rewards(ds: OfflineDataset) -> np.ndarray:
    """``(N,)`` float32: 1.0 at the last transition of each episode marked successful, else 0
    (the operator's success mark, what a real arm has; the paper's IQL-sparse baseline)."""
    return (ds.episode_last_rows() & ds.success).astype(np.float32)


def relabel_rewards(ds: OfflineDataset, reward_fn: RewardFunction,
                    source: str = "next_observations") -> np.ndarray:
    """Rewards ``(N,)`` float32 from ``reward_fn`` applied to the next states (``source =
    "next_observations"``, raw: the reward model normalises its own inputs) or to the absolute
    paths of the frames that go with them (``"frames"``; every row needs an existing frame).

    Raises ``OfflineDataError`` naming the episode and file for a missing frame, and for a
    result of the wrong shape or with NaN/inf.
    """
    if source == "next_observations":
        inputs: Any = ds.next_observations
    elif source == "frames":
        inputs = _existing_frames(ds)
    else:
        raise ValueError(f"reward source must be one of {REWARD_SOURCES}, got {source!r}")
    rewards = np.asarray(reward_fn(inputs), dtype=np.float32).reshape(-1)
    if rewards.shape != (len(ds),):
        raise OfflineDataError(f"{ds.path}: the reward function returned {rewards.shape[0]} "
                               f"rewards for {len(ds)} transitions")
    bad = np.flatnonzero(~np.isfinite(rewards))
    if bad.size:
        raise OfflineDataError(f"{ds.where(int(bad[0]))}: the reward function returned NaN or inf "
                               f"({bad.size} rows in all)")
    return rewards


def _existing_frames(ds: OfflineDataset) -> Sequence[Path]:
    paths = ds.frame_paths()
    for row, p in enumerate(paths):
        if p is None:
            raise OfflineDataError(f"{ds.where(row)}: the step has no frame (frame_files is empty), "
                                   f"and the reward model reads frames")
        if not p.is_file():
            raise OfflineDataError(f"{ds.where(row)}: frame {p} does not exist")
    return [p for p in paths if p is not None]
