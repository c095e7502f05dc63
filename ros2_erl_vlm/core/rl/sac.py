"""Soft Actor-Critic, lean and readable top to bottom (the paper's MetaWorld settings as defaults).

* Actor: tanh-squashed Gaussian; ``log_std`` squashed into ``[log_std_min, log_std_max]``.
* Critic: twin Q networks evaluated as one batched ensemble (one ``baddbmm`` per layer).
* Temperature: learned ``log_alpha``, target entropy ``-action_dim``.
* Speed: fused Adam, one forward for both critics, no Python-side copies of batches.
* Device: the networks live on ``device`` (CPU by default; :mod:`~ros2_erl_vlm.core.device`);
  they are initialised on the CPU and moved, so a seed gives the same initial weights anywhere.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ros2_erl_vlm.core.device import resolve_device, to_cpu
from ros2_erl_vlm.core.settings import check_declared, setting


@dataclass
class SACConfig:
    """Every SAC hyperparameter in one place (defaults: ERL-VLM's MetaWorld config), each with its
    valid range (:func:`~ros2_erl_vlm.core.settings.setting`; the ``sac.*`` node parameters use
    the same declaration)."""

    hidden_dim: int = setting(256, low=1)
    hidden_layers: int = setting(3, low=1)
    gamma: float = setting(0.99, low=0.0, high=1.0, high_open=True)
    tau: float = setting(0.005, low=0.0, high=1.0, low_open=True)
    actor_lr: float = setting(3e-4, low=0.0, low_open=True)
    critic_lr: float = setting(3e-4, low=0.0, low_open=True)
    alpha_lr: float = setting(1e-4, low=0.0, low_open=True)
    init_temperature: float = setting(0.1, low=0.0, low_open=True)
    batch_size: int = setting(512, low=1)
    critic_target_update_every: int = setting(2, low=1)
    actor_update_every: int = setting(1, low=1)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    target_entropy: float | None = None  # None: -action_dim
    fused_adam: bool = True
    flush_denormal: bool = True  # process-wide: denormal floats make CPU matmuls many times slower

    def validate(self) -> SACConfig:
        """Raise ``ValueError`` naming the first bad field."""
        check_declared(self, "sac.")
        if self.log_std_min >= self.log_std_max:
            raise ValueError("sac.log_std_min must be below sac.log_std_max")
        return self


def mlp(in_dim: int, out_dim: int, hidden_dim: int, hidden_layers: int) -> nn.Sequential:
    """ReLU MLP with ``hidden_layers`` hidden layers."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, hidden_dim), nn.ReLU()]
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``n`` independent linear layers applied to ``(n, B, in)`` in one batched matmul."""

    def __init__(self, n: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, B, in) -> (n, B, out)``."""
        return torch.baddbmm(self.bias, x, self.weight)


class TwinCritic(nn.Module):
    """Two Q networks ``Q(s, a)`` computed together; returns ``(2, B)``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, hidden_layers: int,
                 n: int = 2) -> None:
        super().__init__()
        self.n = n
        dims = [obs_dim + action_dim] + [hidden_dim] * hidden_layers
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in itertools.pairwise(dims))
        self.out = EnsembleLinear(n, dims[-1], 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q-values of both critics, ``(2, B)``."""
        x = torch.cat([obs, action], dim=-1).unsqueeze(0).expand(self.n, -1, -1)
        for layer in self.layers:
            x = torch.relu_(layer(x))
        return self.out(x).squeeze(-1)


class Actor(nn.Module):
    """Tanh-Gaussian policy."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, hidden_layers: int,
                 log_std_min: float, log_std_max: float) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 2 * action_dim, hidden_dim, hidden_layers)
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std of the pre-tanh Gaussian."""
        mu, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = torch.tanh(log_std)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1)
        return mu, log_std

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised sample: ``(action, log_prob, deterministic_action)``."""
        mu, log_std = self.dist_params(obs)
        std = log_std.exp()
        noise = torch.randn_like(mu)
        u = mu + std * noise
        action = torch.tanh(u)
        log_prob = squashed_gaussian_log_prob(u, mu, log_std)
        return action, log_prob, torch.tanh(mu)


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def squashed_gaussian_log_prob(u: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``log pi(tanh(u))`` for ``u ~ N(mu, exp(log_std))``, summed over action dims.

    Uses the numerically stable tanh correction ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``.
    """
    gauss = -0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - _LOG_SQRT_2PI
    correction = 2.0 * (math.log(2.0) - u - functional.softplus(-2.0 * u))
    return (gauss - correction).sum(-1)


