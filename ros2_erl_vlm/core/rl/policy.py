"""A trained policy for deployment: the actor of a run's checkpoint, acting deterministically.

Reads the checkpoint of the node graph's agent (``<run_dir>/sac_agent/checkpoint.pt``) or of the
in-process trainer (``<run_dir>/checkpoint.pt``): both hold the SAC state under ``agent.sac``, with
its settings and dimensions. Also reads the checkpoint of offline training (IQL, IQL-sparse, BC:
``python -m ros2_erl_vlm.offline.train``), which holds the actor and its state normalisation under
``policy`` (:class:`~ros2_erl_vlm.core.offline.policy.OfflinePolicy`; normalised inside ``act``).
Only the actor is used; nothing learns.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.checkpoint import CheckpointError, load_checkpoint
from ros2_erl_vlm.core.offline.policy import OfflinePolicy
from ros2_erl_vlm.core.rl.sac import SAC, SACConfig


class DeployedPolicy:
    """The mean action of a checkpoint's actor (see the module docstring).

    Args:
        path: the checkpoint file.

    Raises:
        CheckpointError: unreadable, or no policy in it (the message says which).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        state = load_checkpoint(self.path)
        self.sac: SAC | None = None
        self.offline: OfflinePolicy | None = None
        if isinstance(state, dict) and isinstance(state.get("policy"), dict):  # offline training
            try:
                self.offline = OfflinePolicy.from_state(state["policy"], where=str(self.path))
            except ValueError as exc:
                raise CheckpointError(str(exc)) from exc
            self.method = self.offline.method
            self.obs_dim, self.action_dim = self.offline.obs_dim, self.offline.action_dim
            self.trained_steps = self.offline.trained_steps
            return
        self.method = "sac"
        sac_state = (state.get("agent") or {}).get("sac") if isinstance(state, dict) else None
        if not isinstance(sac_state, dict) or "actor" not in sac_state:
            raise CheckpointError(f"{self.path}: no SAC policy in this checkpoint, nor an offline one "
                                  f"(expected the checkpoint.pt of a training run: sac_agent/, the "
                                  f"run directory, or an offline run's)")
        known = {f.name for f in fields(SACConfig)}
        config = SACConfig(**{k: v for k, v in dict(sac_state["config"]).items() if k in known})
        self.obs_dim, self.action_dim = int(sac_state["obs_dim"]), int(sac_state["action_dim"])
        self.sac = SAC(self.obs_dim, self.action_dim, config)
        self.sac.actor.load_state_dict(sac_state["actor"])
        self.sac.actor.eval()
        self.trained_steps = int((state.get("agent") or {}).get("step", 0))

    def check_observation_dim(self, dim: int, where: str) -> None:
        """ValueError unless the policy reads ``dim``-sized states (``where``: what gives them)."""
        if dim != self.obs_dim:
            raise ValueError(
                f"{self.path}: this policy reads {self.obs_dim}-D states but {where} gives "
                f"{dim}-D ones" + (" (MetaWorld's 39-D simulator state, object poses and goal "
                                   "included, which an arm does not measure: deploy on an arm a "
                                   "policy trained on the arm's own state, e.g. offline from its "
                                   "recordings)" if self.obs_dim == 39 else ""))

    def act(self, state: Any, deterministic: bool = True) -> np.ndarray:
        """The deterministic (mean) action in [-1, 1] for one state (``deterministic`` is
        accepted so that :func:`~ros2_erl_vlm.core.rl.evaluation.evaluate_policy` can run it;
        a deployed policy always acts with its mean)."""
        if self.offline is not None:
            return self.offline.act(state)
        assert self.sac is not None
        return self.sac.act(np.asarray(state, np.float32), deterministic=True)
