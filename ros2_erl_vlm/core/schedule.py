"""The PEBBLE schedule of the ERL-VLM loop, shared by the in-process trainer and the ROS nodes.

Two halves, so the loop can be split over processes and still follow one rule book:

* :class:`QuerySchedule` (the reward side: ``ErlVlmTrainer.learn_reward``, the ``reward_learner``
  node): when a reward-learning round is due and how many queries it may ask.
* :func:`sac_phase`, :func:`acts_randomly`, :func:`can_update` (the agent side:
  ``ErlVlmTrainer._learn``, the ``sac_agent`` node): random actions during the seed steps, SAC on
  the state-entropy reward until the first reward model exists, then SAC on the learned reward.

Steps are env steps taken so far (transitions stored), counted before the step being decided on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

#: SAC phases: no updates yet, PEBBLE's unsupervised exploration, learned (or true) reward.
PHASES = ("seed", "unsup", "reward")


class ScheduleSettings(Protocol):
    """The fields of :class:`~ros2_erl_vlm.core.config.LoopConfig` the schedule reads."""

    reward_source: str
    num_seed_steps: int
    num_unsup_steps: int
    query_every: int
    queries_per_round: int
    max_feedback: int

    @property
    def learn_start(self) -> int:
        """Env step of the first rating round."""
        ...


@dataclass
class QuerySchedule:
    """When to run a reward-learning round (paper: first at ``learn_start``, then every
    ``query_every`` env steps until ``max_feedback`` queries were asked).

    Attributes:
        started: the first round has run.
        last_query_step: env step of the last round (-1: none yet).
        queries_asked: queries sent so far (ratings and abstentions alike count).
        rounds: rounds run so far.
    """

    started: bool = False
    last_query_step: int = -1
    queries_asked: int = 0
    rounds: int = 0

    def due(self, config: ScheduleSettings, step: int, num_episodes: int) -> bool:
        """True when a round should run at ``step`` (needs at least one complete episode)."""
        if config.reward_source != "learned" or num_episodes <= 0 or step < config.learn_start:
            return False
        if not self.started:
            return True
        return (step - self.last_query_step >= config.query_every
                and self.queries_asked < config.max_feedback)

    def budget(self, config: ScheduleSettings) -> int:
        """Queries the next round may ask (0 once the feedback budget is spent)."""
        return max(0, min(config.queries_per_round, config.max_feedback - self.queries_asked))

    def record_round(self, step: int, asked: int) -> bool:
        """Book a round run at ``step`` that asked ``asked`` queries; True if it was the first."""
        first = not self.started
        self.started = True
        self.last_query_step = int(step)
        self.queries_asked += int(asked)
        self.rounds += 1
        return first

    def state_dict(self) -> dict[str, Any]:
        """Counters for checkpoints."""
        return {"started": self.started, "last_query_step": self.last_query_step,
                "queries_asked": self.queries_asked, "rounds": self.rounds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.started = bool(state["started"])
        self.last_query_step = int(state["last_query_step"])
        self.queries_asked = int(state["queries_asked"])
        self.rounds = int(state.get("rounds", 0))


def acts_randomly(config: ScheduleSettings, step: int) -> bool:
    """Uniform random actions during the first ``num_seed_steps`` env steps."""
    return step < config.num_seed_steps


def sac_phase(config: ScheduleSettings, step: int, model_version: int) -> str:
    """Which reward SAC trains on at ``step`` (one of :data:`PHASES`).

    ``seed``: no updates yet; ``unsup``: PEBBLE's state-entropy reward until the first learned
    reward model (``model_version > 0``) exists; ``reward``: the learned reward (or, with
    ``reward_source == "true"``, the environment's).
    """
    if config.reward_source == "learned" and model_version > 0:
        return "reward"
    if step < config.num_seed_steps:
        return "seed"
    return "unsup" if config.reward_source == "learned" else "reward"


def can_update(batch_size: int, replay_size: int) -> bool:
    """SAC updates start once the replay holds an eighth of a batch (at least 8 transitions)."""
    return replay_size >= max(batch_size // 8, 8)
