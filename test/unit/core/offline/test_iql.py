"""IQL and BC: the losses against hand-computed values, one update, V's expectile, IQL's
preference for the better action, BC on a linear expert."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.offline.bc import BC
from ros2_erl_vlm.core.offline.dataset import StateNorm
from ros2_erl_vlm.core.offline.iql import (
    IQL,
    Batch,
    IQLConfig,
    advantage_weights,
    cosine_lr,
    expectile_loss,
    q_targets,
)
from ros2_erl_vlm.core.offline.networks import GaussianActor


def test_expectile_loss_hand_computed() -> None:
    diff = torch.tensor([2.0, -1.0, 0.5])
    # tau 0.7: positive errors weigh 0.7, negative ones 0.3 -> (0.7*4 + 0.3*1 + 0.7*0.25) / 3
    assert expectile_loss(diff, 0.7).item() == pytest.approx((2.8 + 0.3 + 0.175) / 3, abs=1e-6)
    # tau 0.5: half the mean squared error
    assert expectile_loss(diff, 0.5).item() == pytest.approx(0.5 * (4 + 1 + 0.25) / 3, abs=1e-6)
    # tau 0.9, a negative error only
    assert expectile_loss(torch.tensor([-2.0]), 0.9).item() == pytest.approx(0.1 * 4, abs=1e-6)
    assert expectile_loss(torch.zeros(4), 0.7).item() == 0.0


def test_advantage_weights_and_their_clip() -> None:
    adv = torch.tensor([0.0, 1.0, -2.0, 20.0, 1e6])
    w = advantage_weights(adv, beta=0.5, clip=100.0)
    expected = [1.0, math.exp(0.5), math.exp(-1.0), 100.0, 100.0]  # exp(10) = 22026 -> clipped
    assert w.tolist() == pytest.approx(expected, rel=1e-6)
    assert torch.isfinite(w).all()
    assert advantage_weights(torch.tensor([1.0]), beta=3.0, clip=100.0).item() == pytest.approx(
        math.exp(3.0), rel=1e-6)
    assert advantage_weights(torch.tensor([5.0]), beta=0.0, clip=100.0).item() == 1.0  # BC
    assert advantage_weights(torch.tensor([2.0]), beta=1.0, clip=5.0).item() == pytest.approx(5.0)


def test_q_targets_and_cosine_lr() -> None:
    t = q_targets(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([2.0, 5.0]), 0.9)
    assert t.tolist() == pytest.approx([1.0 + 0.9 * 2.0, 0.0])
    assert cosine_lr(3e-4, 0, 100) == pytest.approx(3e-4)
    assert cosine_lr(3e-4, 25, 100) == pytest.approx(3e-4 * (1 + math.cos(math.pi / 4)) / 2)
    assert cosine_lr(3e-4, 50, 100) == pytest.approx(1.5e-4)
    assert cosine_lr(3e-4, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(3e-4, 150, 100) == pytest.approx(0.0, abs=1e-12)  # stays at 0


def test_actor_log_prob_hand_computed() -> None:
    actor = GaussianActor(2, 2, 8, 1, dropout=0.0)
    with torch.no_grad():
        for p in actor.net.parameters():
            p.zero_()
        actor.log_std.copy_(torch.tensor([0.0, math.log(0.5)]))
    a = torch.tensor([[0.5, -0.25]])
    # mean tanh(0) = 0; N(0.5; 0, 1) + N(-0.25; 0, 0.5)
    expected = (-0.5 * 0.25 - 0.5 * math.log(2 * math.pi)) + (
        -0.5 * (0.25 / 0.5) ** 2 - math.log(0.5) - 0.5 * math.log(2 * math.pi))
    assert actor.log_prob(torch.zeros(1, 2), a).item() == pytest.approx(expected, abs=1e-5)
    actor.log_std.data.fill_(-50.0)  # clamped at log_std_min = -5
    assert actor.distribution(torch.zeros(1, 2)).stddev[0, 0].item() == pytest.approx(math.exp(-5.0))


def _batch(n: int, obs_dim: int, action_dim: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.rand(n, action_dim, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g), torch.ones(n))


def test_one_update_changes_every_network() -> None:
    torch.manual_seed(0)
    iql = IQL(3, 2, IQLConfig(hidden_dim=16, batch_size=8))
    nets = {"actor": iql.actor, "critic": iql.critic, "critic_target": iql.critic_target, "value": iql.value}
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}
    metrics = iql.update(_batch(8, 3, 2))
    for k, n in nets.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[k], n.parameters(), strict=True)]
        assert all(changed), f"{k}: {changed}"
    assert iql.num_updates == 1
    assert metrics["actor_lr"] == pytest.approx(3e-4)  # cosine at step 0
    assert set(IQL.METRICS) <= set(metrics) and all(math.isfinite(v) for v in metrics.values())
    # The target critic moved by tau of the way only.
    for t, s, b in zip(iql.critic_target.parameters(), iql.critic.parameters(), before["critic_target"],
                       strict=True):
        assert torch.allclose(t, (1 - 0.005) * b + 0.005 * s, atol=1e-6)

    bc = BC(3, 2, IQLConfig(hidden_dim=16))
    w0 = [p.detach().clone() for p in bc.actor.parameters()]
    bc.update(_batch(8, 3, 2))
    assert all(not torch.equal(a, b) for a, b in zip(w0, bc.actor.parameters(), strict=True))


def _bandit(actions: list[float], rewards: list[float], copies: int) -> Batch:
    """One state, one-step (terminal) episodes: Q(s, a) = r(a)."""
    a = torch.tensor(actions * copies).unsqueeze(1)
    r = torch.tensor(rewards * copies)
    n = len(a)
    return Batch(torch.zeros(n, 1), a, r, torch.zeros(n, 1), torch.zeros(n))


def _train(algo: IQL | BC, data: Batch, steps: int, batch: int | None, seed: int = 0) -> None:
    """``steps`` updates on random minibatches (``batch=None``: the whole dataset each time)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        if batch is None:
            algo.update(data)
            continue
        idx = torch.randint(0, len(data.obs), (batch,), generator=g)
        algo.update(Batch(*(t[idx] for t in data)))


