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
    # A resumed run continues the same experiment: other settings are refused, naming each one.
    assert main(["--task", "reach-v3", "--steps", "900", "--run-dir", str(run), "--resume", "--no-progress",
                 "--label-noise", "0.3", "--set", "num_seed_steps=200", "--set", "num_unsup_steps=100",
                 "--set", "query_every=200", "--set", "sac.batch_size=32", "--set", "eval_every=700",
                 "--set", "eval_episodes=1"]) == 2
    err = capsys.readouterr().err
    assert "label_noise: 0.2 (now 0.3)" in err and "total_steps" not in err, err


def test_rater_flags_are_checked(tmp_path, capsys) -> None:
    cfg = tmp_path / "rater.yaml"
    cfg.write_text("model: /nowhere\n")
    assert main(["--rater-config", str(cfg), "--no-progress", "--run-dir", str(tmp_path / "a")]) == 2
    assert "--rater-config is for VLM backends" in capsys.readouterr().err
    cfg.write_text("model: [1, 2\n")
    assert main(["--rater", "transformers", "--rater-config", str(cfg), "--no-progress",
                 "--run-dir", str(tmp_path / "b")]) == 2
    assert "cannot read rater config" in capsys.readouterr().err


def test_a_vlm_rater_in_process_rates_the_task_cameras_frames(tmp_path) -> None:
    """The in-process loop with a real (tiny, random-weight) transformers VLM and the default
    state reward model: the frames are rendered for the rater, every query gets an answer."""
    from ros2_erl_vlm.core.ratings import read_ratings
    from ros2_erl_vlm.raters.synthetic_vlm import BUILDERS, save_vlm

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
    with pytest.raises(ConfigError, match=r"loop.reward.output_norm: None \(now 'rated'\)"):
        check_resume(tmp_path, {**settings, "loop.reward.output_norm": "rated"})
