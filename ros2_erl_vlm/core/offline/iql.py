"""Implicit Q-Learning (Kostrikov, Nair and Levine, ICLR 2022, arXiv 2110.06169), readable top to bottom.

IQL never queries Q at actions outside the dataset. Per minibatch ``(s, a, r, s', not_done)``:

1. **Value** ``V(s)``: expectile regression towards the target critics' ``min(Q1, Q2)(s, a)``
   at the dataset's actions, expectile ``tau = 0.7`` (:func:`expectile_loss`). With ``tau > 0.5``
   V estimates an upper expectile of Q over the behaviour policy's actions: the value of the
   better actions in the data, without a max over unseen ones.
2. **Actor** (advantage-weighted regression): maximise ``w log pi(a | s)`` with
   ``w = min(exp(beta * (Q_target(s, a) - V(s))), 100)`` (:func:`advantage_weights`): behaviour
   cloning that copies the dataset's better-than-V actions more. ``beta = 0`` is plain BC.
   Its learning rate follows a cosine decay to 0 over ``steps`` updates (:func:`cosine_lr`).
3. **Critics** ``Q1, Q2``: regression towards ``r + discount * not_done * V(s')``
   (:func:`q_targets`), both towards the same target; no max, no policy sample.
4. **Target critics**: Polyak averaging with ``tau = 0.005``.

The order (V, then actor and critics with the new V) is the official code's. Defaults are its
manipulation settings (``configs/kitchen_config.py``, used for Kitchen and Adroit: expectile 0.7,
temperature 0.5, actor dropout 0.1; everywhere 2x256 MLPs, Adam 3e-4, batch 256, discount 0.99,
tau 0.005, weights clipped at 100, cosine actor lr, normalised states); CORL's single-file
``algorithms/offline/iql.py`` was read as the PyTorch reference. The actor is
:class:`~ros2_erl_vlm.core.offline.networks.GaussianActor` (tanh mean, state-independent log-std).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch.nn import functional

from ros2_erl_vlm.core.device import resolve_device
from ros2_erl_vlm.core.offline.networks import GaussianActor, ValueNet
from ros2_erl_vlm.core.rl.sac import TwinCritic, soft_update
from ros2_erl_vlm.core.settings import check_declared, setting


@dataclass
class IQLConfig:
    """Every setting of IQL and of BC (which uses the actor's), with its default and valid range.

    ``steps`` is both the default training length and the horizon of the actor's cosine learning
    rate decay; ``beta`` is the inverse temperature of the advantage weights.
    """

    expectile: float = setting(0.7, low=0.0, high=1.0, low_open=True, high_open=True)
    beta: float = setting(0.5, low=0.0)
    adv_weight_clip: float = setting(100.0, low=0.0, low_open=True)
    actor_dropout: float = setting(0.1, low=0.0, high=1.0, high_open=True)
    hidden_dim: int = setting(256, low=1)
    hidden_layers: int = setting(2, low=1)
    actor_lr: float = setting(3e-4, low=0.0, low_open=True)
    critic_lr: float = setting(3e-4, low=0.0, low_open=True)
    value_lr: float = setting(3e-4, low=0.0, low_open=True)
    cosine_actor_lr: bool = True
    batch_size: int = setting(256, low=1)
    discount: float = setting(0.99, low=0.0, high=1.0, high_open=True)
    tau: float = setting(0.005, low=0.0, high=1.0, low_open=True)
    steps: int = setting(100_000, low=1)
    normalize_states: bool = True
    norm_eps: float = setting(1e-3, low=0.0, low_open=True)
    reward_scale: float = setting(1.0, low=0.0, low_open=True)
    log_std_min: float = setting(-5.0)
    log_std_max: float = setting(2.0)

    def validate(self) -> IQLConfig:
        """Raise ``ValueError`` naming the first bad field."""
        check_declared(self)
        if self.log_std_min >= self.log_std_max:
            raise ValueError("log_std_min must be below log_std_max")
        return self


class Batch(NamedTuple):
    """A minibatch of transitions (tensors on the learner's device; rewards already relabelled)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    not_done: torch.Tensor


# -- the losses, as small pure functions ----------------------------------------------------------
def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Mean asymmetric squared error ``|expectile - 1(diff < 0)| * diff^2`` of ``diff = Q - V``.

    Positive errors (Q above V) weigh ``expectile``, negative ones ``1 - expectile``; at 0.5 it is
    half the mean squared error and V goes to the mean of Q."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.square()).mean()


def advantage_weights(adv: torch.Tensor, beta: float, clip: float) -> torch.Tensor:
    """``min(exp(beta * adv), clip)`` (computed without overflow: the exponent is capped at
    ``log(clip)`` first)."""
    return torch.exp(torch.clamp(beta * adv, max=math.log(clip)))


def q_targets(rewards: torch.Tensor, not_done: torch.Tensor, next_v: torch.Tensor,
              discount: float) -> torch.Tensor:
    """``r + discount * not_done * V(s')`` (``not_done`` is 0 only at a true termination)."""
    return rewards + discount * not_done * next_v


def cosine_lr(base_lr: float, step: int, total: int) -> float:
    """Cosine decay from ``base_lr`` at step 0 to 0 at ``total`` (and after):
    ``base_lr * (1 + cos(pi * min(step, total) / total)) / 2``."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def make_actor(obs_dim: int, action_dim: int, config: IQLConfig) -> GaussianActor:
    """The actor IQL and BC share, from the config's sizes, dropout and log-std range."""
    return GaussianActor(obs_dim, action_dim, config.hidden_dim, config.hidden_layers,
                         config.actor_dropout, config.log_std_min, config.log_std_max)


def adam(params: Any, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam (the fused kernel on CUDA)."""
    return torch.optim.Adam(params, lr=lr, fused=True if device.type == "cuda" else None)


def as_device(device: str | torch.device) -> torch.device:
    """A ``device`` setting (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a ``torch.device``) as a
    device: :func:`ros2_erl_vlm.core.device.resolve_device`, the one rule for every trainer."""
    return resolve_device(device)


def actor_lr_at(config: IQLConfig, num_updates: int) -> float:
    """The actor's learning rate for update ``num_updates`` (cosine decay over ``config.steps``)."""
    return (cosine_lr(config.actor_lr, num_updates, config.steps) if config.cosine_actor_lr
            else config.actor_lr)


def weighted_actor_step(actor: Any, opt: torch.optim.Optimizer, batch: Batch, weights: torch.Tensor | None,
                        lr: float) -> torch.Tensor:
    """One step of ``-mean(w * log pi(a | s))`` on the dataset's actions at learning rate ``lr``
    (``weights`` None: all 1, behaviour cloning); returns the loss (detached)."""
    for group in opt.param_groups:
        group["lr"] = lr
    log_prob = actor.log_prob(batch.obs, batch.actions)
    loss = -(log_prob if weights is None else weights * log_prob).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


class IQL:
    """Twin Q, V and the Gaussian actor, one gradient step per :meth:`update`.

    Args:
        obs_dim: state size (states arrive normalised).
        action_dim: action size (actions in [-1, 1]).
        config: the settings.
        device: where the networks live.
    """

    method = "iql"
    #: The diagnostics :meth:`update` returns (besides ``actor_lr``).
    METRICS = ("value_loss", "actor_loss", "critic_loss", "v_mean", "q_mean", "adv_mean",
               "weight_mean", "weight_clipped", "log_std_mean")

    def __init__(self, obs_dim: int, action_dim: int, config: IQLConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.config = c = (config or IQLConfig()).validate()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.device = as_device(device)
        self.actor = make_actor(obs_dim, action_dim, c).to(self.device)
        self.critic = TwinCritic(obs_dim, action_dim, c.hidden_dim, c.hidden_layers).to(self.device)
        self.critic_target = TwinCritic(obs_dim, action_dim, c.hidden_dim, c.hidden_layers).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.value = ValueNet(obs_dim, c.hidden_dim, c.hidden_layers).to(self.device)
        self.actor_opt = adam(self.actor.parameters(), c.actor_lr, self.device)
        self.critic_opt = adam(self.critic.parameters(), c.critic_lr, self.device)
        self.value_opt = adam(self.value.parameters(), c.value_lr, self.device)
        self.num_updates = 0

    def actor_lr(self) -> float:
        """The actor's learning rate for the next update."""
        return actor_lr_at(self.config, self.num_updates)

    def update(self, batch: Batch) -> dict[str, float]:
        """One IQL step (V, actor, critics, target critics) on ``batch``; returns diagnostics."""
        c = self.config
        self.actor.train()
        with torch.no_grad():
            q_data = self.critic_target(batch.obs, batch.actions).min(0).values

        # 1. V: an upper expectile of Q over the dataset's actions.
        v = self.value(batch.obs)
        value_loss = expectile_loss(q_data - v, c.expectile)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()

        # 2. Actor: advantage-weighted log-likelihood of the dataset's actions (with the new V).
        with torch.no_grad():
            adv = q_data - self.value(batch.obs)
            weights = advantage_weights(adv, c.beta, c.adv_weight_clip)
            next_v = self.value(batch.next_obs)
        lr = self.actor_lr()
        actor_loss = weighted_actor_step(self.actor, self.actor_opt, batch, weights, lr)

        # 3. Critics: towards r + discount * V(s'); 4. target critics follow.
        target = q_targets(batch.rewards, batch.not_done, next_v, c.discount)
        q = self.critic(batch.obs, batch.actions)
        critic_loss = functional.mse_loss(q[0], target) + functional.mse_loss(q[1], target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, c.tau)
        self.num_updates += 1
        with torch.no_grad():  # one device-to-host copy for every diagnostic
            values = torch.stack([value_loss, actor_loss, critic_loss, v.mean(), q.mean(), adv.mean(),
                                  weights.mean(), (weights >= c.adv_weight_clip).float().mean(),
                                  self.actor.log_std.mean()]).tolist()
        return {**dict(zip(self.METRICS, values, strict=True)), "actor_lr": lr}

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers and the update count."""
        return {"method": self.method, "config": asdict(self.config), "obs_dim": self.obs_dim,
                "action_dim": self.action_dim, "actor": self.actor.state_dict(),
                "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
                "value": self.value.state_dict(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(), "value_opt": self.value_opt.state_dict(),
                "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (method and dimensions must match)."""
        check_state(self, state)
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.value.load_state_dict(state["value"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.value_opt.load_state_dict(state["value_opt"])
        self.num_updates = int(state["num_updates"])


def check_state(algo: Any, state: dict[str, Any]) -> None:
    """``ValueError`` unless ``state`` is a state of the same method and sizes as ``algo``."""
    have = (state.get("method"), state.get("obs_dim"), state.get("action_dim"))
    want = (algo.method, algo.obs_dim, algo.action_dim)
    if have != want:
        raise ValueError(f"the checkpoint holds method={have[0]} obs_dim={have[1]} action_dim={have[2]}, "
                         f"this run is method={want[0]} obs_dim={want[1]} action_dim={want[2]}")