def test_value_approaches_the_expectile_of_the_returns() -> None:
    """Rewards 0, 0, 0, 1 for four actions, equally often: the 0.7-expectile v solves
    0.7 (1 - v) = 0.3 * 3 v, so v = 0.7 / 1.6 = 0.4375 (the mean is 0.25). Whole-dataset
    batches: a minibatch's own share of rewarded actions would move its expectile."""
    torch.manual_seed(0)
    cfg = IQLConfig(hidden_dim=32, batch_size=16, critic_lr=3e-3, value_lr=3e-3, tau=0.1,
                    actor_dropout=0.0, steps=500)
    iql = IQL(1, 1, cfg)
    data = _bandit([-0.75, -0.25, 0.25, 0.75], [0.0, 0.0, 0.0, 1.0], copies=4)
    _train(iql, data, 500, None)
    with torch.no_grad():
        v = iql.value(torch.zeros(1, 1)).item()
        q = iql.critic(torch.zeros(4, 1), torch.tensor([[-0.75], [-0.25], [0.25], [0.75]])).mean(0)
    assert q.tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0], abs=0.1)
    assert v == pytest.approx(0.4375, abs=0.02)


def test_iql_copies_the_better_action_bc_the_average() -> None:
    """Half the data takes -0.5 (reward 0), half +0.5 (reward 1). V is the 0.7-expectile of
    {0, 1}: 0.7 (1 - v) = 0.3 v, v = 0.7; the advantages are +0.3 and -0.7, the weights (beta 3)
    exp(0.9) and exp(-2.1), so IQL's mean goes to 0.5 (e^0.9 - e^-2.1) / (e^0.9 + e^-2.1) = 0.453.
    BC (all weights 1) stays at the average, 0."""
    data = _bandit([-0.5, 0.5], [0.0, 1.0], copies=8)
    cfg = IQLConfig(hidden_dim=32, batch_size=16, beta=3.0, actor_lr=3e-3, critic_lr=3e-3,
                    value_lr=3e-3, tau=0.1, steps=300)
    torch.manual_seed(0)
    iql = IQL(1, 1, cfg)
    _train(iql, data, 300, None)
    torch.manual_seed(0)
    bc = BC(1, 1, cfg)
    _train(bc, data, 300, None)
    iql.actor.eval()
    bc.actor.eval()
    with torch.no_grad():
        iql_mean, bc_mean = iql.actor(torch.zeros(1, 1)).item(), bc.actor(torch.zeros(1, 1)).item()
        v = iql.value(torch.zeros(1, 1)).item()
    expected = 0.5 * (math.exp(0.9) - math.exp(-2.1)) / (math.exp(0.9) + math.exp(-2.1))
    assert v == pytest.approx(0.7, abs=0.03)
    assert iql_mean == pytest.approx(expected, abs=0.03)
    assert abs(bc_mean) < 0.05


