"""The ``device`` setting: auto is the CPU without a GPU, cuda without one is a clear error in every
place a config is checked, and what the learning code builds sits on the device it was given.

Every test runs on the CPU; the ones about a missing GPU pretend torch sees none, so they hold on
a GPU machine too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.config import LoopConfig
from ros2_erl_vlm.core.device import cuda_report, resolve_device, tensors_in, to_cpu, tree_to
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble, RewardModelConfig
from ros2_erl_vlm.core.rl.online_agent import OnlineAgent
from ros2_erl_vlm.core.rl.replay_buffer import ReplayBuffer
from ros2_erl_vlm.core.rl.sac import SAC, SACConfig

REPO = Path(__file__).resolve().parents[3]
CPU = torch.device("cpu")


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees no CUDA device (whatever the machine has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_is_the_cpu_without_a_gpu(no_gpu: None) -> None:
    assert resolve_device("auto") == CPU


def test_auto_follows_what_torch_sees() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["cpu", " CPU ", torch.device("cpu")])
def test_cpu(name: Any) -> None:
    assert resolve_device(name) == CPU


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_refused_saying_what_torch_reports(no_gpu: None, name: str) -> None:
    with pytest.raises(ValueError, match=f"device '{name}': CUDA is not available: torch ") as err:
        resolve_device(name)
    assert torch.__version__ in str(err.value)
    assert "use device cpu" in str(err.value)


def test_cuda_report_names_the_build(no_gpu: None) -> None:
    report = cuda_report()
    assert report.startswith(f"torch {torch.__version__}")
    if torch.version.cuda is None:
        assert "built without CUDA" in report
    else:
        assert "torch.cuda.is_available() is False" in report


@pytest.mark.parametrize("name", ["gpu", "", "cuda:", "cuda:x", "cuda:-1", "mps", "cpu:0", "cuda0"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"device must be auto .* \| cpu \| cuda \| cuda:N, got"):
        resolve_device(name)


def test_tree_to_and_to_cpu_keep_the_structure() -> None:
    t = torch.ones(2)
    tree = {"a": [t, (t, 3)], "b": {"c": t}, "d": "x"}
    moved = tree_to(tree, "cpu")
    assert moved["a"][0] is t and moved["a"][1][1] == 3 and moved["d"] == "x"  # no copy on the CPU
    assert isinstance(moved["a"][1], tuple)
    assert all(x.device == CPU for x in tensors_in(to_cpu(tree)))


# -- the config: every place it is checked refuses cuda without a GPU ------------------------------
def test_loop_config_default_is_auto_and_validates_here() -> None:
    assert LoopConfig().device == "auto"
    LoopConfig(device="cpu").validate()
    LoopConfig().validate()


def test_loop_config_refuses_cuda_without_a_gpu(no_gpu: None) -> None:
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available"):
        LoopConfig(device="cuda").validate()


def test_loop_config_refuses_an_unknown_device() -> None:
    with pytest.raises(ValueError, match=r"device must be one of \('auto', 'cpu', 'cuda'\), got 'gpu'"):
        LoopConfig(device="gpu").validate()


def test_in_process_runner_refuses_cuda_without_a_gpu(no_gpu: None, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from ros2_erl_vlm.train import main

    cfg = tmp_path / "gpu.yaml"
    cfg.write_text("device: cuda\n")
    assert main(["--config", str(cfg), "--no-progress", "--no-tensorboard",
                 "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "error: device 'cuda': CUDA is not available" in err, err
    assert main(["--set", "device=cuda", "--no-progress", "--no-tensorboard",
                 "--run-dir", str(tmp_path / "run")]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_node_parameters_refuse_cuda_without_a_gpu(no_gpu: None) -> None:
    from ros2_erl_vlm.ros.node_params import loop_config
    from ros2_erl_vlm.ros.params import ParamError

    assert loop_config({"device": "cpu"}).device == "cpu"
    with pytest.raises(ParamError, match="invalid settings: device 'cuda': CUDA is not available"):
        loop_config({"device": "cuda"})


@pytest.mark.parametrize("node", ["sac_agent", "reward_learner"])
def test_graph_check_refuses_cuda_without_a_gpu(no_gpu: None, tmp_path: Path, node: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from ros2_erl_vlm.runner import main as runner_main

    shipped = yaml.safe_load((REPO / "config" / "train_sim.yaml").read_text())
    shipped.setdefault(f"/**/{node}", {"ros__parameters": {}})["ros__parameters"]["device"] = "cuda"
    params = tmp_path / "gpu.yaml"
    params.write_text(yaml.safe_dump(shipped))
    assert runner_main(["--params-file", str(params), "--check"]) == 2
    err = capsys.readouterr().err
    assert f"error: {node}: invalid settings: device 'cuda': CUDA is not available" in err, err


def test_the_shipped_graph_runs_on_auto() -> None:
    import yaml

    shipped = yaml.safe_load((REPO / "config" / "train_sim.yaml").read_text())
    assert shipped["/**"]["ros__parameters"]["device"] == "auto"


# -- what is built sits on the device it was given -----------------------------------------------
def test_sac_on_cpu_has_its_tensors_there_and_updates() -> None:
    sac = SAC(6, 2, SACConfig(hidden_dim=16, hidden_layers=2, batch_size=8), seed=0, device="cpu")
    assert sac.device == CPU
    params = [*sac.actor.parameters(), *sac.critic.parameters(), *sac.critic_target.parameters(),
              sac.log_alpha]
    assert all(p.device == CPU for p in params)
    batch = (torch.randn(8, 6), torch.rand(8, 2) * 2 - 1, torch.randn(8), torch.randn(8, 6), torch.ones(8))
    metrics = sac.update(*batch)
    assert set(metrics) == {"critic_loss", "q_mean", "actor_loss", "alpha", "entropy"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert sac.act(np.zeros(6, np.float32)).shape == (2,)
    assert all(t.device == CPU for t in tensors_in(sac.state_dict()))


def test_sac_initial_weights_do_not_depend_on_the_device_argument() -> None:
    a = SAC(6, 2, SACConfig(hidden_dim=16, hidden_layers=2), seed=3)
    b = SAC(6, 2, SACConfig(hidden_dim=16, hidden_layers=2), seed=3, device=torch.device("cpu"))
    for x, y in zip(a.actor.parameters(), b.actor.parameters(), strict=True):
        assert torch.equal(x, y)


def test_sac_refuses_cuda_without_a_gpu(no_gpu: None) -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        SAC(6, 2, SACConfig(hidden_dim=16, hidden_layers=2), device="cuda")


def test_replay_on_cpu_samples_there() -> None:
    rb = ReplayBuffer(3, 1, 10, seed=0, device="cpu")
    for i in range(5):
        rb.add(np.full(3, i, np.float32), np.zeros(1), float(i), np.full(3, i + 1, np.float32), False)
    assert rb.device == CPU and all(t.device == CPU for t in rb.sample(4))
    rb.relabel(lambda x: x.sum(1))
    assert torch.equal(rb.reward[:5], torch.tensor([3.0, 6, 9, 12, 15]))
    assert all(t.device == CPU for t in tensors_in(rb.state_dict()))


def test_replay_relabel_is_all_or_nothing_with_one_check() -> None:
    rb = ReplayBuffer(2, 1, 10, seed=0)
    for i in range(6):
        rb.add(np.zeros(2), np.zeros(1), 1.0, np.full(2, i, np.float32), False)

    def bad_last_chunk(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, 0] == 5, torch.tensor(float("nan")), x[:, 0])

    with pytest.raises(ValueError, match="NaN/inf while relabelling"):
        rb.relabel(bad_last_chunk, batch=2)
    assert torch.equal(rb.reward[:6], torch.ones(6))


def _train_ensemble(model: RewardEnsemble, obs_dim: int) -> None:
    from ros2_erl_vlm.core.rating.dataset import DatasetSpec, RatingDataset
    from ros2_erl_vlm.core.rating.rater import RatingResult

    ds = RatingDataset(DatasetSpec(3, "state", (1, obs_dim)))
    rng = np.random.default_rng(0)
    for _ in range(30):
        x = rng.normal(size=(1, obs_dim)).astype(np.float32)
        ds.add(x, RatingResult("q", int(x.sum() > 0) + int(x.sum() > 1), 3, "synthetic"))
    model.train_on(ds, rng, epochs=2)


def test_ensemble_on_cpu_trains_predicts_and_saves_cputensors_in() -> None:
    model = RewardEnsemble(RewardModelConfig(ensemble_size=2, hidden_dim=16, hidden_layers=2),
                           obs_dim=4, seed=0, device="cpu")
    assert model.device == CPU and all(p.device == CPU for p in model.members.parameters())
    _train_ensemble(model, 4)
    assert model.version == 1
    out = model.predict(np.zeros((5, 4), np.float32))
    assert out.shape == (5,) and out.device == CPU
    assert model.norm_stats.device == CPU and model.input_stats is not None
    assert all(t.device == CPU for t in tensors_in(model.state_dict()))
    copy = RewardEnsemble.from_bytes(model.to_bytes(), device="cpu")
    assert torch.allclose(copy.predict(np.ones((3, 4), np.float32)), model.predict(np.ones((3, 4))))
    assert model.to("cpu") is model


def test_ensemble_refuses_cuda_without_a_gpu(no_gpu: None) -> None:
    cfg = RewardModelConfig(ensemble_size=1, hidden_dim=8, hidden_layers=1)
    with pytest.raises(ValueError, match="CUDA is not available"):
        RewardEnsemble(cfg, obs_dim=4, device="cuda")
    blob = RewardEnsemble(cfg, obs_dim=4).to_bytes()
    with pytest.raises(ValueError, match="CUDA is not available"):  # not "cannot decode"
        RewardEnsemble.from_bytes(blob, device="cuda")


def test_image_cnn_on_cpu() -> None:
    model = RewardEnsemble(RewardModelConfig(input_kind="image", ensemble_size=1, image_size=64),
                           device="cpu")
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    assert model.predict(frames).device == CPU
    assert all(p.device == CPU for p in model.members.parameters())


def test_online_agent_on_auto_is_on_the_cpu_here(no_gpu: None) -> None:
    cfg = LoopConfig(num_seed_steps=2, replay_capacity=50)
    cfg.sac.batch_size, cfg.sac.hidden_dim, cfg.sac.hidden_layers = 8, 16, 1
    agent = OnlineAgent(cfg, 4, 2)
    assert agent.device == CPU and agent.sac.device == CPU and agent.replay.device == CPU
    model = RewardEnsemble(RewardModelConfig(ensemble_size=1, hidden_dim=8, hidden_layers=1), obs_dim=4)
    for t in range(20):
        agent.observe(0, t, np.full(4, t, np.float32), np.zeros(2) if t else np.zeros(0))
    assert agent.set_reward_model(model, 1)["relabelled"] == 19
    assert agent.reward_model is model and model.device == CPU
    assert all(t.device == CPU for t in tensors_in(agent.state_dict()))


def test_learner_model_is_on_the_config_device() -> None:
    from ros2_erl_vlm.core.config import TaskInfo
    from ros2_erl_vlm.core.reward.reward_learner import RewardLearner

    learner = RewardLearner(LoopConfig(device="cpu"), 4, TaskInfo("t", "do it", ("Bad", "Average", "Good")),
                            None)
    assert learner.model.device == CPU


def test_transformers_rater_config_refuses_cuda_without_a_gpu(no_gpu: None, tmp_path: Path) -> None:
    from ros2_erl_vlm.raters.transformers_rater import TransformersRaterConfig

    assert TransformersRaterConfig().device == "auto"
    TransformersRaterConfig(model=str(tmp_path), device="cpu").validate()
    with pytest.raises(ValueError, match="transformers rater: device 'cuda': CUDA is not available"):
        TransformersRaterConfig(model=str(tmp_path), device="cuda").validate()
    with pytest.raises(ValueError, match="transformers rater: device must be"):
        TransformersRaterConfig(model=str(tmp_path), device="gpu").validate()


def test_graph_check_refuses_a_rater_config_asking_for_cuda_without_a_gpu(
        no_gpu: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ros2_erl_vlm.runner import main as runner_main

    model = tmp_path / "vlm"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = tmp_path / "vlm.yaml"
    cfg.write_text(f"backend: transformers\ntransformers:\n  model: {model}\n  device: cuda\n")
    assert runner_main(["--rater", "transformers", "--rater-config", str(cfg), "--check"]) == 2
    err = capsys.readouterr().err
    assert "vlm.yaml" in err and "transformers rater: device 'cuda': CUDA is not available" in err, err
    cfg.write_text(f"backend: transformers\ntransformers:\n  model: {model}\n  device: cpu\n")
    assert runner_main(["--rater", "transformers", "--rater-config", str(cfg), "--check"]) == 0


# -- what a GPU machine without the simulator can import ------------------------------------------
BLOCKER = """
import importlib.abc, sys
BLOCKED = ("mujoco", "metaworld", "rclpy", "gymnasium", "rosidl_runtime_py")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
        return None
