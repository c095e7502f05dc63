"""A trained policy for deployment: the SAC actor of a run's checkpoint, acting deterministically.

Reads the checkpoint of the node graph's agent (``<run_dir>/sac_agent/checkpoint.pt``) or of the
in-process trainer (``<run_dir>/checkpoint.pt``): both hold the SAC state under ``agent.sac``, with
its settings and dimensions. Only the actor is used; nothing learns.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.checkpoint import CheckpointError, load_checkpoint
from ros2_erl_vlm.core.rl.sac import SAC, SACConfig


class DeployedPolicy:
    """The mean action of a checkpoint's actor (see the module docstring).

    Args:
        path: the checkpoint file.

    Raises:
        CheckpointError: unreadable, or no SAC state in it (the message says which).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        state = load_checkpoint(self.path)
        sac_state = (state.get("agent") or {}).get("sac") if isinstance(state, dict) else None
        if not isinstance(sac_state, dict) or "actor" not in sac_state:
            raise CheckpointError(f"{self.path}: no SAC policy in this checkpoint (expected the "
                                  f"checkpoint.pt of a training run: sac_agent/ or the run directory)")
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

    def act(self, state: Any) -> np.ndarray:
        """The deterministic (mean) action in [-1, 1] for one state."""
        return self.sac.act(np.asarray(state, np.float32), deterministic=True)
