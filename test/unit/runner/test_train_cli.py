"""The training command's argument and config errors (exit 2, message names the problem)."""

from __future__ import annotations

import pytest

from ros2_erl_vlm.train import main


@pytest.mark.parametrize(("argv", "needle"), [
    (["--task", "drawer-close-v9"], "unknown task"),
    (["--num-classes", "7"], "num_classes"),
    (["--set", "sac.gama=0.9"], "unknown setting 'sac.gama'"),
    (["--set", "sac.batch_size=big"], "sac.batch_size must be an integer"),
    (["--set", "query_every"], "KEY=VALUE"),
    (["--resume"], "--resume needs --run-dir"),
])
def test_bad_settings_exit_2(argv: list[str], needle: str, capsys, tmp_path) -> None:
    code = main([*argv, "--no-progress", "--no-tensorboard"])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err, err


def test_bad_config_file(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reward: {loss: hinge}\n")
    assert main(["--config", str(cfg), "--no-progress"]) == 2
    assert "reward.loss" in capsys.readouterr().err
    cfg.write_text("[1, 2\n")
    assert main(["--config", str(cfg), "--no-progress"]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_short_real_run(tmp_path, capsys) -> None:
    run = tmp_path / "r"
    code = main(["--task", "reach-v3", "--steps", "700", "--run-dir", str(run), "--no-progress",
                 "--no-tensorboard", "--rater", "oracle", "--label-noise", "0.2", "--set", "num_seed_steps=200",
                 "--set", "num_unsup_steps=100", "--set", "query_every=200", "--set", "sac.batch_size=32",
                 "--set", "eval_every=700", "--set", "eval_episodes=1"])
    assert code == 0
    assert (run / "summary.json").exists() and (run / "ratings.erlr").stat().st_size > 0
    assert main(["--task", "reach-v3", "--run-dir", str(run), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    # A resumed run continues the same experiment: other settings are refused, naming each one.
    assert main(["--task", "reach-v3", "--steps", "900", "--run-dir", str(run), "--resume", "--no-progress",
                 "--rater", "oracle", "--label-noise", "0.3", "--set", "num_seed_steps=200", "--set", "num_unsup_steps=100",
                 "--set", "query_every=200", "--set", "sac.batch_size=32", "--set", "eval_every=700",
                 "--set", "eval_episodes=1"]) == 2
    err = capsys.readouterr().err
    assert "label_noise: 0.2 (now 0.3)" in err and "total_steps" not in err, err


def test_rater_flags_are_checked(tmp_path, capsys) -> None:
    cfg = tmp_path / "rater.yaml"
    cfg.write_text("model: /nowhere\n")
    assert main(["--rater", "oracle", "--rater-config", str(cfg), "--no-progress",
                 "--run-dir", str(tmp_path / "a")]) == 2
    assert "--rater-config is for VLM backends" in capsys.readouterr().err
    cfg.write_text("model: [1, 2\n")
    assert main(["--rater", "transformers", "--rater-config", str(cfg), "--no-progress",
                 "--run-dir", str(tmp_path / "b")]) == 2
    assert "cannot read rater config" in capsys.readouterr().err


def test_a_vlm_rater_in_process_rates_the_task_cameras_frames(tmp_path) -> None:
    """The in-process loop with a real (tiny, random-weight) transformers VLM and the default
    state reward model: the frames are rendered for the rater, every query gets an answer."""
    from ros2_erl_vlm.core.rating.dataset import read_ratings
    from ros2_erl_vlm.raters.random_weight_vlms import BUILDERS, save_vlm

    model, processor = BUILDERS["idefics3"]()
    path = save_vlm(model, processor, tmp_path / "tiny-idefics3")
    cfg = tmp_path / "rater.yaml"
    cfg.write_text(f"model: {path}\ndtype: float32\nmin_class_mass: 0.0\n")  # random weights
    run = tmp_path / "r"
    code = main(["--task", "reach-v3", "--steps", "850", "--run-dir", str(run), "--no-progress",
                 "--no-tensorboard", "--rater", "transformers", "--rater-config", str(cfg),
                 "--set", "num_seed_steps=300", "--set", "num_unsup_steps=250", "--set", "query_every=250",
                 "--set", "queries_per_round=6", "--set", "sac.batch_size=32", "--set", "eval_every=850",
                 "--set", "eval_episodes=1", "--set", "sac.hidden_dim=32", "--set", "reward.hidden_dim=32"])
    assert code == 0
    records = read_ratings(run / "ratings.erlr")
    assert len(records) == 12  # rounds at 550 and 800 steps (the first 500-step episode ends at 500)
    assert all(r["backend"] == "transformers:tiny-idefics3" for r in records), records[0]
    assert all(r["label"] is not None for r in records), [r["abstain_reason"] for r in records]


def test_resume_accepts_a_setting_added_later_only_at_its_default(tmp_path) -> None:
    """A run started before ``reward.output_norm`` existed resumes while the setting keeps its
    default (what the run ran with); any other value is a different experiment."""
    import json

    from ros2_erl_vlm.train import (
        RUN_SETTINGS_FILE,
        ConfigError,
        build_parser,
        check_resume,
        make_config,
        run_settings,
    )

    args = build_parser().parse_args(["--task", "reach-v3"])
    settings = run_settings(args, make_config(args, 3))
    old = {k: v for k, v in settings.items() if k != "loop.reward.output_norm"}
    (tmp_path / RUN_SETTINGS_FILE).write_text(json.dumps(old))
    check_resume(tmp_path, settings)
    with pytest.raises(ConfigError, match=r"loop.reward.output_norm: None \(now 'none'\)"):
        check_resume(tmp_path, {**settings, "loop.reward.output_norm": "none"})  # not the default


SMALL = ["--task", "reach-v3", "--no-progress", "--no-tensorboard", "--set", "num_seed_steps=200",
         "--set", "num_unsup_steps=100", "--set", "query_every=200", "--set", "sac.batch_size=32",
         "--set", "sac.hidden_dim=32", "--set", "reward.hidden_dim=32", "--set", "eval_episodes=0"]


def test_damaged_run_files_are_a_clear_error_and_left_as_they_are(tmp_path, capsys) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    assert main([*SMALL, "--run-dir", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "truncated or corrupt" in err, err
    assert (run / "checkpoint.pt").read_bytes() == b"PK\x03\x04 not really a checkpoint"
    # A directory holding only an earlier run's ratings is a run too: never silently adopted.
    other = tmp_path / "o"
    other.mkdir()
    (other / "ratings.erlr").write_bytes(b"x")
    assert main([*SMALL, "--run-dir", str(other)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_a_bad_env_step_saves_everything_before_it_and_the_run_resumes(tmp_path, capsys, monkeypatch) -> None:
    import numpy as np

    import ros2_erl_vlm.envs as envs
    from ros2_erl_vlm.core.checkpoint import load_checkpoint

    real_make_env = envs.make_env
    made = []

    class BreaksAt450:
        def __init__(self, env) -> None:
            self.env, self.steps = env, 0
            self.observation_space, self.action_space = env.observation_space, env.action_space

        def __getattr__(self, name):
            return getattr(self.env, name)

        def step(self, action):
            obs, r, te, tr, info = self.env.step(action)
            self.steps += 1
            if self.steps > 450:
                obs = np.full_like(obs, np.nan)
            return obs, r, te, tr, info

    def make_env(*args, **kwargs):
        env = real_make_env(*args, **kwargs)
        made.append(env)
        return BreaksAt450(env) if len(made) == 1 else env  # the training env, not the eval env

    monkeypatch.setattr(envs, "make_env", make_env)
    run = tmp_path / "r"
    assert main([*SMALL, "--steps", "600", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "non-finite observation at step 450" in err and "checkpoint saved at step 450" in err, err
    assert load_checkpoint(run / "checkpoint.pt")["agent"]["step"] == 450
    monkeypatch.setattr(envs, "make_env", real_make_env)
    assert main([*SMALL, "--steps", "1000", "--run-dir", str(run), "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["agent"]["step"] == 1000
    # the broken episode is dropped; the resumed run starts a new one (500 steps) at step 450
    steps = [int(line.split(",")[0]) for line in (run / "train.csv").read_text().splitlines()[1:]]
    assert steps == [950]


def test_ctrl_c_stops_between_steps_and_checkpoints(tmp_path) -> None:
    """The training command as users run it, interrupted with SIGINT: exit 130, a checkpoint at
    the step it reports, and the run resumes from there."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    from ros2_erl_vlm.core.checkpoint import load_checkpoint

    run = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "ros2_erl_vlm.train", *SMALL, "--steps", "100000",
                             "--run-dir", str(run)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (run / "reward.csv").exists() and time.monotonic() < deadline:  # past a rating round
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    m = re.search(r"interrupted at step (\d+); checkpoint saved", err)
    assert m, err
    step = int(m.group(1))
    assert load_checkpoint(run / "checkpoint.pt")["agent"]["step"] == step > 300
    assert main([*SMALL, "--steps", str(step + 100), "--run-dir", str(run), "--resume"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["agent"]["step"] == step + 100


def test_a_second_ctrl_c_a_second_later_stops_at_once() -> None:
    import signal
    import time

    from ros2_erl_vlm.stop_signals import stop_on_ctrl_c

    class Trainer:
        stop_requested = False

    t = Trainer()
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_on_ctrl_c(t):
        signal.raise_signal(signal.SIGINT)
        assert t.stop_requested  # the first one only asks for a stop
        signal.raise_signal(signal.SIGINT)  # the same Ctrl-C forwarded twice: still one request
        time.sleep(1.05)
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_both_starters_take_total_steps_with_steps_as_an_alias() -> None:
    from ros2_erl_vlm.graph import load_graph
    from ros2_erl_vlm.runner import build_parser as runner_parser
    from ros2_erl_vlm.train import build_parser

    for flag in ("--total-steps", "--steps"):
        assert build_parser().parse_args([flag, "1234"]).steps == 1234
        assert runner_parser(load_graph()).parse_args([flag, "1234"]).total_steps == "1234"


def test_the_graph_and_the_in_process_runner_share_the_short_run() -> None:
    """The LoopConfig the graph's learning nodes build from config/train_sim.yaml is the one the
    in-process command builds with no flags (same task, so the same class count)."""
    import dataclasses

    from ros2_erl_vlm.graph import node_params_from_file, read_params_file
    from ros2_erl_vlm.paths import config_dir
    from ros2_erl_vlm.ros.node_params import NODE_PARAMS, loop_config
    from ros2_erl_vlm.train import build_parser, make_config

    sections = read_params_file(config_dir() / "train_sim.yaml")
    values: dict = {}
    for node in ("reward_learner", "sac_agent"):
        declared = {s.name: s.default for s in NODE_PARAMS[node]}
        values.update({**declared, **node_params_from_file(sections, f"/{node}")})
    graph = dataclasses.asdict(loop_config(values, num_classes=3))
    in_process = dataclasses.asdict(make_config(build_parser().parse_args([]), 3))
    assert graph == in_process
    assert in_process["eval_every"] == 10_000 and in_process["total_steps"] == 30_000


def test_a_run_directory_in_the_old_checkpoint_format_is_refused_and_left_as_it_is(tmp_path, capsys) -> None:
    """Checkpoints before format v2 pickled numpy objects (loading one could run code): refused
    with a message saying so, not converted."""
    import numpy as np
    import torch

    run = tmp_path / "r"
    run.mkdir()
    torch.save({"format": "erl_vlm.checkpoint.v1", "replay": np.zeros(3)}, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    assert main([*SMALL, "--run-dir", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "older erl_vlm release" in err, err
    assert "start a new run directory" in err, err
    assert (run / "checkpoint.pt").read_bytes() == before


def test_a_short_run_with_the_simulated_vlm_rater(tmp_path) -> None:
    """--rater simulated_vlm rates this run's simulator truth (no frames, no --rater-config)."""
    from ros2_erl_vlm.core.rating.dataset import read_ratings

    run = tmp_path / "r"
    assert main([*SMALL, "--steps", "600", "--rater", "simulated_vlm", "--run-dir", str(run)]) == 0
    records = read_ratings(run / "ratings.erlr")
    assert records
    assert {r["backend"] for r in records} == {"simulated_vlm"}


def test_label_noise_is_the_oracle_s(capsys) -> None:
    assert main([*SMALL, "--rater", "simulated_vlm", "--label-noise", "0.2"]) == 2
    assert "--label-noise is the oracle's" in capsys.readouterr().err
