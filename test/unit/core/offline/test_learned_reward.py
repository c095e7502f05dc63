"""The learned reward for offline data: every file a reward model is saved to loads, and the
ensemble relabels a dataset on its next states or on its frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.checkpoint import save_checkpoint
from ros2_erl_vlm.core.offline.dataset import load_dataset, relabel_rewards, write_dataset
from ros2_erl_vlm.core.offline.learned_reward import load_reward_model, model_reward_function
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble, RewardModelConfig


def _model(kind: str = "state") -> RewardEnsemble:
    cfg = RewardModelConfig(input_kind=kind, hidden_dim=8, hidden_layers=1, ensemble_size=2,
                            image_size=64)
    return RewardEnsemble(cfg, obs_dim=4 if kind == "state" else None, seed=0)


def _dataset(tmp_path: Path, frames: bool = False):
    rng = np.random.default_rng(0)
    n = 6
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    files = [""] * n
    if frames:
        for i in range(n):
            rel = f"d_frames/episode_000000/step_{i + 1:04d}.jpg"
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            img = np.full((80, 96, 3), 40 * i, np.uint8)
            cv2.imwrite(str(tmp_path / rel), img)
            files[i] = rel
    arrays = {"observations": obs, "actions": np.zeros((n, 2), np.float32),
              "next_observations": obs + 1, "terminals": np.zeros(n, bool),
              "timeouts": np.arange(n) == n - 1, "episode_ids": np.zeros(n, np.int64),
              "steps": np.arange(n), "success": np.ones(n, bool), "rewards": np.zeros(n, np.float32),
              "frame_files": np.array(files)}
    meta = {"task": "t", "frames": frames, "episodes": [{"episode": 0, "steps": n, "success": True}]}
    return load_dataset(write_dataset(tmp_path / "d.npz", arrays, meta))


def test_every_saved_form_loads(tmp_path: Path) -> None:
    model = _model()
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    expected = model.predict(x)
    version = tmp_path / "models" / "reward_model_v00001.pt"
    version.parent.mkdir()
    version.write_bytes(model.to_bytes())
    save_checkpoint(tmp_path / "learner.pt", {"reward_model": model.state_dict(), "env_steps": 5})
    save_checkpoint(tmp_path / "run.pt", {"agent": {}, "learner": {"reward_model": model.state_dict()}})
    save_checkpoint(tmp_path / "bare.pt", model.state_dict())
    for path in (version, tmp_path / "learner.pt", tmp_path / "run.pt", tmp_path / "bare.pt"):
        assert torch.allclose(load_reward_model(path).predict(x), expected, atol=1e-6), path


def test_files_without_a_model_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_reward_model(tmp_path / "none.pt")
    save_checkpoint(tmp_path / "agent.pt", {"agent": {"sac": {}}})
    with pytest.raises(ValueError, match="agent.pt: this checkpoint holds no reward model"):
        load_reward_model(tmp_path / "agent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"junk.pt: neither a published reward model version \(models/reward_model_v\*.pt\) nor"):
        load_reward_model(tmp_path / "junk.pt")


def test_relabels_on_next_states(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    model = _model()
    fn, source = model_reward_function(model)
    assert source == "next_observations"
    r = relabel_rewards(ds, fn, source)
    np.testing.assert_allclose(r, model.predict(ds.next_observations).numpy(), atol=1e-6)


def test_relabels_on_frames(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, frames=True)
    model = _model("image")
    fn, source = model_reward_function(model)
    assert source == "frames"
    r = relabel_rewards(ds, fn, source)
    frames = []
    for p in ds.frame_paths():
        assert p is not None
        bgr = cv2.imread(str(p))
        # centre square of the 96x80 frame (80x80), resized to the model's 64 px
        frames.append(cv2.resize(bgr[:, 8:88, ::-1], (64, 64), interpolation=cv2.INTER_AREA))
    np.testing.assert_allclose(r, model.predict(np.stack(frames)).numpy(), atol=1e-5)
    assert len(set(np.round(r, 5).tolist())) > 1  # the frames differ, so do their rewards
