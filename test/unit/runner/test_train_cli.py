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
                 "--no-tensorboard", "--label-noise", "0.2", "--set", "num_seed_steps=200",
                 "--set", "num_unsup_steps=100", "--set", "query_every=200", "--set", "sac.batch_size=32",
                 "--set", "eval_every=700", "--set", "eval_episodes=1"])
    assert code == 0
    assert (run / "summary.json").exists() and (run / "ratings.erlr").stat().st_size > 0
    assert main(["--task", "reach-v3", "--run-dir", str(run), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err
