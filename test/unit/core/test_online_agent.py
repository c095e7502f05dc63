"""The agent half of the loop, driven one observation at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.config import LoopConfig
from ros2_erl_vlm.core.rating.rater import SimTruth
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble, RewardModelConfig
from ros2_erl_vlm.core.rl.online_agent import OnlineAgent
from ros2_erl_vlm.core.rl.sac import SACConfig

OBS, ACT = 6, 2


def _agent(**kw) -> OnlineAgent:
    base = dict(num_seed_steps=10, num_unsup_steps=10, reset_updates=3, replay_capacity=200,
                sac=SACConfig(hidden_dim=16, hidden_layers=1, batch_size=16),
                reward=RewardModelConfig(hidden_dim=8, hidden_layers=1))
    base.update(kw)
    return OnlineAgent(LoopConfig(**base), OBS, ACT)


def _run_episode(agent: OnlineAgent, episode: int, length: int) -> list:
    rng = np.random.default_rng(episode)
    state = rng.normal(size=OBS)
    out = [agent.observe(episode, 0, state, [])]
    for t in range(1, length + 1):
        action = agent.act(state)
        agent.learn()
        state = rng.normal(size=OBS)
        out.append(agent.observe(episode, t, state, action, truncated=t == length,
                                 truth=SimTruth(1.0, t == length, 0.5)))
    return out


def test_transitions_episodes_and_phases() -> None:
    a = _agent()
    seen = _run_episode(a, 0, 12)
    assert [s.kind for s in seen[:2]] == ["start", "transition"]
    assert a.step == 12 and len(a.replay) == 12
    end = seen[-1].episode_end
    assert end is not None and end.length == 12 and end.true_return == 12.0 and end.success
    assert not seen[-1].needs_action and a.phase == "unsup" and a.updates > 0
    dup = a.observe(0, 12, np.zeros(OBS), np.zeros(ACT), truncated=True)
    assert dup.kind == "duplicate"
    with pytest.raises(ValueError, match="NaN"):
        a.observe(1, 0, [np.nan] * OBS, [])
    with pytest.raises(ValueError, match="state must have"):
        a.observe(1, 0, [0.0] * 3, [])
    gap = a.observe(5, 7, np.zeros(OBS), np.zeros(ACT))
    assert gap.kind == "start" and a.step == 12  # no transition across a gap


def test_reward_models_relabel_and_reset_the_critic_once() -> None:
    a = _agent()
    _run_episode(a, 0, 20)
    model = RewardEnsemble(RewardModelConfig(hidden_dim=8, hidden_layers=1), obs_dim=OBS, seed=0)
    critic_before = a.sac.critic
    info = a.set_reward_model(model, 1)
    assert {k: info[k] for k in ("version", "relabelled", "first")} == {"version": 1, "relabelled": 20,
                                                                       "first": True}
    assert set(info["metrics"]) >= {"critic_loss", "actor_loss"}  # the reset's SAC updates ran
    assert a.sac.critic is not critic_before
    assert a.phase == "reward"
    expect = model.predict(a.replay.next_obs[:20]).numpy()
    assert np.allclose(a.replay.reward[:20].numpy(), expect, atol=1e-6)
    assert a.set_reward_model(model, 1) is None  # not newer
    critic = a.sac.critic
    assert a.set_reward_model(model, 2)["first"] is False
    assert a.sac.critic is critic
    wrong = RewardEnsemble(RewardModelConfig(hidden_dim=8, hidden_layers=1), obs_dim=OBS + 1)
    with pytest.raises(ValueError, match="size"):
        a.set_reward_model(wrong, 3)


def test_true_reward_baseline_and_checkpoint() -> None:
    a = _agent(reward_source="true", num_unsup_steps=0)
    _run_episode(a, 0, 15)
    assert float(a.replay.reward[:15].sum()) == 15.0
    b = _agent(reward_source="true", num_unsup_steps=0)
    b.load_state_dict(a.state_dict())
    assert b.step == 15 and len(b.replay) == 15
    assert np.allclose(b.act(np.zeros(OBS)).shape, (ACT,))


def test_the_exploration_bonus_adds_state_entropy_to_the_learned_reward() -> None:
    """With ``entropy_bonus`` the SAC update after the first model sees r_hat + w * entropy."""
    a = _agent(entropy_bonus=0.5, entropy_memory=12)
    _run_episode(a, 0, 30)
    a.set_reward_model(RewardEnsemble(RewardModelConfig(hidden_dim=8, hidden_layers=1), obs_dim=OBS,
                                      seed=0), 1)
    seen = {}
    real_update = a.sac.update

    def spy(obs, act, rew, nobs, nd):
        seen["rew"], seen["nobs"] = rew.clone(), nobs.clone()
        return real_update(obs, act, rew, nobs, nd)

    a.sac.update = spy
    stored = a.replay.reward.clone()
    gen_state = a.replay.generator.get_state()
    a.learn()
    a.replay.generator.set_state(gen_state)
    _, _, rew, nobs, _ = a.replay.sample(a.config.sac.batch_size)
    assert torch.equal(nobs, seen["nobs"])
    bonus = seen["rew"] - rew
    assert bool((bonus > 0).all())  # a k-NN distance over a positive running std
    assert torch.equal(stored, a.replay.reward)  # the stored (relabelled) rewards are untouched


def test_recent_next_obs_wraps_around_the_circular_buffer() -> None:
    a = _agent(replay_capacity=50)
    _run_episode(a, 0, 60)  # 60 transitions into 50 slots
    recent = a.replay.recent_next_obs(5)
    last = [a.replay.next_obs[(a.replay.pos - 5 + i) % 50] for i in range(5)]
    assert torch.equal(recent, torch.stack(last))


def test_an_image_reward_agent_needs_frames_and_skips_a_lost_one() -> None:
    cfg = LoopConfig(num_seed_steps=10, num_unsup_steps=10, replay_capacity=50,
                     sac=SACConfig(hidden_dim=16, hidden_layers=1, batch_size=16),
                     reward=RewardModelConfig(input_kind="image", image_size=48, ensemble_size=1))
    a = OnlineAgent(cfg, OBS, ACT, frame_shape=(48, 48, 3))
    rng = np.random.default_rng(0)
    frame = lambda: rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)  # noqa: E731
    a.observe(0, 0, rng.normal(size=OBS), [])
    a.observe(0, 1, rng.normal(size=OBS), np.zeros(ACT), frame=frame())
    with pytest.raises(ValueError, match="frame of every step"):
        a.observe(0, 2, rng.normal(size=OBS), np.zeros(ACT))
    # A frame the camera topic lost: the step counts, nothing is stored, the chain goes on.
    lost = a.observe(0, 2, rng.normal(size=OBS), np.zeros(ACT), frame_lost=True)
    assert lost.kind == "transition" and lost.needs_action
    assert a.step == 2 and len(a.replay) == 1 and a.lost_frames == 1
    f3 = frame()
    a.observe(0, 3, rng.normal(size=OBS), np.zeros(ACT), frame=f3)
    assert a.step == 3 and len(a.replay) == 2
    assert torch.equal(a.replay.frames[1], torch.as_tensor(f3))  # the step's own frame, uint8
