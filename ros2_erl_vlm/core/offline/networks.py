"""The networks of the offline methods: the Gaussian actor (IQL and BC) and IQL's state value.

The actor follows the official IQL code's manipulation setting (``NormalTanhPolicy`` with
``tanh_squash_distribution=False, state_dependent_std=False``): the mean is ``tanh`` of an MLP
(so it lies in (-1, 1), the action box), the distribution is a plain diagonal Gaussian around it
with one learned log-std per action dimension (clamped to ``[log_std_min, log_std_max]``, -5 and
2 as there), and the hidden layers have dropout. A plain (not tanh-squashed) Gaussian gives
finite log-likelihoods to actions on the box's edge (a clipped, applied action of exactly +-1),
where a squashed one needs ``atanh(1) = inf``. The deployed action is the mean.

Twin Q is :class:`~ros2_erl_vlm.core.rl.sac.TwinCritic` (both critics in one batched matmul).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal


def mlp(in_dim: int, out_dim: int, hidden_dim: int, hidden_layers: int,
        dropout: float = 0.0) -> nn.Sequential:
    """ReLU MLP with ``hidden_layers`` hidden layers, each followed by dropout when ``dropout > 0``."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(d, hidden_dim), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class GaussianActor(nn.Module):
    """``pi(a | s) = N(tanh(f(s)), exp(log_std))``, ``log_std`` a state-independent parameter."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int, hidden_layers: int,
                 dropout: float = 0.0, log_std_min: float = -5.0, log_std_max: float = 2.0) -> None:
        super().__init__()
        self.net = mlp(obs_dim, action_dim, hidden_dim, hidden_layers, dropout)
        self.log_std = nn.Parameter(torch.zeros(action_dim))
        self.log_std_min, self.log_std_max = float(log_std_min), float(log_std_max)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action ``(B, A)`` in (-1, 1)."""
        return torch.tanh(self.net(obs))

    def distribution(self, obs: torch.Tensor) -> Normal:
        """The action distribution for ``obs``."""
        std = self.log_std.clamp(self.log_std_min, self.log_std_max).exp()
        return Normal(self(obs), std)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a | s)`` summed over action dims, ``(B,)``."""
        return self.distribution(obs).log_prob(actions).sum(-1)


class ValueNet(nn.Module):
    """``V(s)``: an MLP to one number, ``(B,)``."""

    def __init__(self, obs_dim: int, hidden_dim: int, hidden_layers: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden_dim, hidden_layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """State values ``(B,)``."""
        return self.net(obs).squeeze(-1)