sys.meta_path.insert(0, Block())
"""


def test_the_gpu_checks_imports_need_no_simulator_or_ros() -> None:
    """What ``bench/gpu_check.py`` imports (SAC, replay, reward model, relabelling, the rater and
    the random-weight VLMs) loads with mujoco, metaworld, gymnasium and rclpy unimportable."""
    code = BLOCKER + (
        "import ros2_erl_vlm.core.device, ros2_erl_vlm.core.rl.sac, ros2_erl_vlm.core.rl.replay_buffer\n"
        "import ros2_erl_vlm.core.reward.reward_model, ros2_erl_vlm.core.config\n"
        "import ros2_erl_vlm.raters.transformers_rater, ros2_erl_vlm.raters.random_weight_vlms\n"
        f"sys.path.insert(0, {str(REPO / 'bench')!r})\n"
        "import gpu_check\n"
        "print('imported')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0 and "imported" in out.stdout, out.stderr


def _gpu_check() -> Any:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "bench"))
    return gpu_check


def test_the_gpu_check_without_a_gpu_exits_2_saying_why(no_gpu: None, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu_check.json"
    assert _gpu_check().main(["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no GPU to check: device 'cuda': CUDA is not available" in err and "--cpu-only" in err
    assert not out.exists()


def test_the_gpu_check_runs_on_the_cpu(tmp_path: Path) -> None:
    import json

    out = tmp_path / "gpu_check.json"
    assert _gpu_check().main(["--cpu-only", "--only", "relabel", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["components"]["relabel_cpu"]
    assert result["mode"] == "cpu-only" and result["failed"] == []
    assert row["transitions"] == 20_000 and row["transitions_per_s"] > 0 and row["tensors_checked"] > 0
    assert result["versions"]["torch"] == torch.__version__  # (its imports: the subprocess test above)
