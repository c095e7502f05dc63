"""The offline training loop: logs, checkpoints that deploy, bit-for-bit resume, the
evaluation hook, argument checks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.offline.dataset import (
    OfflineDataset,
    load_dataset,
    sparse_success_rewards,
    write_dataset,
)
from ros2_erl_vlm.core.offline.iql import IQLConfig
from ros2_erl_vlm.core.offline.policy import OfflinePolicy
from ros2_erl_vlm.core.offline.trainer import OfflineTrainer
from ros2_erl_vlm.core.rl.policy import DeployedPolicy

TINY = IQLConfig(hidden_dim=16, batch_size=16, steps=120)


def _dataset(tmp_path: Path, episodes: int = 4, length: int = 10, d: int = 6, a: int = 3) -> OfflineDataset:
    rng = np.random.default_rng(1)
    n = episodes * length
    obs = (rng.normal(size=(n, d)) * 5 + 3).astype(np.float32)
    arrays = {"observations": obs, "actions": rng.uniform(-1, 1, (n, a)).astype(np.float32),
              "next_observations": obs + 0.5, "terminals": np.zeros(n, bool),
              "timeouts": np.tile(np.arange(length) == length - 1, episodes),
              "episode_ids": np.repeat(np.arange(episodes), length), "steps": np.tile(np.arange(length), episodes),
              "success": np.repeat(np.arange(episodes) % 2 == 0, length),
              "rewards": np.full(n, np.nan, np.float32), "frame_files": np.array([""] * n)}
    meta = {"task": "arm-task", "frames": False,
            "episodes": [{"episode": e, "steps": length, "success": e % 2 == 0, "source": ""} for e in range(episodes)]}
    return load_dataset(write_dataset(tmp_path / "data.npz", arrays, meta))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_trains_logs_checkpoints_and_deploys(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    calls: list[OfflinePolicy] = []

    def evaluate(policy: OfflinePolicy) -> dict[str, float]:
        calls.append(policy)
        return {"success_rate": 0.5}
    run = tmp_path / "run"
    tr = OfflineTrainer(ds, "iql-sparse", TINY, sparse_success_rewards(ds), run_dir=run, log_every=50,
                        checkpoint_every=60, eval_every=100, evaluate=evaluate, tensorboard=False)
    summary = tr.run()
    tr.close()
    assert summary["steps"] == 120 and not summary["interrupted"]
    assert [r["step"] for r in _rows(run / "train.csv")] == ["50", "100", "120"]
    assert [r["step"] for r in _rows(run / "eval.csv")] == ["100", "120"]
    assert [p.trained_steps for p in calls] == [100, 120]
    deployed = DeployedPolicy(run / "checkpoint.pt")
    assert (deployed.method, deployed.trained_steps, deployed.obs_dim, deployed.action_dim) == ("iql-sparse", 120, 6, 3)
    state = ds.observations[3]
    np.testing.assert_allclose(deployed.act(state), calls[-1].act(state), atol=1e-6)
    # The normalisation is applied inside the policy: the raw state goes in.
    tr.algo.actor.eval()
    with torch.no_grad():
        direct = tr.algo.actor(torch.as_tensor(tr.norm.apply(state))[None])[0].numpy()
    np.testing.assert_allclose(deployed.act(state), direct, atol=1e-6)
    assert np.abs(deployed.act(state)).max() < 1.0
    with pytest.raises(ValueError, match="NaN"):
        deployed.act(np.full(6, np.nan))
    with pytest.raises(ValueError, match="reads 6-D states"):
        deployed.check_observation_dim(39, "the simulator")


@pytest.mark.parametrize("method", ["iql", "bc"])
def test_resume_is_bit_for_bit(tmp_path: Path, method: str) -> None:
    ds = _dataset(tmp_path)
    rewards = None if method == "bc" else np.linspace(0, 1, len(ds)).astype(np.float32)
    cfg = IQLConfig(hidden_dim=16, batch_size=16, steps=80)  # dropout on: torch's random state matters
    straight = OfflineTrainer(ds, method, cfg, rewards, run_dir=tmp_path / "a", seed=3, log_every=30,
                              checkpoint_every=0, tensorboard=False)
    straight.run()

    def stop(_policy: OfflinePolicy) -> dict[str, float]:  # Ctrl-C during step 50
        stopped.stop_requested = True
        return {}
    stopped = OfflineTrainer(ds, method, cfg, rewards, run_dir=tmp_path / "b", seed=3, log_every=30,
                             checkpoint_every=0, eval_every=50, evaluate=stop, tensorboard=False)
    assert stopped.run()["interrupted"]
    stopped.close()
    torch.manual_seed(999)  # the resumed process starts from another random state
    resumed = OfflineTrainer(ds, method, cfg, rewards, run_dir=tmp_path / "b", seed=3, log_every=30,
                             checkpoint_every=50, tensorboard=False)
    resumed.load(tmp_path / "b" / "checkpoint.pt")
    assert resumed.step == 50
    resumed.run()
    for a, b in zip(straight.algo.state_dict()["actor"].values(), resumed.algo.state_dict()["actor"].values(),
                    strict=True):
        assert torch.equal(a, b)
    if method == "iql":
        for a, b in zip(straight.algo.value.parameters(), resumed.algo.value.parameters(), strict=True):
            assert torch.equal(a, b)
    # The unfinished logging window (steps 31-50) was checkpointed too: the same rows.
    assert [r["step"] for r in _rows(tmp_path / "b" / "train.csv")] == ["30", "60", "80"]
    for a, b in zip(_rows(tmp_path / "a" / "train.csv"), _rows(tmp_path / "b" / "train.csv"), strict=True):
        assert a["actor_loss"] == b["actor_loss"]


def test_stop_request_keeps_the_window_and_skips_the_final_eval(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    evals: list[int] = []
    tr = OfflineTrainer(ds, "bc", TINY, run_dir=tmp_path / "r", log_every=100, checkpoint_every=0,
                        evaluate=lambda p: evals.append(p.trained_steps) or {}, tensorboard=False)
    tr.stop_requested = True
    summary = tr.run()
    assert summary["interrupted"] and summary["steps"] == 0 and evals == []
    assert (tmp_path / "r" / "checkpoint.pt").exists()


def test_bad_arguments(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    with pytest.raises(ValueError, match="method must be one of"):
        OfflineTrainer(ds, "cql", TINY)
    with pytest.raises(ValueError, match="trains on rewards"):
        OfflineTrainer(ds, "iql", TINY)
    with pytest.raises(ValueError, match=r"rewards must be \(40,\) and finite"):
        OfflineTrainer(ds, "iql", TINY, np.full(40, np.nan, np.float32))
    with pytest.raises(ValueError, match="eval_every must be >= 0"):
        OfflineTrainer(ds, "bc", TINY, eval_every=-1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            OfflineTrainer(ds, "bc", TINY, device="cuda")
    OfflineTrainer(ds, "bc", TINY, device=torch.device("cpu")).run(2)
    tr = OfflineTrainer(ds, "bc", TINY, run_dir=tmp_path / "r", tensorboard=False)
    tr.run(3)
    with pytest.raises(ValueError, match="is a bc run, this one is iql"):
        OfflineTrainer(ds, "iql", TINY, np.zeros(40, np.float32)).load(tmp_path / "r" / "checkpoint.pt")
