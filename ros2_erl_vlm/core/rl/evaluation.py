"""Policy evaluation shared by the in-process trainer and the ``sac_agent`` node."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ros2_erl_vlm.core.seeds import eval_seed


class PolicyEnv(Protocol):
    """What :func:`evaluate_policy` needs from an env (``info`` may carry truth)."""

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: ``(observation, info)``."""
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """``(observation, reward, terminated, truncated, info)``."""
        ...


class Policy(Protocol):
    """Anything with SAC's ``act(obs, deterministic=...)``."""

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """The action for ``obs`` (the distribution's mode when ``deterministic``)."""
        ...


def evaluate_policy(agent: Policy, env: PolicyEnv, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic-policy episodes: success rate (max over each episode) and mean true return."""
    successes, returns = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=eval_seed(seed, i))
        done, ret, succ = False, 0.0, False
        while not done:
            obs, r, term, trunc, info = env.step(agent.act(obs, deterministic=True))
            ret += float(info.get("true_reward", r))
            succ |= bool(info.get("success", False))
            done = term or trunc
        successes.append(float(succ))
        returns.append(ret)
    return {"success_rate": float(np.mean(successes)) if successes else float("nan"),
            "true_return": float(np.mean(returns)) if returns else float("nan")}
