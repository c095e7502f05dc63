"""The graph and the in-process loop take the same seeds from the same functions (core/seeds.py)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from ros2_erl_vlm import train
from ros2_erl_vlm.core import seeds
from ros2_erl_vlm.core.config import LoopConfig, TaskInfo
from ros2_erl_vlm.core.loop import ErlVlmTrainer
from ros2_erl_vlm.core.reward.reward_learner import RewardLearner
from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
from ros2_erl_vlm.core.rl.online_agent import OnlineAgent
from ros2_erl_vlm.core.rl.sac import SACConfig
from ros2_erl_vlm.envs import load_task
from ros2_erl_vlm.raters import make_rater

ROOT = Path(__file__).resolve().parents[3]
OBS, ACT = 6, 2
TASK = TaskInfo("t", "do it", ("bad", "average", "good"))


class _Env:
    """Just enough env for constructing the loop."""

    observation_space = spaces.Box(-1.0, 1.0, (OBS,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (ACT,), np.float32)


def _cfg(seed: int) -> LoopConfig:
    return LoopConfig(seed=seed, num_seed_steps=10, num_unsup_steps=10, replay_capacity=100,
                      sac=SACConfig(hidden_dim=16, hidden_layers=1, batch_size=16),
                      reward=RewardModelConfig(hidden_dim=8, hidden_layers=1))


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def halves(tmp_path):
    """The in-process loop's halves and the graph's (built as sac_agent and reward_learner do)."""
    cfg = _cfg(seed=5)
    loop = ErlVlmTrainer(cfg, _Env(), rater=object(), task=TASK, run_dir=tmp_path / "loop",
                         tensorboard=False)
    agent = OnlineAgent(cfg, OBS, ACT)
    learner = RewardLearner(cfg, OBS, TASK, tmp_path / "graph",
                            checkpoint_path=tmp_path / "graph" / "checkpoint.pt")
    yield loop, agent, learner
    loop.close()
    learner.close()


def test_the_policy_starts_from_the_same_weights_in_both_starters(halves) -> None:
    loop, agent, _ = halves
    assert _same_weights(loop.agent.sac.actor.state_dict(), agent.sac.actor.state_dict())


def test_the_critic_starts_from_the_same_weights_in_both_starters(halves) -> None:
    loop, agent, _ = halves
    assert _same_weights(loop.agent.sac.critic.state_dict(), agent.sac.critic.state_dict())


def test_the_reward_ensemble_starts_from_the_same_weights_in_both_starters(halves) -> None:
    loop, _, learner = halves
    assert loop.learner is not None
    assert _same_weights(loop.learner.model.members.state_dict(), learner.model.members.state_dict())


def test_the_agent_generator_is_seeded_alike_in_both_starters(halves) -> None:
    loop, agent, _ = halves
    assert loop.agent.rng.bit_generator.state == agent.rng.bit_generator.state


def test_in_one_process_the_learner_shares_the_agent_generator(halves) -> None:
    loop, _, _ = halves
    assert loop.learner is not None
    assert loop.learner.rng is loop.agent.rng


def test_a_separate_learner_draws_from_its_own_seed(halves) -> None:
    _, agent, learner = halves
    assert learner.rng.bit_generator.state == seeds.learner_rng(5).bit_generator.state
    assert learner.rng.bit_generator.state != agent.rng.bit_generator.state


def test_both_starters_build_the_same_oracle_noise_stream() -> None:
    """train.make_rater (in-process) and the vlm_rater node's settings seed the oracle alike."""
    from ros2_erl_vlm.ros.rater_params import rater_settings

    task = load_task("reach-v3")
    args = argparse.Namespace(rater="oracle", rater_config=None, label_noise=0.2, noise_mode="symmetric")
    in_process = train.make_rater(args, task, seed=4)
    params = {"rater.config_file": "", "rater.backend": "oracle", "task": "reach-v3", "rater.noise": 0.2,
              "rater.noise_mode": "symmetric", "rater.abstain_rate": 0.0, "seed": 4}
    graph = make_rater(rater_settings(params))
    assert in_process.rng.bit_generator.state == graph.rng.bit_generator.state


def test_both_starters_build_the_same_simulated_vlm() -> None:
    """The simulated VLM's answers hash its seed: both starters give it the same one."""
    from ros2_erl_vlm.ros.rater_params import rater_settings

    task = load_task("reach-v3")
    args = argparse.Namespace(rater="simulated_vlm", rater_config=None, label_noise=0.0,
                              noise_mode="symmetric")
    in_process = train.make_rater(args, task, seed=4)
    params = {"rater.config_file": "", "rater.backend": "simulated_vlm", "task": "reach-v3",
              "rater.noise": 0.0, "rater.noise_mode": "symmetric", "rater.abstain_rate": 0.0, "seed": 4}
    graph = make_rater(rater_settings(params))
    assert in_process.settings == graph.settings  # task, seed and every error setting


def test_the_sim_bridge_resets_episodes_with_the_shared_episode_seed() -> None:
    from ros2_erl_vlm.nodes import sim_bridge

    assert sim_bridge.episode_seed is seeds.episode_seed


def test_episode_seeds_of_different_runs_do_not_overlap() -> None:
    run0 = {seeds.episode_seed(0, e) for e in range(2000)}
    run1 = {seeds.episode_seed(1, e) for e in range(2000)}
    assert run0.isdisjoint(run1)


def test_no_seed_is_derived_by_hand_outside_core_seeds() -> None:
    """Offsets like ``seed + 7`` live in core/seeds.py only (the starters once copied them; the
    benchmarks' own evaluation protocols seed their scripted episodes themselves)."""
    pattern = re.compile(r"seed\w*\)?\s*\+\s*\d")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "ros2_erl_vlm").rglob("*.py"))
                 if p.name != "seeds.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line.split("#")[0])]
    assert offenders == []
