"""Scripted expert policies from MetaWorld (``metaworld.policies``): free "good" behaviour for
tests, benchmarks and oracle sanity checks. They read the 39-D observation and need no model."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ros2_erl_vlm.envs.tasks import TaskSpec, load_task

Policy = Callable[[np.ndarray], np.ndarray]


def expert_policy(task: str | TaskSpec) -> Policy:
    """MetaWorld's scripted policy for ``task`` as ``obs -> action`` (float32, clipped to [-1, 1]).

    Raises:
        ValueError: unknown task, or MetaWorld ships no scripted policy for its environment.
    """
    spec = load_task(task) if isinstance(task, str) else task
    from metaworld.policies import ENV_POLICY_MAP

    try:
        scripted = ENV_POLICY_MAP[spec.metaworld_env]()
    except KeyError:
        raise ValueError(
            f"MetaWorld has no scripted policy for {spec.metaworld_env!r} (task {spec.name!r})"
        ) from None

    def act(obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # "Constant(s) may be too high": we clip below
            warnings.simplefilter("ignore", UserWarning)
            a = scripted.get_action(np.asarray(obs, dtype=np.float64))
        return np.clip(np.asarray(a, dtype=np.float32), -1.0, 1.0)

    act.__name__ = f"expert_{spec.name.replace('-', '_')}"
    return act


def run_expert_episode(env: Any, policy: Policy, seed: int | None = None,
                       max_steps: int = 500) -> dict[str, Any]:
    """Reset ``env`` (with ``seed``) and run ``policy`` until success or ``max_steps``; returns
    the last step's ``info`` (``info["success"]`` says whether the expert made it)."""
    obs, info = env.reset(seed=seed)
    for _ in range(max_steps):
        obs, _, _, _, info = env.step(policy(obs))
        if info["success"]:
            break
    return info
