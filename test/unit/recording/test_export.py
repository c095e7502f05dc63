"""The export of a folder of episode bags to the offline dataset (docs/recording.md, format
``erl_vlm.offline/1``): keys, shapes, dtypes and row order, the frames on disk, and every bad input
refused with the episode and bag named, nothing written and nothing recorded touched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.recording.export import ExportError, export, main
from ros2_erl_vlm.recording.mcap_episode import EpisodeWriter, StepRecord

KEYS = {"observations": (np.float32, 2), "actions": (np.float32, 2), "next_observations": (np.float32, 2),
        "terminals": (np.bool_, 1), "timeouts": (np.bool_, 1), "episode_ids": (np.int64, 1),
        "steps": (np.int64, 1), "success": (np.bool_, 1), "rewards": (np.float32, 1),
        "frame_files": (np.str_, 1)}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_keys_shapes_dtypes_rows_and_frames(tmp_path: Path, write_episode: Any) -> None:
    bags = tmp_path / "bags"
    written = {e: write_episode(bags, episode=e, n_steps=n, success=ok, seed=e)
               for e, n, ok in ((5, 4, True), (2, 6, None), (8, 3, False))}
    before = _digest(bags)
    summary = export(bags, tmp_path / "out" / "demo.npz")
    assert _digest(bags) == before  # the recordings are only read
    assert summary["episodes"] == 3 and summary["transitions"] == 13
    assert summary["successes"] == 1 and summary["unmarked"] == 1

    with np.load(tmp_path / "out" / "demo.npz", allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    assert set(data) == set(KEYS)
    for key, (dtype, ndim) in KEYS.items():
        assert data[key].dtype.type is dtype, key
        assert data[key].ndim == ndim and data[key].shape[0] == 13, key
    assert data["observations"].shape == data["next_observations"].shape == (13, 39)
    assert data["actions"].shape == (13, 4)
    assert data["episode_ids"].tolist() == [2] * 6 + [5] * 4 + [8] * 3  # episode order
    assert data["steps"].tolist() == [*range(6), *range(4), *range(3)]
    assert data["timeouts"].tolist() == [t == n - 1 for n in (6, 4, 3) for t in range(n)]
    assert not data["terminals"].any()
    assert data["success"].tolist() == [False] * 6 + [True] * 4 + [False] * 3
    row = 0
    for e in (2, 5, 8):
        steps = written[e].steps
        for t in range(len(steps) - 1):
            np.testing.assert_array_equal(data["observations"][row], steps[t].state)
            np.testing.assert_array_equal(data["next_observations"][row], steps[t + 1].state)
            np.testing.assert_array_equal(data["actions"][row], steps[t + 1].action_taken)
            assert data["rewards"][row] == np.float32(steps[t + 1].true_reward)
            rel = data["frame_files"][row]
            assert rel == f"demo_frames/episode_{e:06d}/step_{t + 1:04d}.jpg"
            assert (tmp_path / "out" / rel).read_bytes() == written[e].frames[t + 1]  # as recorded
            row += 1
    assert (tmp_path / "out" / "demo_frames" / "episode_000002" / "step_0000.jpg").is_file()

    meta = json.loads((tmp_path / "out" / "demo.json").read_text())
    assert meta == {"format": "erl_vlm.offline/1", "task": "reach-v3", "obs_dim": 39, "action_dim": 4,
                    "episodes": [{"episode": e, "steps": n, "success": ok, "source": str(written[e].path)}
                                 for e, n, ok in ((2, 6, False), (5, 4, True), (8, 3, False))],
                    "frames": True}


def test_a_real_arm_episode_has_nan_rewards(tmp_path: Path) -> None:
    w = EpisodeWriter(tmp_path / "bags" / "episode_000000", 0, task="drawer-open-v3", source="test")
    for t in range(3):
        w.write_step(StepRecord(t, np.full(10, t, np.float32), np.full(4, 0.5, np.float32) if t else [], t))
        w.write_rgb_frame(t, np.full((8, 8, 3), 9 * t, np.uint8))
    w.close(True)
    export(tmp_path / "bags", tmp_path / "arm.npz")
    with np.load(tmp_path / "arm.npz") as z:
        assert np.isnan(z["rewards"]).all() and z["observations"].shape == (2, 10)


def test_state_only_export(tmp_path: Path, write_episode: Any) -> None:
    write_episode(tmp_path / "bags", episode=0, frames=False)
    with pytest.raises(ExportError, match=r"episode 0 .*episode_000000.*no camera frames"):
        export(tmp_path / "bags", tmp_path / "d.npz")
    assert not (tmp_path / "d.npz").exists() and not (tmp_path / "d_frames").exists()
    export(tmp_path / "bags", tmp_path / "d.npz", frames=False)
    with np.load(tmp_path / "d.npz") as z:
        assert set(z["frame_files"].tolist()) == {""}
    assert json.loads((tmp_path / "d.json").read_text())["frames"] is False
    assert not (tmp_path / "d_frames").exists()


@pytest.mark.parametrize(("kind", "needle"), [
    ("nan", r"episode 4 \(.*episode_000004\): NaN/inf in the state of step 2"),
    ("dims", r"episode 4 \(.*episode_000004\): state size 20 does not match episode 1's 39 \(.*episode_000001\)"),
    ("action_range", r"episode 4 \(.*episode_000004\): the action applied at step 0 is outside \[-1, 1\]"),
    ("gap", r"episode 4 \(.*episode_000004\): steps do not run 0..3 without gaps .*missing \[2\]"),
    ("duplicate", r"episode 1 is recorded twice \(.*episode_000001 and .*episode_000001_1\).*--renumber"),
    ("task", r"episodes of several tasks: 'reach-v3' .*; 'drawer-open-v3' \(episode 4"),
    ("truncated", r"episode 4 \(.*episode_000004\): cannot read .*truncated or damaged"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else "")
def test_bad_input_is_refused_naming_the_episode_and_bag(tmp_path: Path, write_episode: Any, kind: str,
                                                         needle: str) -> None:
    bags = tmp_path / "bags"
    write_episode(bags, episode=1, seed=1)
    if kind == "nan":
        write_episode(bags, episode=4, nan_at=2)
    elif kind == "dims":
        write_episode(bags, episode=4, obs_dim=20)
    elif kind == "action_range":
        write_episode(bags, episode=4, action_scale=3.0)
    elif kind == "gap":
        w = EpisodeWriter(bags / "episode_000004", 4, task="reach-v3")
        for t in (0, 1, 3):
            w.write_step(StepRecord(t, np.zeros(39), np.zeros(4) if t else [], t))
            w.write_rgb_frame(t, np.zeros((8, 8, 3), np.uint8))
        w.close(True)
    elif kind == "duplicate":
        write_episode(bags, episode=1, name="episode_000001_1")
    elif kind == "task":
        write_episode(bags, episode=4, task="drawer-open-v3")
    elif kind == "truncated":
        wrote = write_episode(bags, episode=4, n_steps=30)
        [f] = list(wrote.path.glob("*.mcap"))
        f.write_bytes(f.read_bytes()[:-200])
    before = _digest(bags)
    with pytest.raises(ExportError, match=needle):
        export(bags, tmp_path / "out.npz")
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))  # nothing written
    assert _digest(bags) == before


def test_repeated_ids_export_with_renumber(tmp_path: Path, write_episode: Any) -> None:
    write_episode(tmp_path / "bags", episode=1, n_steps=2)
    write_episode(tmp_path / "bags", episode=1, n_steps=3, name="episode_000001_1")
    export(tmp_path / "bags", tmp_path / "r.npz", renumber=True)
    meta = json.loads((tmp_path / "r.json").read_text())
    assert [(e["episode"], e["steps"], Path(e["source"]).name) for e in meta["episodes"]] == [
        (0, 2, "episode_000001"), (1, 3, "episode_000001_1")]


def test_expected_sizes_and_task(tmp_path: Path, write_episode: Any) -> None:
    write_episode(tmp_path / "bags", episode=0)
    with pytest.raises(ExportError, match=r"episode 0 .*state size 39, expected 40 \(--obs-dim\)"):
        export(tmp_path / "bags", tmp_path / "a.npz", obs_dim=40)
    with pytest.raises(ExportError, match=r"episode 0 .*recorded task 'reach-v3', not 'drawer-open-v3'"):
        export(tmp_path / "bags", tmp_path / "a.npz", task="drawer-open-v3")


def test_an_existing_export_is_kept_unless_overwrite(tmp_path: Path, write_episode: Any) -> None:
    write_episode(tmp_path / "bags", episode=0, n_steps=2)
    export(tmp_path / "bags", tmp_path / "x.npz")
    first = (tmp_path / "x.npz").read_bytes()
    with pytest.raises(ExportError, match=r"x.npz.*exist\(s\) already; give --overwrite"):
        export(tmp_path / "bags", tmp_path / "x.npz")
    assert (tmp_path / "x.npz").read_bytes() == first
    write_episode(tmp_path / "bags", episode=1, n_steps=2)
    assert export(tmp_path / "bags", tmp_path / "x.npz", overwrite=True)["episodes"] == 2
    assert sorted(p.name for p in (tmp_path / "x_frames").iterdir()) == ["episode_000000", "episode_000001"]


def test_an_export_is_never_written_into_a_bag(tmp_path: Path, write_episode: Any) -> None:
    wrote = write_episode(tmp_path / "bags", episode=0)
    with pytest.raises(ExportError, match="inside the bag"):
        export(tmp_path / "bags", wrote.path / "x.npz")
    assert sorted(p.name for p in wrote.path.iterdir()) == ["episode_000000.mcap", "metadata.yaml"]


def test_cli(tmp_path: Path, write_episode: Any, capsys: Any) -> None:
    write_episode(tmp_path / "bags", episode=0, n_steps=3)
    assert main([str(tmp_path / "bags"), "--out", str(tmp_path / "c.npz")]) == 0
    assert json.loads(capsys.readouterr().out)["transitions"] == 3
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "d.npz")]) == 2
    assert "error: " in capsys.readouterr().err
    assert main([str(tmp_path / "bags"), "--out", str(tmp_path / "d.txt")]) == 2
    assert "--out must name a .npz file" in capsys.readouterr().err
