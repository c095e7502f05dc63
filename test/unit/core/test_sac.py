"""SAC: log-prob correction, target update, learning a bandit, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from ros2_erl_vlm.core.rl.sac import SAC, SACConfig, TwinCritic, soft_update, squashed_gaussian_log_prob


def test_log_prob_matches_torch_transformed_distribution() -> None:
    torch.manual_seed(0)
    mu = torch.randn(5, 3)
    log_std = torch.randn(5, 3) * 0.3
    u = mu + log_std.exp() * torch.randn(5, 3)
    ref = TransformedDistribution(Normal(mu, log_std.exp()), [TanhTransform(cache_size=1)])
    expected = ref.log_prob(torch.tanh(u)).sum(-1)
    assert torch.allclose(squashed_gaussian_log_prob(u, mu, log_std), expected, atol=1e-4)


def test_log_prob_hand_computed_1d() -> None:
    u, mu, log_std = torch.tensor([[0.5]]), torch.tensor([[0.0]]), torch.tensor([[0.0]])
    gauss = -0.5 * 0.25 - 0.5 * math.log(2 * math.pi)
    expected = gauss - math.log(1 - math.tanh(0.5) ** 2)
    assert squashed_gaussian_log_prob(u, mu, log_std).item() == pytest.approx(expected, abs=1e-6)


def test_soft_update_is_polyak() -> None:
    a = torch.nn.Linear(2, 2)
    b = torch.nn.Linear(2, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    soft_update(a, b, 0.1)
    assert torch.allclose(a.weight, 0.9 * wa + 0.1 * wb)


def test_twin_critic_members_are_independent() -> None:
    c = TwinCritic(3, 2, 8, 2)
    q = c(torch.zeros(4, 3), torch.zeros(4, 2))
    assert q.shape == (2, 4)
    assert not torch.allclose(q[0], q[1])


def test_target_updates_every_n_steps() -> None:
    agent = SAC(3, 1, SACConfig(hidden_dim=8, hidden_layers=1, batch_size=4, critic_target_update_every=2))
    batch = (torch.randn(4, 3), torch.rand(4, 1) * 2 - 1, torch.randn(4), torch.randn(4, 3), torch.ones(4))
    before = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(*batch)  # num_updates 0 -> target updated
    after0 = [p.clone() for p in agent.critic_target.parameters()]
    assert any(not torch.equal(x, y) for x, y in zip(before, after0, strict=True))
    agent.update(*batch)  # num_updates 1 -> not updated
    after1 = list(agent.critic_target.parameters())
    changed = [i for i, (x, y) in enumerate(zip(after0, after1, strict=True)) if not torch.equal(x, y)]
    assert changed == [], "critic target parameters changed by an update that should not touch them"


def test_sac_learns_a_continuous_bandit() -> None:
    """One-step episodes with reward -(a - 0.5)^2: the deterministic action must approach 0.5."""
    torch.manual_seed(0)
    agent = SAC(2, 1, SACConfig(hidden_dim=32, hidden_layers=2, batch_size=64, actor_lr=3e-3,
                                 critic_lr=3e-3, init_temperature=0.01), seed=0)
    obs = torch.ones(64, 2)
    for _ in range(600):
        a = torch.rand(64, 1) * 2 - 1
        r = -((a[:, 0] - 0.5) ** 2)
        agent.update(obs, a, r, obs, torch.zeros(64))
    act = agent.act(np.ones(2, np.float32), deterministic=True)
    assert act.shape == (1,)
    assert abs(float(act[0]) - 0.5) < 0.15, act


def test_act_rejects_nan() -> None:
    agent = SAC(3, 2, SACConfig(hidden_dim=8, hidden_layers=1), seed=1)
    with pytest.raises(ValueError, match="NaN"):
        agent.act(np.array([np.nan, 0, 0], np.float32))


def test_checkpoint_roundtrip() -> None:
    agent = SAC(3, 2, SACConfig(hidden_dim=8, hidden_layers=1), seed=1)
    other = SAC(3, 2, SACConfig(hidden_dim=8, hidden_layers=1), seed=2)
    other.load_state_dict(agent.state_dict())
    o = np.ones(3, np.float32)
    assert np.allclose(other.act(o, True), agent.act(o, True))


def test_checkpoint_of_another_obs_dim_is_refused() -> None:
    agent = SAC(3, 2, SACConfig(hidden_dim=8, hidden_layers=1), seed=1)
    with pytest.raises(ValueError, match="obs_dim"):
        SAC(4, 2, SACConfig(hidden_dim=8, hidden_layers=1)).load_state_dict(agent.state_dict())


def test_reset_critic_changes_critic_only() -> None:
    agent = SAC(3, 2, SACConfig(hidden_dim=8, hidden_layers=1), seed=1)
    actor_w = [p.clone() for p in agent.actor.parameters()]
    critic_w = [p.clone() for p in agent.critic.parameters()]
    agent.reset_critic()
    changed = [i for i, (a, b) in enumerate(zip(actor_w, agent.actor.parameters(), strict=True))
               if not torch.equal(a, b)]
    assert changed == [], "reset_critic changed actor parameters"
    assert any(not torch.equal(a, b) for a, b in zip(critic_w, agent.critic.parameters(), strict=True))
    for a, b in zip(agent.critic.parameters(), agent.critic_target.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("kw", "match"), [
    ({"gamma": 1.0}, "sac.gamma"),
    ({"actor_lr": float("nan")}, "sac.actor_lr"),
])
def test_bad_sac_config(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SACConfig(**kw).validate()