def test_bc_recovers_a_linear_expert() -> None:
    rng = np.random.default_rng(0)
    w = np.array([[0.5, -0.3, 0.1], [0.2, 0.4, -0.2]], np.float32)
    states = rng.uniform(-1, 1, (512, 3)).astype(np.float32) * [1.0, 2.0, 0.5]  # unequal scales
    states = states.astype(np.float32)
    norm = StateNorm.from_observations(states)
    expert = (states / [1.0, 2.0, 0.5]) @ w.T
    data = Batch(torch.as_tensor(norm.apply(states)), torch.as_tensor(expert.astype(np.float32)),
                 torch.zeros(512), torch.as_tensor(norm.apply(states)), torch.ones(512))
    torch.manual_seed(0)
    bc = BC(3, 2, IQLConfig(hidden_dim=64, batch_size=128, actor_lr=3e-3, steps=400))
    _train(bc, data, 400, 128)
    test = rng.uniform(-1, 1, (200, 3)).astype(np.float32)
    bc.actor.eval()
    with torch.no_grad():
        pred = bc.actor(torch.as_tensor(norm.apply(test * [1.0, 2.0, 0.5]))).numpy()
    err = np.abs(pred - test @ w.T)
    assert err.mean() < 0.03 and err.max() < 0.15, (err.mean(), err.max())


def test_config_is_validated() -> None:
    assert IQLConfig().expectile == 0.7 and IQLConfig().beta == 0.5 and IQLConfig().steps == 100_000
    with pytest.raises(ValueError, match="expectile must be in"):
        IQLConfig(expectile=1.0).validate()
    with pytest.raises(ValueError, match="log_std_min must be below"):
        IQLConfig(log_std_min=2.0, log_std_max=1.0).validate()
    with pytest.raises(ValueError, match="actor_dropout"):
        IQL(3, 2, IQLConfig(actor_dropout=1.0))


def test_state_dict_round_trip_and_mismatch() -> None:
    torch.manual_seed(0)
    iql = IQL(3, 2, IQLConfig(hidden_dim=8, batch_size=4))
    iql.update(_batch(4, 3, 2))
    other = IQL(3, 2, IQLConfig(hidden_dim=8, batch_size=4))
    other.load_state_dict(iql.state_dict())
    assert other.num_updates == 1
    for a, b in zip(iql.value.parameters(), other.value.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="method=iql obs_dim=3.*method=bc obs_dim=3"):
        BC(3, 2, IQLConfig(hidden_dim=8)).load_state_dict(iql.state_dict())
