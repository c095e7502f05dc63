"""The offline training command on tiny synthetic exports: runs, logs, checkpoints, resumes,
deploys through DeployedPolicy, evaluates in simulation; bad arguments exit 1 with ``error:``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble, RewardModelConfig
from ros2_erl_vlm.core.rl.policy import DeployedPolicy
from ros2_erl_vlm.offline.train import main

TINY = ["--set", "hidden_dim=16", "--set", "batch_size=16", "--no-tensorboard"]


def _export(folder: Path, d: int = 5, a: int = 4, episodes: int = 4, length: int = 25,
            task: str = "drawer-open-v3") -> Path:
    """An export written as the format says (numpy + json), states around MetaWorld's scale."""
    rng = np.random.default_rng(0)
    n = episodes * length
    obs = rng.uniform(-0.3, 0.3, (n, d)).astype(np.float32)
    obs[:, :3] += np.array([0.0, 0.6, 0.2], np.float32)[: min(3, d)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demos.npz"
    np.savez(path, observations=obs, actions=rng.uniform(-1, 1, (n, a)).astype(np.float32),
             next_observations=(obs + 0.01).astype(np.float32), terminals=np.zeros(n, bool),
             timeouts=np.tile(np.arange(length) == length - 1, episodes),
             episode_ids=np.repeat(np.arange(episodes), length).astype(np.int64),
             steps=np.tile(np.arange(length), episodes).astype(np.int64),
             success=np.repeat(np.arange(episodes) < episodes // 2, length),
             rewards=rng.uniform(0, 10, n).astype(np.float32), frame_files=np.array([""] * n))
    meta = {"format": "erl_vlm.offline/1", "task": task, "obs_dim": d, "action_dim": a, "frames": False,
            "episodes": [{"episode": e, "steps": length, "success": e < episodes // 2, "source": f"bags/{e}"}
                         for e in range(episodes)]}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def _steps(path: Path) -> list[int]:
    with open(path, newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_run_resume_and_deploy(tmp_path: Path, capsys) -> None:
    data = _export(tmp_path / "data")
    run = tmp_path / "run"
    args = ["--data", str(data), "--method", "iql-sparse", "--out", str(run), "--log-every", "50",
            "--checkpoint-every", "100", "--no-progress", *TINY]
    assert main([*args, "--steps", "200"]) == 0
    assert _steps(run / "train.csv") == [50, 100, 150, 200]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 200 and summary["method"] == "iql-sparse"
    rewards = summary["rewards"]  # 100 transitions, 2 of the 4 episodes marked successful
    assert (rewards["reward"], rewards["nonzero"], rewards["max"]) == ("sparse", 2, 1.0)
    assert rewards["mean"] == pytest.approx(0.02)
    settings = json.loads((run / "run.json").read_text())
    assert settings["method"] == "iql-sparse" and settings["config"]["expectile"] == 0.7
    assert "already holds a run" in (main([*args, "--steps", "200"]), capsys.readouterr().err)[1]

    # Resume continues the step count (only --steps changed).
    assert main([*args, "--steps", "300", "--resume"]) == 0
    assert _steps(run / "train.csv") == [50, 100, 150, 200, 250, 300]
    assert json.loads((run / "summary.json").read_text())["steps"] == 300
    policy = DeployedPolicy(run / "checkpoint.pt")
    assert (policy.method, policy.trained_steps, policy.obs_dim, policy.action_dim) == ("iql-sparse", 300, 5, 4)
    action = policy.act(np.load(data)["observations"][0])
    assert action.shape == (4,) and np.isfinite(action).all() and np.abs(action).max() <= 1.0

    # Another experiment in the same directory is refused, naming what differs.
    capsys.readouterr()
    assert main([*args, "--steps", "300", "--resume", "--seed", "1"]) == 1
    assert "seed: 0 (now 1)" in capsys.readouterr().err


def test_learned_reward_run(tmp_path: Path) -> None:
    data = _export(tmp_path / "data")
    model = RewardEnsemble(RewardModelConfig(hidden_dim=8, hidden_layers=1, ensemble_size=2), obs_dim=5, seed=0)
    model_file = tmp_path / "models" / "reward_model_v00001.pt"
    model_file.parent.mkdir()
    model_file.write_bytes(model.to_bytes())
    run = tmp_path / "run"
    assert main(["--data", str(data), "--method", "iql", "--reward", "learned", "--reward-model",
                 str(model_file), "--out", str(run), "--steps", "100", "--log-every", "50",
                 "--no-progress", *TINY]) == 0
    summary = json.loads((run / "summary.json").read_text())
    expected = model.predict(np.load(data)["next_observations"]).numpy()
    assert summary["rewards"]["reward"] == "learned"
    assert summary["rewards"]["mean"] == pytest.approx(float(expected.mean()), abs=1e-5)
    assert "corr_with_logged_reward" in summary["rewards"]
    assert DeployedPolicy(run / "checkpoint.pt").method == "iql"


def test_bc_evaluated_in_simulation(tmp_path: Path, capsys) -> None:
    data = _export(tmp_path / "data", d=39, episodes=2, length=20)
    run = tmp_path / "run"
    assert main(["--data", str(data), "--method", "bc", "--out", str(run), "--steps", "60",
                 "--log-every", "30", "--eval-task", "drawer-open-v3", "--eval-episodes", "1",
                 "--eval-every", "0", *TINY]) == 0
    err = capsys.readouterr().err
    assert "bc on demos.npz (40 transitions, 2 episodes, 50% marked successful)" in err
    assert "60/60" in err  # the progress bar reached the end
    with open(run / "eval.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [60]
    assert float(rows[0]["success_rate"]) in (0.0, 1.0) and np.isfinite(float(rows[0]["true_return"]))
    settings = json.loads((run / "run.json").read_text())
    assert settings["eval"] == {"task": "drawer-open-v3", "layout": "stock", "episodes": 1, "seed_base": 0}


def _exit_code(argv: list[str]) -> int:
    """``main``'s return value, or the code of the SystemExit that argparse raises."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


BAD = [
    (["--method", "bc", "--reward", "sparse"], "--method bc trains on no reward"),
    (["--method", "iql"], "--reward learned needs --reward-model"),
    (["--method", "iql-sparse", "--reward", "learned"], "--method iql-sparse trains on the sparse"),
    (["--reward", "sparse", "--reward-model", "m.pt"], "not --reward-model"),
    (["--method", "dqn"], "invalid choice: 'dqn'"),
    (["--method", "bc", "--steps", "0"], "--steps must be >= 1, got 0"),
    (["--method", "bc", "--set", "gamma=0.9"], "unknown setting 'gamma'"),
    (["--method", "bc", "--set", "expectile=1.5"], "expectile must be in (0, 1)"),
    (["--method", "bc", "--set", "steps=5"], "use --steps"),
    (["--method", "bc", "--eval-episodes", "3"], "--eval-episodes needs --eval-task"),
    (["--method", "bc", "--resume"], "checkpoint.pt does not exist"),
    (["--method", "bc", "--eval-task", "reach-v3"], "was recorded on drawer-open-v3, --eval-task is reach-v3"),
    (["--method", "bc", "--eval-task", "drawer-open-v3"],
     "has 5-D states but task drawer-open-v3's simulator uses 39-D ones"),
    (["--method", "iql", "--reward-model", "MODEL7"], "reads 7-D states, the dataset"),
    (["--method", "iql", "--reward-model", "missing.pt"], "reward model missing.pt does not exist"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_arguments_exit_1(tmp_path: Path, capsys, argv: list[str], needle: str) -> None:
    data = _export(tmp_path / "data")
    if "MODEL7" in argv:
        other = RewardEnsemble(RewardModelConfig(hidden_dim=8, hidden_layers=1, ensemble_size=1), obs_dim=7)
        (tmp_path / "m7.pt").write_bytes(other.to_bytes())
        argv = [str(tmp_path / "m7.pt") if a == "MODEL7" else a for a in argv]
    run = tmp_path / "run"
    code = _exit_code(["--data", str(data), "--out", str(run), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "error: " in err and needle in err, err
    assert not (run / "checkpoint.pt").exists()


def test_bad_data_exit_1(tmp_path: Path, capsys) -> None:
    assert main(["--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "r"), "--method", "bc"]) == 1
    assert "error: dataset" in capsys.readouterr().err
    data = _export(tmp_path / "data")
    arrays = dict(np.load(data))
    arrays["observations"][30, 1] = np.nan
    np.savez(data, **arrays)
    assert main(["--data", str(data), "--out", str(tmp_path / "r"), "--method", "bc"]) == 1
    assert "episode 1 step 5: observations holds NaN" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--data", str(_export(tmp_path / "ok")), "--out", str(tmp_path / "r"), "--method", "bc",
                     "--device", "cuda"]) == 1
        assert "CUDA is not available" in capsys.readouterr().err
