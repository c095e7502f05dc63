"""The offline path end to end, tiny: scripted reach-v3 demonstrations recorded to MCAP, exported,
rated by the rating CLI (the simulated VLM, from the truth the bags recorded), the ERL-VLM reward
learned from those ratings on the frames, IQL trained a few hundred steps on it, and the
checkpoint deployed through sim_bridge + deploy_agent as processes over DDS."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from pathlib import Path

import pytest
import yaml

from ros2_erl_vlm.graph import load_graph
from ros2_erl_vlm.offline.reward import main as learn_reward
from ros2_erl_vlm.offline.train import main as train
from ros2_erl_vlm.paths import config_dir
from ros2_erl_vlm.raters.cli import main as rate
from ros2_erl_vlm.recording.export import export
from ros2_erl_vlm.recording.scripted import ScriptedConfig, record_scripted
from ros2_erl_vlm.runner import GraphProcesses

pytestmark = [pytest.mark.ros, pytest.mark.integration, pytest.mark.render]

TASK = "reach-v3"
STEPS = 20
EPISODES = 3


def _quiet(fn, argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = fn(argv)
    return code, buf.getvalue()


def _deploy_params(path: Path) -> Path:
    """The shipped params with short episodes, small camera frames and two deployed episodes."""
    data = yaml.safe_load((config_dir() / "train_sim.yaml").read_text())
    for key, values in {"/**": {"max_episode_steps": STEPS, "status_period_s": 0.5},
                        "/**/sim_bridge": {"camera.image_size": 64, "action_timeout_s": 1.0},
                        "/**/deploy_agent": {"episodes": 2}}.items():
        data.setdefault(key, {"ros__parameters": {}})["ros__parameters"].update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_record_rate_learn_train_deploy(tmp_path: Path) -> None:
    bags, npz = tmp_path / "bags", tmp_path / "data" / "reach.npz"
    record_scripted(ScriptedConfig(task=TASK, out=bags, episodes=EPISODES, noise=0.3, layout="stock", seed=0,
                                   max_steps=STEPS, image_size=48), log=lambda _line: None)
    assert export(bags, npz)["transitions"] == EPISODES * STEPS

    # every frame rated by the simulated VLM, from the simulator truth the bags recorded
    code, out = _quiet(rate, [str(bags), "--out", str(tmp_path / "ratings"), "--task", TASK,
                              "--backend", "simulated_vlm"])
    assert code == 0, out
    assert json.loads(out)["queries"] == EPISODES * (STEPS + 1)
    with open(tmp_path / "ratings" / "ratings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["label"] != "" and r["abstain_reason"] == "" for r in rows)
    assert rows[5]["query_id"] == "episode_000000:5" and rows[5]["steps"] == "5"

    # the reward, learned on the frames; step 0 (the reset frame) belongs to no transition
    code, out = _quiet(learn_reward, ["--data", str(npz), "--ratings", str(tmp_path / "ratings"),
                                      "--out", str(tmp_path / "reward"), "--image-size", "48",
                                      "--ensemble-size", "2", "--epochs", "5", "--batch-size", "16"])
    assert code == 0, out
    summary = json.loads(out)
    assert summary["ratings_used"] == EPISODES * STEPS and summary["reset_frame_ratings_skipped"] == EPISODES
    assert sum(summary["class_counts"]) == EPISODES * STEPS
    assert summary["learned_reward"]["rank_corr_with_dense_reward"] is not None

    # IQL on the relabelled data, a few hundred steps
    run = tmp_path / "iql"
    code, out = _quiet(train, ["--data", str(npz), "--method", "iql", "--reward", "learned", "--reward-model",
                               str(tmp_path / "reward" / "reward_model.pt"), "--out", str(run), "--steps", "300",
                               "--set", "hidden_dim=32", "--set", "batch_size=32", "--log-every", "100",
                               "--checkpoint-every", "300", "--no-tensorboard", "--no-progress"])
    assert code == 0, out
    trained = json.loads((run / "summary.json").read_text())
    assert trained["steps"] == 300 and trained["rewards"]["reward"] == "learned"

    # deployed through the simulator bridge, as processes over DDS
    graph = load_graph()
    values = graph.resolve({"params_file": str(_deploy_params(tmp_path / "deploy.yaml")),
                            "run_dir": str(tmp_path / "deploy"), "checkpoint": str(run / "checkpoint.pt"),
                            "task": TASK, "layout": "stock", "namespace": "erl_offline_e2e"})
    log = tmp_path / "deploy.log"
    with log.open("w") as fh:
        procs = GraphProcesses(graph, values, out=fh)
        try:
            procs.start_all()
            assert sorted(procs.procs) == ["deploy_agent", "sim_bridge"]
            deadline = time.monotonic() + 150
            while ("deploy_agent", 0) not in procs.exited() and time.monotonic() < deadline:
                dead = [(n, c) for n, c in procs.exited() if c != 0]
                assert not dead, f"node(s) died {dead}\n{log.read_text()[-4000:]}"
                time.sleep(0.25)
            assert ("deploy_agent", 0) in procs.exited(), log.read_text()[-4000:]
        finally:
            procs.stop_all(grace_s=10.0)
    with open(tmp_path / "deploy" / "deploy_agent" / "deploy.csv", newline="") as fh:
        episodes = list(csv.DictReader(fh))
    assert [int(r["length"]) for r in episodes] == [STEPS, STEPS]
    assert all(float(r["true_return"]) > 0 for r in episodes)  # simulator truth is logged
    deployed = json.loads((tmp_path / "deploy" / "deploy_agent" / "summary.json").read_text())
    assert deployed["episodes"] == 2
