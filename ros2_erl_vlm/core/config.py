"""The settings of the ERL-VLM online loop: one dataclass tree, the single source of every default.

:class:`LoopConfig` holds the schedule and bookkeeping and nests :class:`~ros2_erl_vlm.core.rl.sac.SACConfig`
(``sac``) and :class:`~ros2_erl_vlm.core.reward.reward_model.RewardModelConfig` (``reward``). The
in-process loop, the ``sac_agent`` and ``reward_learner`` nodes and their declared ROS parameters
all take their defaults, types and valid ranges from here (declared per field with
:func:`~ros2_erl_vlm.core.settings.setting`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ros2_erl_vlm.core.device import DEVICE_CHOICES, check_device
from ros2_erl_vlm.core.rating.rater import MAX_CLASSES, MIN_CLASSES, check_num_classes
from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
from ros2_erl_vlm.core.reward.segment_selection import STRATEGIES
from ros2_erl_vlm.core.rl.sac import SACConfig
from ros2_erl_vlm.core.settings import check_declared, setting

REWARD_SOURCES = ("learned", "true")
#: Largest run seed (the nodes' ``seed`` parameter has the same range).
MAX_SEED = 2**31 - 1


@dataclass
class LoopConfig:
    """Schedule and bookkeeping of the online loop (paper defaults where the paper has one); each
    field with its valid values (:func:`~ros2_erl_vlm.core.settings.setting`), which ``validate``
    checks and the node parameters of the same name declare."""

    total_steps: int = setting(1_000_000, low=1)
    seed: int = setting(0, low=0, high=MAX_SEED)
    reward_source: str = setting("learned", choices=REWARD_SOURCES)
    num_classes: int = setting(3, low=MIN_CLASSES, high=MAX_CLASSES)
    num_seed_steps: int = setting(1000, low=0)
    num_unsup_steps: int = setting(9000, low=0)
    query_every: int = setting(5000, low=1)
    queries_per_round: int = setting(50, low=1)
    max_feedback: int = setting(10_000, low=1)
    query_strategy: str = setting("uniform", choices=STRATEGIES)
    segment_length: int = setting(1, low=1)
    episode_store_size: int = setting(100, low=1)
    reset_updates: int = setting(100, low=0)
    replay_capacity: int = setting(1_000_000, low=1)
    updates_per_step: int = setting(1, low=1)
    #: Weight of PEBBLE's state-entropy reward kept as an exploration bonus on top of the learned
    #: reward after the first reward model (0: the paper, exploration ends there). For layouts
    #: where the policy rarely reaches informative states (the stock randomised tasks).
    entropy_bonus: float = setting(0.0, low=0.0)
    #: Most recent stored states the bonus's k-NN distances are taken against (bounds its cost).
    entropy_memory: int = setting(10_000, low=5)
    #: Render the task camera every step and keep the frames (JPEG) in the episode store so the
    #: rater sees images: needed by VLM raters when the reward model works on states (an image
    #: reward model keeps raw frames anyway). The oracle rates from simulator truth and needs none.
    query_frames: bool = False
    eval_every: int = setting(10_000, low=1)
    eval_episodes: int = setting(10, low=0)
    checkpoint_every: int = setting(50_000, low=1)
    log_every: int = setting(1000, low=1)
    #: Torch device of SAC, the replay buffer, the reward ensemble and its relabelling: auto (a
    #: CUDA GPU when torch sees one, else the CPU), cpu or cuda; cuda without a GPU is refused.
    device: str = setting("auto", choices=DEVICE_CHOICES)
    sac: SACConfig = field(default_factory=SACConfig)
    reward: RewardModelConfig = field(default_factory=RewardModelConfig)

    @property
    def learn_start(self) -> int:
        """Env step of the first reward learning."""
        return self.num_seed_steps + self.num_unsup_steps

    def validate(self) -> LoopConfig:
        """Raise ``ValueError`` naming the first bad field."""
        check_num_classes(self.num_classes)
        check_declared(self)
        check_device(self.device)
        if self.num_seed_steps < self.sac.batch_size // 8:
            raise ValueError("num_seed_steps is too small to fill a first SAC batch")
        self.sac.validate()
        self.reward.validate()
        return self


#: What the shipped short run changes from the defaults above, in both starters (the in-process
#: ``python -m ros2_erl_vlm.train`` and ``config/train_sim.yaml`` of the node graph; a test
#: checks the file against it). Paper-length runs raise ``total_steps`` to 1M.
SHORT_RUN: dict[str, int] = {"total_steps": 30_000, "checkpoint_every": 10_000}


@dataclass
class TaskInfo:
    """What the loop tells the rater about the task."""

    name: str
    instruction: str
    class_names: tuple[str, ...]
