"""The scripted-expert recorder: short noisy reach-v3 episodes through the recorder's writer, the
same topics as the node's, reproducible actions, the simulator's success as the mark, bags never
overwritten; the recorded frames rated by the offline rating CLI and exported."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.recording.mcap_episode import RECORDED_TOPICS, read_episode
from ros2_erl_vlm.recording.scripted import MARK_SOURCE, ScriptedConfig, main, noise_rng, record_scripted

pytestmark = pytest.mark.render

STEPS = 15


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("demos") / "reach"
    cfg = ScriptedConfig(task="reach-v3", out=out, episodes=2, noise=0.3, layout="stock", seed=4,
                         max_steps=STEPS, image_size=32)
    return out, record_scripted(cfg, log=lambda _line: None)


def test_two_noisy_expert_episodes_are_recorded(demos: tuple[Path, list[dict[str, Any]]]) -> None:
    from rosbags.rosbag2 import Reader

    from ros2_erl_vlm.envs import expert_policy

    out, summaries = demos
    assert [s["episode"] for s in summaries] == [0, 1]
    policy = expert_policy("reach-v3")
    for e in (0, 1):
        rec = read_episode(out / f"episode_{e:06d}")
        with Reader(rec.path) as r:  # the node's topics, with the node's types
            assert {c.topic: c.msgtype for c in r.connections} == {f"/{k}": v for k, v in RECORDED_TOPICS.items()}
        assert rec.episode == e and rec.task == "reach-v3" and rec.meta["layout"] == "stock"
        assert rec.meta["source"] == "scripted" and rec.meta["expert"]["noise"] == 0.3
        assert [s.step for s in rec.steps] == list(range(STEPS + 1))
        assert sorted(rec.frames) == list(range(STEPS + 1))
        assert rec.frames[3].rgb().shape == (32, 32, 3)
        assert all(s.has_truth for s in rec.steps) and rec.steps[-1].truncated
        assert rec.steps[-1].truncation_reason == "time_limit"
        assert rec.interventions == [] and rec.safety_status == []
        # each applied action is the expert's action on the recorded state plus the episode's noise
        rng = noise_rng(4, e)
        for t, action in enumerate(rec.actions):
            want = np.clip(policy(rec.steps[t].state) + rng.normal(0.0, 0.3, 4), -1, 1).astype(np.float32)
            np.testing.assert_array_equal(action, want)
        # the mark is the simulator's success at any step
        assert rec.marked and rec.meta["mark_source"] == MARK_SOURCE
        assert rec.success == any(s.success for s in rec.steps) == summaries[e]["success"]
        assert rec.meta["true_return"] == pytest.approx(sum(s.true_reward for s in rec.steps[1:]), rel=1e-5)
    # stamps run on as sim_bridge's lock-step clock does (a reset adds one period)
    first, second = (read_episode(out / f"episode_{e:06d}").steps for e in (0, 1))
    assert second[0].stamp_ns - first[-1].stamp_ns == first[1].stamp_ns - first[0].stamp_ns == 12_500_000


def test_the_recorded_sim_state_re_renders_the_recorded_frame(demos: tuple[Path, list[dict[str, Any]]]) -> None:
    from ros2_erl_vlm.core.frames import FrameCodec
    from ros2_erl_vlm.core.seeds import episode_seed
    from ros2_erl_vlm.envs import make_env

    out, _ = demos
    rec = read_episode(out / "episode_000001")
    env = make_env("reach-v3", seed=4, render=True, image_size=32, layout="stock")
    try:
        assert all(s.sim_state.shape == (env.sim_state_size,) for s in rec.steps)
        assert not np.array_equal(rec.steps[0].sim_state, rec.steps[STEPS].sim_state)  # it moved
        for step in (0, 7, STEPS):
            env.reset(seed=episode_seed(4, 1))
            env.set_sim_state(rec.steps[step].sim_state)
            # exactly the recorded frame: its JPEG encoding is the recorded bytes
            assert FrameCodec("jpeg", 90).encode(env.render()) == rec.frames[step].data
    finally:
        env.close()


def test_an_existing_bag_stops_the_run_before_recording(demos: tuple[Path, list[dict[str, Any]]],
                                                        capsys: Any) -> None:
    out, _ = demos
    before = (out / "episode_000001" / "metadata.yaml").read_text()
    code = main(["--task", "reach-v3", "--episodes", "2", "--first-episode", "1", "--out", str(out)])
    assert code == 2
    assert "episode 1 (" in capsys.readouterr().err
    assert (out / "episode_000001" / "metadata.yaml").read_text() == before
    assert not (out / "episode_000002").exists()


def test_bad_options_exit_2(tmp_path: Path, capsys: Any) -> None:
    assert main(["--task", "reach-v3", "--noise", "-1", "--out", str(tmp_path)]) == 2
    assert "--noise must be" in capsys.readouterr().err


def test_the_rating_cli_rates_the_recorded_frames(demos: tuple[Path, list[dict[str, Any]]], tmp_path: Path,
                                                  capsys: Any, monkeypatch: Any) -> None:
    from ros2_erl_vlm.raters.cli import main as rate
    from ros2_erl_vlm.raters.random_weight_vlms import BUILDERS, save_vlm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out, _ = demos
    model, proc = BUILDERS["idefics3"]()
    ckpt = save_vlm(model, proc, tmp_path / "vlm")
    code = rate([str(out), "--out", str(tmp_path / "ratings"), "--task", "reach-v3", "--backend",
                 "transformers", "--set", f"model={ckpt}", "--set", "batch_size=8", "--set",
                 "min_class_mass=0", "--stride", "4"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["queries"] == 2 * 4  # steps 0, 4, 8, 12 of each
    rows = list(csv.DictReader(open(tmp_path / "ratings" / "ratings.csv", encoding="utf-8")))
    assert [r["query_id"] for r in rows] == [f"episode_{e:06d}:{s}" for e in (0, 1) for s in (0, 4, 8, 12)]
    assert all(r["label"] != "" for r in rows)  # rated, not abstained


def test_the_recorded_demonstrations_export(demos: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    from ros2_erl_vlm.recording.export import export

    out, summaries = demos
    summary = export(out, tmp_path / "reach.npz")
    assert summary["transitions"] == 2 * STEPS and summary["task"] == "reach-v3"
    with np.load(tmp_path / "reach.npz") as z:
        assert z["success"].tolist() == [s["success"] for s in summaries for _ in range(STEPS)]
        assert np.isfinite(z["rewards"]).all()
        assert (np.abs(z["actions"]) <= 1).all()
