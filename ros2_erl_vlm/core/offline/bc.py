"""Behaviour cloning with IQL's actor and settings: the paper's BC baseline.

The loss is the negative log-likelihood of the dataset's actions under the Gaussian actor
(:class:`~ros2_erl_vlm.core.offline.networks.GaussianActor`), i.e. IQL's actor loss with every
advantage weight 1 (``beta = 0``): the same network, dropout, Adam learning rate and cosine decay,
batch size and state normalisation, so the two methods differ only in the weights. With a
state-independent std, the likelihood's gradient for the mean is a per-dimension weighted MSE; the
MSE between the mean and the dataset's action is logged beside the loss. Rewards are not used.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from ros2_erl_vlm.core.offline.iql import (
    Batch,
    IQLConfig,
    actor_lr_at,
    adam,
    as_device,
    check_state,
    make_actor,
    weighted_actor_step,
)


class BC:
    """Maximum-likelihood behaviour cloning, one gradient step per :meth:`update`.

    Args:
        obs_dim: state size (states arrive normalised).
        action_dim: action size.
        config: the settings (only the actor's are used).
        device: where the actor lives.
    """

    method = "bc"

    def __init__(self, obs_dim: int, action_dim: int, config: IQLConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.config = c = (config or IQLConfig()).validate()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.device = as_device(device)
        self.actor = make_actor(obs_dim, action_dim, c).to(self.device)
        self.actor_opt = adam(self.actor.parameters(), c.actor_lr, self.device)
        self.num_updates = 0

    def actor_lr(self) -> float:
        """The actor's learning rate for the next update."""
        return actor_lr_at(self.config, self.num_updates)

    def update(self, batch: Batch) -> dict[str, float]:
        """One step of ``-mean(log pi(a | s))`` on ``batch``; returns diagnostics."""
        self.actor.train()
        lr = self.actor_lr()
        loss = weighted_actor_step(self.actor, self.actor_opt, batch, None, lr)  # IQL's, all weights 1
        self.num_updates += 1
        with torch.no_grad():  # the mean without dropout, as deployed; one device-to-host copy
            self.actor.eval()
            mse = (self.actor(batch.obs) - batch.actions).square().mean()
            values = torch.stack([loss.detach(), mse, self.actor.log_std.mean()]).tolist()
        return {"actor_loss": values[0], "action_mse": values[1], "actor_lr": lr,
                "log_std_mean": values[2]}

    def state_dict(self) -> dict[str, Any]:
        """The actor, its optimiser and the update count."""
        return {"method": self.method, "config": asdict(self.config), "obs_dim": self.obs_dim,
                "action_dim": self.action_dim, "actor": self.actor.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (method and dimensions must match)."""
        check_state(self, state)
        self.actor.load_state_dict(state["actor"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.num_updates = int(state["num_updates"])
