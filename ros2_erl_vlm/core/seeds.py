"""Every seed a run derives from its one ``seed`` setting, named in one place.

Both starters (the in-process loop, :mod:`ros2_erl_vlm.core.loop`, and the node graph) take their
seeds from these functions, so a graph run and an in-process run of the same seed see the same
task layouts, evaluation episodes, initial networks and rater noise. The derived seeds differ
from each other so that no two random streams of a run coincide.
"""

from __future__ import annotations

import numpy as np
import torch

#: Offsets of the derived seeds from the run seed (kept as they were when they were introduced,
#: so runs stay reproducible across versions).
REWARD_MODEL_OFFSET = 1
LEARNER_RNG_OFFSET = 3
ORACLE_OFFSET = 7
EVAL_ENV_OFFSET = 12345
#: Evaluation episodes are seeded far above any training episode's seed of small runs.
EVAL_EPISODE_BASE = 10_000_000


def seed_torch(seed: int) -> None:
    """Seed torch's global generator (network initialisation) with the run seed."""
    torch.manual_seed(int(seed))


def agent_rng(seed: int) -> np.random.Generator:
    """The agent's generator (random actions of the seed phase). In one process the reward
    learner draws from this same generator (the reference runner's single stream)."""
    return np.random.default_rng(int(seed))


def learner_rng(seed: int) -> np.random.Generator:
    """The ``reward_learner`` node's own generator (segment selection, reward training) when the
    learner runs in a process of its own."""
    return np.random.default_rng(int(seed) + LEARNER_RNG_OFFSET)


def sac_seed(seed: int) -> int:
    """Seed of SAC's action sampling and of the replay buffer's minibatches."""
    return int(seed)


def reward_model_seed(seed: int) -> int:
    """Seed of the reward ensemble's initial weights."""
    return int(seed) + REWARD_MODEL_OFFSET


def oracle_seed(seed: int) -> int:
    """Seed of a simulated rater's label noise (the oracle, ``simulated_vlm``)."""
    return int(seed) + ORACLE_OFFSET


def eval_env_seed(seed: int) -> int:
    """Construction seed of the private evaluation env."""
    return int(seed) + EVAL_ENV_OFFSET


def episode_seed(seed: int, episode: int) -> int:
    """Reset seed of training episode ``episode``.

    Runs with different seeds see different task layouts (``seed + episode`` would give seed 1
    the layouts of seed 0 shifted by one episode); seed 0 keeps ``episode`` itself.
    """
    return int(seed) * 1_000_003 + int(episode)


def eval_seed(seed: int, i: int) -> int:
    """Reset seed of evaluation episode ``i``."""
    return EVAL_EPISODE_BASE + int(seed) * 1000 + int(i)