class SAC:
    """The SAC agent: acting, one gradient update per call, checkpointable state.

    Args:
        obs_dim: observation size.
        action_dim: action size (actions live in ``[-1, 1]``).
        config: hyperparameters.
        seed: seeds the initial weights and the agent's sampling.
        device: where the networks live and update (``auto``/``cpu``/``cuda``/``cuda:N`` or a
            torch device); :meth:`update` takes batches there (others are moved).
    """

    def __init__(self, obs_dim: int, action_dim: int, config: SACConfig | None = None,
                 seed: int | None = None, device: str | torch.device = "cpu") -> None:
        self.config = c = (config or SACConfig()).validate()
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.device = resolve_device(device)
        if seed is not None:
            torch.manual_seed(seed)
        if c.flush_denormal:
            torch.set_flush_denormal(True)
        self.actor = Actor(obs_dim, action_dim, c.hidden_dim, c.hidden_layers, c.log_std_min,
                           c.log_std_max).to(self.device)
        self._make_critic()
        self.log_alpha = torch.tensor(math.log(c.init_temperature), device=self.device,
                                      requires_grad=True)
        self.target_entropy = (
            float(-action_dim) if c.target_entropy is None else float(c.target_entropy)
        )
        self._make_optimizers()
        self.num_updates = 0

    def _adam(self, params: Any, lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), fused=self.config.fused_adam or None)

    def _make_critic(self) -> None:
        """Fresh twin critic, its target copy and optimiser."""
        c = self.config
        self.critic = TwinCritic(self.obs_dim, self.action_dim, c.hidden_dim,
                                 c.hidden_layers).to(self.device)
        self.critic_target = TwinCritic(self.obs_dim, self.action_dim, c.hidden_dim,
                                        c.hidden_layers).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.critic_opt = self._adam(self.critic.parameters(), c.critic_lr)

    def _make_optimizers(self) -> None:
        c = self.config
        self.actor_opt = self._adam(self.actor.parameters(), c.actor_lr)
        self.alpha_opt = self._adam([self.log_alpha], c.alpha_lr)

    @property
    def alpha(self) -> torch.Tensor:
        """Current temperature."""
        return self.log_alpha.exp()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Action in ``[-1, 1]^action_dim`` for one observation (or a batch)."""
        arr = np.asarray(obs, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("observation contains NaN or inf")
        o = torch.as_tensor(arr, device=self.device)
        single = o.ndim == 1
        if single:
            o = o.unsqueeze(0)
        action, _, mean_action = self.actor.sample(o)
        out = (mean_action if deterministic else action).cpu().numpy()
        return out[0] if single else out

    def reset_critic(self) -> None:
        """Re-initialise both critics, their target and optimiser (PEBBLE, first reward update)."""
        self._make_critic()

    def update(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
               next_obs: torch.Tensor, not_done: torch.Tensor) -> dict[str, float]:
        """One SAC gradient step on a batch; returns scalar diagnostics.

        ``not_done`` is 0 only at true terminations (a time-limit truncation still bootstraps).
        Tensors on another device than the agent's are moved to it.
        """
        c = self.config
        obs, action, reward, next_obs, not_done = (
            t.to(self.device) for t in (obs, action, reward, next_obs, not_done))
        with torch.no_grad():
            next_action, next_logp, _ = self.actor.sample(next_obs)
            target_q = self.critic_target(next_obs, next_action).min(0).values
            target_v = target_q - self.alpha * next_logp
            target = reward + not_done * c.gamma * target_v
        q = self.critic(obs, action)
        critic_loss = functional.mse_loss(q[0], target) + functional.mse_loss(q[1], target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        names, values = ["critic_loss", "q_mean"], [critic_loss.detach(), q.detach().mean()]

        if self.num_updates % c.actor_update_every == 0:
            pi, logp, _ = self.actor.sample(obs)
            self.critic.requires_grad_(False)
            q_pi = self.critic(obs, pi).min(0).values
            self.critic.requires_grad_(True)
            alpha = self.alpha.detach()
            actor_loss = (alpha * logp - q_pi).mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            alpha_loss = (self.alpha * (-logp.detach() - self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
            names += ["actor_loss", "alpha", "entropy"]
            values += [actor_loss.detach(), alpha, -logp.detach().mean()]

        if self.num_updates % c.critic_target_update_every == 0:
            soft_update(self.critic_target, self.critic, c.tau)
        self.num_updates += 1
        # One device-to-host copy for all diagnostics (one GPU sync per update, not five).
        return dict(zip(names, torch.stack(values).tolist(), strict=True))

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, temperature and counters, as CPU tensors (whatever the device)."""
        return to_cpu({
            "config": asdict(self.config),
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "num_updates": self.num_updates,
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (dimensions must match; tensors on any device)."""
        if (state["obs_dim"], state["action_dim"]) != (self.obs_dim, self.action_dim):
            raise ValueError(
                f"SAC checkpoint is for obs_dim={state['obs_dim']} action_dim={state['action_dim']}, "
                f"agent has obs_dim={self.obs_dim} action_dim={self.action_dim}"
            )
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.num_updates = int(state["num_updates"])


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source``."""
    t_params = list(target.parameters())
    s_params = list(source.parameters())
    torch._foreach_lerp_(t_params, s_params, tau)
