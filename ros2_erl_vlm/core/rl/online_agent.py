"""The agent half of the ERL-VLM loop: SAC, its replay buffer and the schedule's agent side.

The ``sac_agent`` node drives it from the observations a simulator bridge or a real arm publishes;
the in-process loop (:mod:`ros2_erl_vlm.core.loop`) drives it from its own env. Per step the agent

1. :meth:`OnlineAgent.observe`: turns consecutive observations ``(episode, t-1) -> (episode, t)``
   into replay transitions (the action stored is the one the env reports it applied), rewarded by
   the newest learned reward model (or the env's reward for the ``true``-reward baseline);
2. :meth:`OnlineAgent.act`: picks the next action (uniform random during the seed steps);
3. :meth:`OnlineAgent.learn`: runs the SAC updates due (:mod:`~ros2_erl_vlm.core.schedule`);
4. :meth:`OnlineAgent.set_reward_model`: takes each new reward-model version, relabels the whole
   replay buffer and, on the first one, resets the critic (PEBBLE).

SAC, the replay buffer's transitions and the reward model it rewards with live on the
``device`` setting's device (:mod:`~ros2_erl_vlm.core.device`); checkpoints hold CPU tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ros2_erl_vlm.core import seeds
from ros2_erl_vlm.core.config import LoopConfig
from ros2_erl_vlm.core.device import resolve_device
from ros2_erl_vlm.core.rating.rater import SimTruth
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble
from ros2_erl_vlm.core.rl.entropy import StateEntropyReward
from ros2_erl_vlm.core.rl.evaluation import evaluate_policy
from ros2_erl_vlm.core.rl.replay_buffer import ReplayBuffer
from ros2_erl_vlm.core.rl.sac import SAC
from ros2_erl_vlm.core.schedule import acts_randomly, can_update, sac_phase

__all__ = ["EpisodeStats", "Observed", "OnlineAgent", "evaluate_policy"]


@dataclass
class EpisodeStats:
    """Running totals of the current episode (``true_return`` is NaN without simulator truth)."""

    episode: int
    length: int = 0
    true_return: float = 0.0
    learned_return: float = 0.0
    success: bool = False
    has_truth: bool = True


@dataclass
class Observed:
    """What :meth:`OnlineAgent.observe` made of one observation.

    Attributes:
        kind: ``"transition"`` (a replay transition was stored), ``"start"`` (first observation of
            a chain: an episode start, or after a gap), ``"duplicate"`` (the same (episode, step)
            again: answer with :attr:`OnlineAgent.last_action`).
        needs_action: the episode goes on, so the env waits for an action.
        episode_end: the finished episode's totals when this observation ended it.
        reward: the reward stored with the transition (None unless ``kind == "transition"``).
    """

    kind: str
    needs_action: bool
    episode_end: EpisodeStats | None = None
    reward: float | None = None


class OnlineAgent:
    """SAC, its replay buffer and the loop's schedule, driven one observation at a time.

    Args:
        config: the loop settings (``sac``, schedule, ``replay_capacity``, ``seed``); only state
            reward models are supported here.
        obs_dim: observation size.
        action_dim: action size.
    """

    def __init__(self, config: LoopConfig, obs_dim: int, action_dim: int, *,
                 rng: np.random.Generator | None = None,
                 frame_shape: tuple[int, int, int] | None = None) -> None:
        self.config = c = config.validate()
        self.use_frames = c.reward.input_kind == "image"
        if self.use_frames and frame_shape is None:
            raise ValueError("an image reward model (reward.input_kind 'image') needs frame_shape")
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.rng = seeds.agent_rng(c.seed) if rng is None else rng
        seeds.seed_torch(c.seed)
        #: Where SAC, the replay's transitions and the reward model live (``config.device``).
        self.device = resolve_device(c.device)
        self.sac = SAC(self.obs_dim, self.action_dim, c.sac, seed=seeds.sac_seed(c.seed),
                       device=self.device)
        self.replay = ReplayBuffer(self.obs_dim, self.action_dim, c.replay_capacity,
                                   frame_shape if self.use_frames else None, seed=seeds.sac_seed(c.seed),
                                   device=self.device)
        self.entropy = StateEntropyReward()
        #: The reward model stored rewards come from (:meth:`set_reward_model`,
        #: :meth:`share_reward_model`).
        self.reward_model: RewardEnsemble | None = None
        self._shares_model = False
        self.model_version = 0
        self.step = 0
        self.relabels = 0
        self.updates = 0
        self.last_action: np.ndarray | None = None
        #: Steps whose camera frame was lost (counted, not stored: see :meth:`observe`).
        self.lost_frames = 0
        self._last: tuple[int, int] | None = None
        self._last_state: np.ndarray | None = None
        self.current: EpisodeStats | None = None

    def share_reward_model(self, model: RewardEnsemble) -> None:
        """Reward with ``model``, a live ensemble owned (trained and checkpointed) by a reward
        learner in the same process; new versions still come through :meth:`set_reward_model`."""
        self.reward_model, self._shares_model = model, True

    # -- observations -> transitions ------------------------------------------------------------
    def _check(self, name: str, x: Any, dim: int) -> np.ndarray:
        a = np.asarray(x, dtype=np.float32).reshape(-1)
        if a.shape != (dim,):
            raise ValueError(f"{name} must have {dim} values, got {a.shape[0]}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
        return a

    def reward_for(self, next_obs: np.ndarray, truth: SimTruth | None,
                   frame: np.ndarray | None = None) -> float:
        """The reward stored with a transition ending in ``next_obs`` (``frame`` for image models)."""
        if self.config.reward_source == "true":
            if truth is None:
                raise ValueError("reward_source 'true' needs simulator truth in every observation")
            return float(truth.reward)
        if self.reward_model is None:
            return 0.0  # relabelled when the first reward model arrives
        x = frame[None] if self.use_frames else next_obs[None]
        return float(self.reward_model.predict(x)[0])

    def observe(self, episode: int, step: int, state: Any, action_taken: Any, *,
                terminated: bool = False, truncated: bool = False,
                truth: SimTruth | None = None, frame: np.ndarray | None = None,
                frame_lost: bool = False) -> Observed:
        """Take one observation of the env (see :class:`Observed`); ``frame``: the camera frame
        after the step (needed by an image reward model, ignored otherwise). ``frame_lost``: that
        frame never came (the graph's camera topic): the step is counted, its transition is not
        stored (no reward without the frame), and the next transition starts from this state.

        Raises:
            ValueError: the state (or, for a transition, the applied action or the frame an image
                reward model needs) is missing, has the wrong size or holds NaN/inf; nothing is
                stored and the agent's chain is unchanged.
        """
        episode, step = int(episode), int(step)
        s = self._check("state", state, self.obs_dim)
        if self._last == (episode, step):
            return Observed("duplicate", not (terminated or truncated))
        kind = "start"
        r = None
        if (step > 0 and self._last == (episode, step - 1) and self._last_state is not None
                and len(action_taken) > 0):
            a = self._check("action_taken", action_taken, self.action_dim)
            model_frame = None
            lost = self.use_frames and frame_lost and frame is None
            if self.use_frames and not lost:
                if frame is None:
                    raise ValueError("an image reward model needs the frame of every step")
                model_frame = np.asarray(frame, dtype=np.uint8)
            if lost:
                r = 0.0
                self.lost_frames += 1
            else:
                r = self.reward_for(s, truth, model_frame)
                self.replay.add(self._last_state, a, r, s, bool(terminated), model_frame)
            self.step += 1
            kind = "transition"
            st = self.current
            if st is None or st.episode != episode:
                st = self.current = EpisodeStats(episode)
            st.length += 1
            st.learned_return += r
            if truth is None:
                st.has_truth = False
            else:
                st.true_return += float(truth.reward)
                st.success |= bool(truth.success)
        elif step == 0:
            self.current = EpisodeStats(episode)
        self._last, self._last_state = (episode, step), s
        done = bool(terminated or truncated)
        end = None
        if done and self.current is not None and self.current.episode == episode and kind == "transition":
            end = self.current
            if not end.has_truth:
                end.true_return = math.nan
            self.current = None
        return Observed(kind, not done, end, r)

    # -- acting and learning --------------------------------------------------------------------
    def act(self, state: Any) -> np.ndarray:
        """The next action: uniform random during the seed steps, then the SAC policy's sample."""
        s = self._check("state", state, self.obs_dim)
        if acts_randomly(self.config, self.step):
            action = self.rng.uniform(-1, 1, self.action_dim).astype(np.float32)
        else:
            action = self.sac.act(s).astype(np.float32)
        self.last_action = action
        return action

    def _sac_update(self, phase: str) -> dict[str, float]:
        c = self.config
        obs, act, rew, nobs, nd = self.replay.sample(c.sac.batch_size)
        if phase == "unsup":
            rew = self.entropy(nobs, self.replay.next_obs[: len(self.replay)])
        elif c.entropy_bonus > 0 and c.reward_source == "learned":
            rew = rew + c.entropy_bonus * self.entropy(nobs, self.replay.recent_next_obs(c.entropy_memory))
        self.updates += 1
        return self.sac.update(obs, act, rew, nobs, nd)

    @property
    def phase(self) -> str:
        """The current SAC phase (see :func:`~ros2_erl_vlm.core.schedule.sac_phase`)."""
        return sac_phase(self.config, self.step, self.model_version)

    def learn(self) -> dict[str, float] | None:
        """The SAC updates due now; returns the last update's metrics (None if none ran)."""
        c = self.config
        phase = self.phase
        if phase == "seed" or not can_update(c.sac.batch_size, len(self.replay)):
            return None
        metrics = None
        for _ in range(c.updates_per_step):
            metrics = self._sac_update(phase)
        return metrics

    def set_reward_model(self, model: RewardEnsemble, version: int) -> dict[str, Any] | None:
        """Adopt reward model ``version`` (ignored unless newer; moved to the agent's device):
        relabel the replay buffer and, for the first model, reset the critic and run
        ``reset_updates`` SAC updates (PEBBLE).

        Returns ``{"version", "relabelled", "first", "metrics"}`` (``metrics``: the last reset
        update's, None when none ran), or None when the version is not newer.
        """
        if version <= self.model_version:
            return None
        kind = self.config.reward.input_kind
        if model.config.input_kind != kind or (kind == "state" and model.obs_dim != self.obs_dim):
            raise ValueError(f"reward model v{version} takes {model.config.input_kind} inputs of size "
                             f"{model.obs_dim}; the agent rewards {kind} inputs (observations of "
                             f"size {self.obs_dim})")
        first = self.model_version == 0
        model.to(self.device)
        relabelled = self.replay.relabel(model.predict)  # ValueError (buffer untouched) on NaN
        self.reward_model, self.model_version = model, int(version)
        self.relabels += 1
        metrics = None
        if first and self.config.reward_source == "learned":
            self.sac.reset_critic()
            if can_update(self.config.sac.batch_size, len(self.replay)):
                for _ in range(self.config.reset_updates):
                    metrics = self._sac_update("reward")
        return {"version": self.model_version, "relabelled": relabelled, "first": first,
                "metrics": metrics}

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Agent, replay, reward model, counters and RNG state."""
        return {
            "sac": self.sac.state_dict(), "replay": self.replay.state_dict(),
            # A shared model is the learner's to checkpoint.
            "reward_model": (None if self.reward_model is None or self._shares_model
                             else self.reward_model.to_bytes()),
            "model_version": self.model_version, "step": self.step, "relabels": self.relabels,
            "updates": self.updates, "rng": self.rng.bit_generator.state,
            "entropy": vars(self.entropy.stats),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the next observation starts a new chain)."""
        self.sac.load_state_dict(state["sac"])
        self.replay.load_state_dict(state["replay"])
        if not self._shares_model:
            blob = state.get("reward_model")
            self.reward_model = (None if blob is None
                                 else RewardEnsemble.from_bytes(blob, device=self.device))
        self.model_version = int(state["model_version"])
        self.step, self.relabels = int(state["step"]), int(state["relabels"])
        self.updates = int(state.get("updates", 0))
        self.rng.bit_generator.state = state["rng"]
        vars(self.entropy.stats).update(state["entropy"])
        self._last, self._last_state, self.current = None, None, None
