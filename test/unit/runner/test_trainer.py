"""The in-process ERL-VLM loop on a real MetaWorld task (reach-v3, tiny budget)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ros2_erl_vlm.core.config import LoopConfig, TaskInfo
from ros2_erl_vlm.core.loop import EnvDataError, ErlVlmTrainer
from ros2_erl_vlm.core.rating.dataset import read_ratings
from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
from ros2_erl_vlm.core.rl.sac import SACConfig
from ros2_erl_vlm.envs import load_task, make_env
from ros2_erl_vlm.raters.oracle import OracleConfig, OracleRater


def _config(**kw) -> LoopConfig:
    base = dict(total_steps=1200, seed=0, num_classes=3, num_seed_steps=300, num_unsup_steps=200,
                query_every=300, queries_per_round=20, eval_every=600, eval_episodes=1,
                checkpoint_every=600, replay_capacity=5000,
                sac=SACConfig(hidden_dim=32, hidden_layers=2, batch_size=32),
                reward=RewardModelConfig(hidden_dim=32, epochs=2))
    base.update(kw)
    return LoopConfig(**base)


def _task() -> tuple:
    spec = load_task("reach-v3")
    small = spec.__class__(**{**spec.__dict__, "max_episode_steps": 150})
    return small, TaskInfo(small.name, small.instruction, small.class_names(3))


def test_loop_queries_trains_relabels_and_resumes(tmp_path) -> None:
    spec, info = _task()
    rater = OracleRater(spec.bin_truth, OracleConfig(noise=0.2), seed=0)
    run = tmp_path / "run"
    trainer = ErlVlmTrainer(_config(), make_env(spec, seed=0, render=False), rater, info, run_dir=run,
                            eval_env=make_env(spec, seed=1, render=False), tensorboard=False,
                            bin_truth=spec.bin_truth)
    summary = trainer.run()
    assert summary["steps"] == 1200
    assert summary["reward_rounds"] >= 3
    records = read_ratings(run / "ratings.erlr")
    assert summary["ratings"] == len(records) == 20 * summary["reward_rounds"]
    # Each record carries the rated step's simulator truth; the noiseless class is the oracle's.
    for rec in records:
        truth_class = spec.bin_truth(rec["truth_progress"], rec["truth_success"], 3)
        assert rec["rationale"] == f"truth class {truth_class}"
        assert isinstance(rec["truth_reward"], float)
    assert trainer.learner.model.version == summary["reward_rounds"]
    # Every round's quality against truth, as logged, is what its records say.
    rounds = list(csv.DictReader(open(run / "reward.csv")))
    assert len(rounds) == summary["reward_rounds"]
    for row in rounds:
        mine = [r for r in records if r["env_step"] == int(row["step"])]
        truth = np.array([spec.bin_truth(r["truth_progress"], r["truth_success"], 3) for r in mine])
        labels = np.array([r["label"] for r in mine])
        assert float(row["truth_agreement"]) == pytest.approx(np.mean(truth == labels))
        assert float(row["truth_above_bottom"]) == pytest.approx(np.mean(truth > 0))
    # relabelled: stored rewards equal the current ensemble mean on next_obs
    expect = trainer.learner.model.predict(trainer.agent.replay.next_obs[: len(trainer.agent.replay)])
    stored = trainer.agent.replay.reward[: len(trainer.agent.replay)]
    last_round_step = trainer.learner.schedule.last_query_step
    assert np.allclose(stored[:last_round_step].numpy(), expect[:last_round_step].numpy(), atol=1e-5)
    rows = list(csv.DictReader(open(run / "eval.csv")))
    assert [int(r["step"]) for r in rows] == [600, 1200]
    assert (run / "summary.json").exists() and (run / "checkpoint.pt").exists()

    # Resume with a bigger budget: ratings are kept, counters continue.
    cfg2 = _config(total_steps=1500)
    t2 = ErlVlmTrainer(cfg2, make_env(spec, seed=0, render=False), rater, info, run_dir=run,
                       tensorboard=False)
    t2.load(run / "checkpoint.pt")
    assert t2.step == 1200 and len(t2.learner.dataset) == summary["ratings"]
    out = t2.run()
    assert out["steps"] == 1500 and out["ratings"] == summary["ratings"] + 20


def test_true_reward_baseline_asks_no_rater() -> None:
    spec, info = _task()
    cfg = _config(total_steps=500, reward_source="true", num_unsup_steps=0)
    summary = ErlVlmTrainer(cfg, make_env(spec, seed=0, render=False), None, info).run()
    assert summary["ratings"] == 0 and summary["steps"] == 500


class _BadEnv:
    """reach-v3 that returns a non-finite observation or true reward from step ``at`` on."""

    def __init__(self, spec, what: str, at: int = 0) -> None:
        self.inner = make_env(spec, seed=0, render=False)
        self.observation_space, self.action_space = self.inner.observation_space, self.inner.action_space
        self.what, self.at, self.steps = what, at, 0

    def reset(self, *, seed=None):
        return self.inner.reset(seed=seed)

    def step(self, a):
        obs, r, te, tr, info = self.inner.step(a)
        self.steps += 1
        if self.steps > self.at:
            if self.what == "obs":
                obs[0] = np.nan
            else:
                info = {**info, "true_reward": float("inf")}
        return obs, r, te, tr, info

    def render(self):
        return None


@pytest.mark.parametrize(("what", "needle"), [("obs", "non-finite observation at step 5"),
                                              ("true_reward", "non-finite reward at step 5")])
def test_non_finite_env_data_is_a_clear_error_and_nothing_is_stored(what: str, needle: str) -> None:
    spec, info = _task()
    trainer = ErlVlmTrainer(_config(total_steps=10), _BadEnv(spec, what, at=5), OracleRater(spec.bin_truth), info)
    with pytest.raises(EnvDataError, match=needle):
        trainer.run()
    assert trainer.step == 5 and len(trainer.agent.replay) == 5  # the bad transition was not stored


def test_a_requested_stop_ends_between_steps_with_a_checkpoint(tmp_path) -> None:
    spec, info = _task()
    run = tmp_path / "run"
    trainer = ErlVlmTrainer(_config(), make_env(spec, seed=0, render=False), OracleRater(spec.bin_truth), info,
                            run_dir=run, tensorboard=False)

    def progress(step: int, total: int, post: dict) -> None:
        if step == 700:  # after the first rating round, mid-run
            trainer.stop_requested = True

    trainer.progress = progress
    out = trainer.run()
    assert out == {"interrupted": True, "steps": 700}
    t2 = ErlVlmTrainer(_config(), make_env(spec, seed=0, render=False), OracleRater(spec.bin_truth), info,
                       run_dir=run, tensorboard=False)
    t2.load(run / "checkpoint.pt")
    assert t2.step == 700 and len(t2.agent.replay) == 700 and len(t2.learner.dataset) == len(trainer.learner.dataset) > 0
    assert t2.learner.model.version == trainer.learner.model.version


def test_config_validation_names_field() -> None:
    with pytest.raises(ValueError, match="query_strategy"):
        _config(query_strategy="random").validate()
    with pytest.raises(ValueError, match="num_classes"):
        _config(num_classes=7).validate()


class _SilentFirstRound:
    """The oracle, except that every query of its first call is an abstention (a VLM endpoint
    that was down for the first round)."""

    backend_id = "oracle"

    def __init__(self, inner: OracleRater) -> None:
        self.inner, self.calls = inner, 0

    def rate(self, queries):
        from ros2_erl_vlm.core.rating.rater import RatingResult

        self.calls += 1
        if self.calls == 1:
            return [RatingResult.abstain(q, self.backend_id, "timeout: endpoint down") for q in queries]
        return self.inner.rate(queries)


def test_critic_reset_waits_for_the_first_real_reward_model(tmp_path, monkeypatch) -> None:
    """PEBBLE resets the critic on the first learned reward: a round with only abstentions yields
    no model, so the agent keeps exploring and the reset comes with the first real model."""
    spec, info = _task()
    rater = _SilentFirstRound(OracleRater(spec.bin_truth, OracleConfig(), seed=0))
    trainer = ErlVlmTrainer(_config(eval_episodes=0), make_env(spec, seed=0, render=False), rater, info,
                            run_dir=tmp_path / "run", tensorboard=False)
    resets: list[int] = []
    real_reset = trainer.agent.sac.reset_critic
    monkeypatch.setattr(trainer.agent.sac, "reset_critic", lambda: (resets.append(trainer.step), real_reset()))
    trainer.run()
    rows = list(csv.DictReader(open(tmp_path / "run" / "reward.csv")))
    assert [int(r["model_version"]) for r in rows][:2] == [0, 1]  # round 1: abstentions only
    assert resets == [int(rows[1]["step"])]  # exactly one reset, with the first real model
