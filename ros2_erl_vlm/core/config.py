"""The settings of the ERL-VLM online loop: one dataclass tree, the single source of every default.

:class:`LoopConfig` holds the schedule and bookkeeping and nests :class:`~ros2_erl_vlm.core.rl.sac.SACConfig`
(``sac``) and :class:`~ros2_erl_vlm.core.reward.reward_model.RewardModelConfig` (``reward``). The
in-process loop, the ``sac_agent`` and ``reward_learner`` nodes and their declared ROS parameters
all take their defaults, types and valid ranges from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ros2_erl_vlm.core.rating.rater import check_num_classes
from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
from ros2_erl_vlm.core.reward.segment_selection import STRATEGIES
from ros2_erl_vlm.core.rl.sac import SACConfig

REWARD_SOURCES = ("learned", "true")


@dataclass
class LoopConfig:
    """Schedule and bookkeeping of the online loop (paper defaults where the paper has one)."""

    total_steps: int = 1_000_000
    seed: int = 0
    reward_source: str = "learned"
    num_classes: int = 3
    num_seed_steps: int = 1000
    num_unsup_steps: int = 9000
    query_every: int = 5000
    queries_per_round: int = 50
    max_feedback: int = 10_000
    query_strategy: str = "uniform"
    segment_length: int = 1
    episode_store_size: int = 100
    reset_updates: int = 100
    replay_capacity: int = 1_000_000
    updates_per_step: int = 1
    #: Render the task camera every step and keep the frames (JPEG) in the episode store so the
    #: rater sees images: needed by VLM raters when the reward model works on states (an image
    #: reward model keeps raw frames anyway). The oracle rates from simulator truth and needs none.
    query_frames: bool = False
    eval_every: int = 10_000
    eval_episodes: int = 10
    checkpoint_every: int = 50_000
    log_every: int = 1000
    sac: SACConfig = field(default_factory=SACConfig)
    reward: RewardModelConfig = field(default_factory=RewardModelConfig)

    @property
    def learn_start(self) -> int:
        """Env step of the first reward learning."""
        return self.num_seed_steps + self.num_unsup_steps

    def validate(self) -> LoopConfig:
        """Raise ``ValueError`` naming the first bad field."""
        if self.reward_source not in REWARD_SOURCES:
            raise ValueError(f"reward_source must be one of {REWARD_SOURCES}, got {self.reward_source!r}")
        if self.query_strategy not in STRATEGIES:
            raise ValueError(f"query_strategy must be one of {STRATEGIES}, got {self.query_strategy!r}")
        check_num_classes(self.num_classes)
        for name in ("total_steps", "query_every", "queries_per_round", "max_feedback",
                     "segment_length", "episode_store_size", "replay_capacity", "eval_every",
                     "checkpoint_every", "log_every", "updates_per_step"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("num_seed_steps", "num_unsup_steps", "reset_updates", "eval_episodes"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_seed_steps < self.sac.batch_size // 8:
            raise ValueError("num_seed_steps is too small to fill a first SAC batch")
        self.sac.validate()
        self.reward.validate()
        return self


@dataclass
class TaskInfo:
    """What the loop tells the rater about the task."""

    name: str
    instruction: str
    class_names: tuple[str, ...]
