"""The deployable result of offline training: the actor's mean action on normalised states.

:meth:`OfflinePolicy.to_state` is what a checkpoint stores under ``policy`` (the actor's weights
and sizes, the state normalisation's mean and std, the method and the training steps);
:class:`~ros2_erl_vlm.core.rl.policy.DeployedPolicy` (the ``deploy_agent`` node) and the offline
trainer's evaluation both act through :meth:`OfflinePolicy.from_state`, so what is evaluated is
what is deployed. The normalisation is applied inside :meth:`OfflinePolicy.act`: callers pass
raw states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ros2_erl_vlm.core.offline.dataset import StateNorm
from ros2_erl_vlm.core.offline.networks import GaussianActor

#: ``policy["kind"]`` of an offline checkpoint.
POLICY_KIND = "offline_gaussian_actor"


class OfflinePolicy:
    """A CPU copy of an offline actor plus its state normalisation (eval mode: no dropout).

    Args:
        actor: the trained actor (copied to the CPU).
        norm: the normalisation the actor was trained with.
        method: ``iql``, ``iql-sparse``, ``bc`` (for reports).
        trained_steps: gradient steps behind it.
    """

    def __init__(self, actor: GaussianActor, norm: StateNorm, method: str = "iql",
                 trained_steps: int = 0) -> None:
        self.actor = actor.cpu().eval()
        self.norm = norm
        self.method = method
        self.trained_steps = int(trained_steps)
        self.obs_dim = int(norm.mean.shape[0])
        self.action_dim = int(actor.log_std.shape[0])

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """The mean action in [-1, 1] for one raw state ``(D,)`` or a batch ``(B, D)``
        (always the mean: ``deterministic`` is accepted for the evaluation interface)."""
        o = np.asarray(obs, dtype=np.float32)
        if not np.isfinite(o).all():
            raise ValueError("observation contains NaN or inf")
        if o.shape[-1] != self.obs_dim:
            raise ValueError(f"this policy reads {self.obs_dim}-D states, got shape {o.shape}")
        x = torch.from_numpy(self.norm.apply(o))
        single = x.ndim == 1
        out = self.actor(x.unsqueeze(0) if single else x).numpy()
        return out[0] if single else out

    def to_state(self, hidden_dim: int, hidden_layers: int, dropout: float) -> dict[str, Any]:
        """The checkpoint's ``policy`` entry (sizes given: they are not recoverable from the
        module without parsing its layers)."""
        return {"kind": POLICY_KIND, "method": self.method, "trained_steps": self.trained_steps,
                "obs_dim": self.obs_dim, "action_dim": self.action_dim, "hidden_dim": int(hidden_dim),
                "hidden_layers": int(hidden_layers), "dropout": float(dropout),
                "log_std_min": self.actor.log_std_min, "log_std_max": self.actor.log_std_max,
                "actor": {k: v.detach().cpu().clone() for k, v in self.actor.state_dict().items()},
                "obs_mean": self.norm.mean.copy(), "obs_std": self.norm.std.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any], where: str = "checkpoint") -> OfflinePolicy:
        """Rebuild from :meth:`to_state` output; ``ValueError`` naming ``where`` if it does not fit."""
        if state.get("kind") != POLICY_KIND:
            raise ValueError(f"{where}: policy kind {state.get('kind')!r} is not {POLICY_KIND!r}")
        try:
            obs_dim, action_dim = int(state["obs_dim"]), int(state["action_dim"])
            with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
                actor = GaussianActor(obs_dim, action_dim, int(state["hidden_dim"]),
                                      int(state["hidden_layers"]), float(state["dropout"]),
                                      float(state["log_std_min"]), float(state["log_std_max"]))
            actor.load_state_dict(state["actor"])
            mean = np.asarray(state["obs_mean"], np.float32)
            std = np.asarray(state["obs_std"], np.float32)
        except (KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(f"{where}: the offline policy does not load ({type(exc).__name__}: "
                             f"{exc})") from exc
        if mean.shape != (obs_dim,) or std.shape != (obs_dim,) or not (
                np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"{where}: the policy's state normalisation must be finite ({obs_dim},) "
                             f"mean and positive std")
        return cls(actor, StateNorm(mean, std), str(state.get("method", "")),
                   int(state.get("trained_steps", 0)))
