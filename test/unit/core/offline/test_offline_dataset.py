"""The offline dataset: a round trip, every bad input refused with a message naming the file and
episode, state normalisation, the sparse success reward and the relabelling hook."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.core.offline.dataset import (
    FORMAT,
    OfflineDataError,
    StateNorm,
    load_dataset,
    relabel_rewards,
    sparse_success_rewards,
    write_dataset,
)

D, A = 5, 2
LENGTHS = (4, 3, 5)
SUCCESS = (True, False, True)


def _arrays(lengths: tuple[int, ...] = LENGTHS, success: tuple[bool, ...] = SUCCESS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = sum(lengths)
    obs = rng.normal(size=(n, D)).astype(np.float32)
    ids = np.concatenate([np.full(k, 10 + e) for e, k in enumerate(lengths)]).astype(np.int64)
    steps = np.concatenate([np.arange(k) for k in lengths]).astype(np.int64)
    last = np.concatenate([np.arange(k) == k - 1 for k in lengths])
    return {"observations": obs, "actions": rng.uniform(-1, 1, (n, A)).astype(np.float32),
            "next_observations": (obs + 1.0).astype(np.float32), "terminals": np.zeros(n, bool),
            "timeouts": last, "episode_ids": ids, "steps": steps,
            "success": np.concatenate([np.full(k, s) for k, s in zip(lengths, success, strict=True)]),
            "rewards": rng.uniform(0, 10, n).astype(np.float32),
            "frame_files": np.array([f"d_frames/episode_{i:06d}/step_{s + 1:04d}.jpg"
                                     for i, s in zip(ids, steps, strict=True)])}


def _meta(lengths: tuple[int, ...] = LENGTHS, success: tuple[bool, ...] = SUCCESS) -> dict[str, Any]:
    return {"format": FORMAT, "task": "drawer-open-v3", "obs_dim": D, "action_dim": A, "frames": True,
            "episodes": [{"episode": 10 + e, "steps": k, "success": s, "source": f"bags/ep{e}"}
                         for e, (k, s) in enumerate(zip(lengths, success, strict=True))]}


def _write(tmp_path: Path, arrays: dict[str, np.ndarray] | None = None,
           meta: dict[str, Any] | None = None) -> Path:
    """Write the export by hand (numpy + json), not through write_dataset."""
    path = tmp_path / "d.npz"
    np.savez(path, **(arrays if arrays is not None else _arrays()))
    path.with_suffix(".json").write_text(json.dumps(meta if meta is not None else _meta()))
    return path


def test_round_trip(tmp_path: Path) -> None:
    arrays = _arrays()
    meta = {k: v for k, v in _meta().items() if k not in ("format", "obs_dim", "action_dim")}
    path = write_dataset(tmp_path / "d.npz", arrays, meta)
    ds = load_dataset(path, obs_dim=D, action_dim=A)
    for key, name in (("observations", "observations"), ("actions", "actions"),
                      ("next_observations", "next_observations"), ("terminals", "terminals"),
                      ("timeouts", "timeouts"), ("episode_ids", "episode_ids"), ("steps", "steps"),
                      ("success", "success"), ("rewards", "logged_rewards"), ("frame_files", "frame_files")):
        np.testing.assert_array_equal(getattr(ds, name), arrays[key])
    assert (len(ds), ds.obs_dim, ds.action_dim, ds.num_episodes, ds.task) == (12, D, A, 3, "drawer-open-v3")
    assert ds.meta["format"] == FORMAT and ds.meta["episodes"][1]["source"] == "bags/ep1"
    np.testing.assert_array_equal(ds.episode_last_rows(), arrays["timeouts"])
    assert ds.success_rate() == pytest.approx(2 / 3)
    assert ds.frame_paths()[0] == tmp_path / "d_frames/episode_000010/step_0001.jpg"
    assert ds.where(5) == f"episode 11 step 1 of {path}"


def _mutate(key: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict, dict], None]:
    def apply(arrays: dict[str, np.ndarray], _meta: dict[str, Any]) -> None:
        arrays[key] = fn(arrays[key].copy())
    return apply


def _set(key: str, row: int, value: Any, col: int | None = None) -> Callable[[dict, dict], None]:
    def fn(a: np.ndarray) -> np.ndarray:
        if col is None:
            a[row] = value
        else:
            a[row, col] = value
        return a
    return _mutate(key, fn)


def _meta_edit(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict, dict], None]:
    return lambda _arrays, meta: fn(meta)


def _drop(key: str) -> Callable[[dict, dict], None]:
    return lambda arrays, _meta: arrays.pop(key)


BAD_CASES = [
    ("missing key", _drop("success"), r"missing keys \['success'\]"),
    ("float64 states", _mutate("observations", lambda a: a.astype(np.float64)),
     "observations must be float32, got float64"),
    ("int success", _mutate("success", lambda a: a.astype(np.int64)), "success must be bool"),
    ("float ids", _mutate("episode_ids", lambda a: a.astype(np.float32)), "episode_ids must be an integer"),
    ("actions of another size", _mutate("actions", lambda a: np.zeros((12, 3), np.float32)),
     r"actions must be \(12, 2\) \(N, and the json's action_dim\), got \(12, 3\)"),
    ("short column", _mutate("timeouts", lambda a: a[:-1]), r"timeouts must be \(12,\), got \(11,\)"),
    ("NaN state", _set("observations", 6, np.nan, col=2), "episode 11 step 2: observations holds NaN or inf"),
    ("inf next state", _set("next_observations", 0, np.inf, col=0),
     "episode 10 step 0: next_observations holds NaN or inf"),
    ("NaN action", _set("actions", 11, np.nan, col=1), "episode 12 step 4: actions holds NaN or inf"),
    ("action out of the box", _set("actions", 4, 1.5, col=0), r"episode 11 step 0: action .* outside \[-1, 1\]"),
    ("episode rows apart", _set("episode_ids", 11, 10), "episode 10's rows are not together"),
    ("steps out of order", _set("steps", 2, 3), "episode 10: row 2 has step 3, expected 2"),
    ("success changes", _set("success", 1, False), "episode 10: the success mark changes within"),
    ("last step unmarked", _set("timeouts", 3, False), "episode 10: its last transition .* neither timeout"),
    ("early timeout", _set("timeouts", 5, True), "episode 11: step 1 is marked timeout but the episode goes on"),
    ("early terminal", _set("terminals", 8, True), "episode 12: step 1 is marked terminal"),
    ("json episode missing", _meta_edit(lambda m: m["episodes"].pop(1)),
     r"disagree on the episodes \(in the arrays only: \[11\]; in the json only: \[\]\)"),
    ("json step count", _meta_edit(lambda m: m["episodes"][2].update(steps=6)),
     "episode 12 has 5 transitions, d.json says 6"),
    ("json success", _meta_edit(lambda m: m["episodes"][0].update(success=False)),
     "episode 10: success is True in the arrays, False in d.json"),
    ("json format", _meta_edit(lambda m: m.update(format="other/2")), "format is 'other/2', expected"),
    ("json dims", _meta_edit(lambda m: m.update(obs_dim=7)), r"observations must be \(12, 7\)"),
    ("json dims type", _meta_edit(lambda m: m.update(action_dim="2")), "'action_dim' must be a positive integer"),
]


@pytest.mark.parametrize(("name", "edit", "needle"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_is_refused_naming_the_problem(tmp_path: Path, name: str, edit: Callable, needle: str) -> None:
    arrays, meta = _arrays(), _meta()
    edit(arrays, meta)
    path = _write(tmp_path, arrays, meta)
    with pytest.raises(OfflineDataError, match=needle) as err:
        load_dataset(path)
    assert str(tmp_path / "d.") in str(err.value)  # names the file (.npz or .json)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(OfflineDataError, match="does not exist"):
        load_dataset(tmp_path / "none.npz")
    path = _write(tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(OfflineDataError, match=r"the export's json .*d.json is missing"):
        load_dataset(path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(OfflineDataError, match="cannot read the export's json"):
        load_dataset(path)
    path.with_suffix(".json").write_text(json.dumps(_meta()))
    path.write_bytes(b"garbage, not a zip")
    with pytest.raises(OfflineDataError, match=f"{path}: not a readable npz"):
        load_dataset(path)
    arrays = _arrays()
    arrays["frame_files"] = arrays["frame_files"].astype(object)  # needs pickle to load
    np.savez(path, **arrays)
    with pytest.raises(OfflineDataError, match="without unpickling objects"):
        load_dataset(path)


def test_dimensions_that_do_not_match_the_task(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with pytest.raises(OfflineDataError, match=r"\(recorded on drawer-open-v3\) has 5-D states but "
                                               r"task drawer-open-v3's simulator uses 39-D ones"):
        load_dataset(path, obs_dim=39, where="task drawer-open-v3's simulator")
    with pytest.raises(OfflineDataError, match="has 2-D actions but the arm config uses 4-D"):
        load_dataset(path, action_dim=4, where="the arm config")


def test_empty_json_episode_is_allowed(tmp_path: Path) -> None:
    meta = _meta()
    meta["episodes"].append({"episode": 99, "steps": 0, "success": False, "source": "short bag"})
    assert load_dataset(_write(tmp_path, meta=meta)).num_episodes == 3


def test_sparse_success_reward(tmp_path: Path) -> None:
    ds = load_dataset(_write(tmp_path))
    r = sparse_success_rewards(ds)
    # episode 10 (4 steps, success), 11 (3 steps, failure), 12 (5 steps, success)
    expected = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert r.dtype == np.float32 and r.tolist() == expected


def test_state_normalisation_uses_the_observations() -> None:
    obs = np.array([[0.0, 1.0, 5.0], [2.0, 1.0, 5.0], [4.0, 1.0, 5.0]], np.float32)
    norm = StateNorm.from_observations(obs, eps=1e-3)
    np.testing.assert_allclose(norm.mean, [2.0, 1.0, 5.0])
    np.testing.assert_allclose(norm.std, [np.sqrt(8 / 3) + 1e-3, 1e-3, 1e-3], rtol=1e-6)
    out = norm.apply(np.array([[4.0, 1.0, 5.0]], np.float32))
    np.testing.assert_allclose(out, [[2.0 / (np.sqrt(8 / 3) + 1e-3), 0.0, 0.0]], rtol=1e-5)
    assert out.dtype == np.float32
    ident = StateNorm.identity(3)
    np.testing.assert_array_equal(ident.apply(obs), obs)


def test_relabelling_hook_on_next_states(tmp_path: Path) -> None:
    ds = load_dataset(_write(tmp_path))
    r = relabel_rewards(ds, lambda x: x.sum(1))
    np.testing.assert_allclose(r, ds.next_observations.sum(1), rtol=1e-6)
    with pytest.raises(OfflineDataError, match="returned 11 rewards for 12 transitions"):
        relabel_rewards(ds, lambda x: x[:-1, 0])

    def nan_at_7(x: np.ndarray) -> np.ndarray:
        out = x[:, 0].copy()
        out[7] = np.nan
        return out
    with pytest.raises(OfflineDataError, match="episode 12 step 0 of .*returned NaN or inf"):
        relabel_rewards(ds, nan_at_7)
    with pytest.raises(ValueError, match="reward source must be one of"):
        relabel_rewards(ds, lambda x: x, source="pixels")


def test_relabelling_hook_on_frames(tmp_path: Path) -> None:
    arrays = _arrays()
    path = _write(tmp_path, arrays)
    ds = load_dataset(path)
    with pytest.raises(OfflineDataError, match=r"episode 10 step 0 of .*: frame .*step_0001.jpg does not exist"):
        relabel_rewards(ds, lambda paths: np.zeros(len(paths)), source="frames")
    for p in ds.frame_paths():
        assert p is not None
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"jpeg")
    seen: list[Path] = []

    def by_name(paths: list[Path]) -> np.ndarray:
        seen.extend(paths)
        return np.array([float(p.stem.split("_")[1]) for p in paths])
    r = relabel_rewards(ds, by_name, source="frames")
    assert seen == ds.frame_paths() and r.tolist() == (ds.steps + 1).tolist()
    arrays["frame_files"][4] = ""
    ds = load_dataset(_write(tmp_path, arrays))
    with pytest.raises(OfflineDataError, match="episode 11 step 0 of .*the step has no frame"):
        relabel_rewards(ds, by_name, source="frames")
