"""The ERL-VLM online loop in one process, ROS-free (the reference runner and the benchmarks).

Built from the same two halves the node graph runs: :class:`~ros2_erl_vlm.core.rl.online_agent.OnlineAgent`
(``sac_agent``: acting, replay, SAC updates, relabelling, the critic reset) and
:class:`~ros2_erl_vlm.core.reward.reward_learner.RewardLearner` (``reward_learner``: episode store,
segment selection, request and rating persistence, reward training). This module only steps the
env, asks the rater synchronously, evaluates, logs and checkpoints.

Per env step (PEBBLE schedule, as the paper's reference code):

1. ``step < num_seed_steps``: uniformly random actions;
2. ``num_seed_steps <= step < learn_start``: SAC driven by PEBBLE's state-entropy reward
   (``num_unsup_steps``; 0 disables);
3. at ``learn_start``: query ``queries_per_round`` segments, train the reward ensemble, relabel the
   whole replay buffer, reset the critic and run ``reset_updates`` SAC updates;
4. then every ``query_every`` steps (until ``max_feedback`` ratings): query, retrain, relabel;
5. one SAC update per step on the learned reward.

``reward_source="true"`` trains SAC on the environment's dense reward instead (the upper-bound
baseline): no queries, no unsupervised phase.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ros2_erl_vlm.core import seeds
from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.checkpoint import load_checkpoint, save_checkpoint
from ros2_erl_vlm.core.config import LoopConfig, TaskInfo
from ros2_erl_vlm.core.frames import FrameCodec
from ros2_erl_vlm.core.metrics import MetricsLogger
from ros2_erl_vlm.core.rating.quality import BinFn
from ros2_erl_vlm.core.rating.rater import Rater, SimTruth
from ros2_erl_vlm.core.reward.reward_learner import PendingRequest, RewardLearner
from ros2_erl_vlm.core.reward.round_log import round_row
from ros2_erl_vlm.core.rl.evaluation import evaluate_policy
from ros2_erl_vlm.core.rl.online_agent import OnlineAgent

#: Checkpoint keys of the loop (each half checkpoints itself through its ``state_dict``).
CHECKPOINT_KEYS = ("agent", "learner", "loop")


class Env(Protocol):
    """The gymnasium subset the loop uses (``info`` carries ``success``/``true_reward``/``progress``
    and, optionally, ``sim_state``: the simulator state that re-renders the step)."""

    observation_space: Any
    action_space: Any

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: ``(observation, info)``."""
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """``(observation, reward, terminated, truncated, info)``."""
        ...

    def render(self) -> np.ndarray | None:
        """The task camera's frame (None when the env does not render)."""
        ...


def _sim_state(info: dict[str, Any]) -> np.ndarray | None:
    """The step's simulator state from the env's ``info`` (``sim_state``; None when absent), kept with
    the truth so the reward learner's requests can re-render a rated step."""
    state = info.get("sim_state")
    return None if state is None else np.asarray(state, dtype=np.float64).reshape(-1)


class EnvDataError(RuntimeError):
    """The environment returned unusable data (a non-finite observation or reward)."""


class ErlVlmTrainer:
    """Runs the loop of the module docstring on one env with one rater.

    Args:
        config: loop settings (validated).
        env: training env; ``eval_env``: a second instance for evaluation (may be ``None``).
        rater: any :class:`~ros2_erl_vlm.core.rating.rater.Rater` (oracle, VLM backend, replay).
        task: instruction and class names sent with every query.
        run_dir: where ratings, requests, models, checkpoints and logs go (``None``: nothing written).
        progress: callback ``(step, total, postfix)`` for a progress bar.
        bin_truth: the task's truth binning (``TaskSpec.bin_truth``); with it every rating round
            logs its quality against simulator truth (``truth_agreement``, ``truth_above_bottom``
            in ``reward.csv``; see :func:`~ros2_erl_vlm.core.rating.quality.round_quality`).

    Attributes:
        agent: the agent half (:class:`OnlineAgent`: SAC, replay, schedule's agent side).
        learner: the reward half (:class:`RewardLearner`), ``None`` for ``reward_source="true"``.
    """

    def __init__(self, config: LoopConfig, env: Env, rater: Rater | None, task: TaskInfo,
                 run_dir: str | Path | None = None, eval_env: Env | None = None,
                 progress: Callable[[int, int, dict[str, Any]], None] | None = None,
                 tensorboard: bool = True, bin_truth: BinFn | None = None) -> None:
        self.config = c = config.validate()
        if c.reward_source == "learned" and rater is None:
            raise ValueError("a learned-reward run needs a rater")
        if len(task.class_names) != c.num_classes:
            raise ValueError(f"task has {len(task.class_names)} class names, config says {c.num_classes}")
        self.env, self.eval_env, self.rater, self.task = env, eval_env, rater, task
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        obs_dim = int(np.prod(env.observation_space.shape))
        action_dim = int(np.prod(env.action_space.shape))
        self.use_frames = c.reward.input_kind == "image"
        frame_shape = (c.reward.image_size, c.reward.image_size, 3) if self.use_frames else None
        # One process, one random stream: the agent and the reward learner share the generator.
        rng = seeds.agent_rng(c.seed)
        self.agent = OnlineAgent(c, obs_dim, action_dim, rng=rng, frame_shape=frame_shape)
        self.learner: RewardLearner | None = None
        if c.reward_source == "learned":
            # Frames for the rater only: compressed, as the graph's camera_capture keeps them.
            codec = None if self.use_frames or not c.query_frames else FrameCodec("jpeg", 90)
            self.learner = RewardLearner(c, obs_dim, task, self.run_dir, bin_truth=bin_truth, rng=rng,
                                         frame_codec=codec, frame_shape=frame_shape,
                                         checkpoint_episodes=True)
            # The agent rewards with the learner's live ensemble (untrained until the first round).
            self.agent.share_reward_model(self.learner.model)
        self.logger = MetricsLogger(self.run_dir, tensorboard=tensorboard)
        self.episode = 0
        self.last_eval: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self._wall0 = time.perf_counter()
        #: Set (e.g. from a signal handler) to make :meth:`run` stop at the next step boundary.
        self.stop_requested = False

    @property
    def step(self) -> int:
        """Env steps taken (transitions stored)."""
        return self.agent.step

    # -- one reward-learning round ------------------------------------------------------------
    def _rate(self, requests: list[PendingRequest]) -> dict[str, int]:
        """Ask the rater about ``requests`` and store every answer (persisted before use)."""
        assert self.learner is not None and self.rater is not None
        if not requests:
            return {"rated": 0, "abstained": 0}
        results = self.rater.rate([self.learner.query(r) for r in requests])
        if len(results) != len(requests):
            raise RuntimeError(f"rater returned {len(results)} results for {len(requests)} queries")
        statuses = [self.learner.on_rating(req.request_id, res)
                    for req, res in zip(requests, results, strict=True)]
        return {"rated": statuses.count("rated"), "abstained": statuses.count("abstained")}

    def learn_reward(self) -> dict[str, Any]:
        """One round: queries, ratings, reward training, the agent adopting the new model.

        Returns the round's ``reward.csv`` row plus ``adopted`` (what the agent made of the new
        model version, None when there is none)."""
        assert self.learner is not None
        t0 = time.perf_counter()
        requests = self.learner.start_round()
        counts = self._rate(self.learner.due_for_sending(time.monotonic(), 0.0))
        trained = self.learner.train()
        adopted = None if trained is None else self.agent.set_reward_model(self.learner.model,
                                                                          trained.version)
        out = {"asked": len(requests), **counts, **round_row(self.learner),
               "relabelled": 0 if adopted is None else adopted["relabelled"],
               "round_s": time.perf_counter() - t0}
        self.logger.log("reward", self.step, out)
        return {**out, "adopted": adopted}

    # -- the loop -----------------------------------------------------------------------------
    def _learn(self) -> dict[str, float] | None:
        """The reward round and SAC updates due at the current step: a step that adopted the
        first reward model ran the critic reset's updates instead of its own."""
        if self.learner is not None and self.learner.round_due():
            adopted = self.learn_reward()["adopted"]
            if adopted is not None and adopted["first"]:
                return adopted["metrics"]
        return self.agent.learn()

    def _render(self) -> np.ndarray | None:
        if not (self.use_frames or self.config.query_frames):
            return None
        frame = self.env.render()
        if frame is None:
            need = "image reward model" if self.use_frames else "rater (query_frames)"
            raise RuntimeError(f"the {need} needs an env with render_mode='rgb_array'")
        return frame

    def _observe(self, step: int, obs: np.ndarray, action: np.ndarray, truth: SimTruth | None,
                 terminated: bool = False, truncated: bool = False,
                 frame: np.ndarray | None = None) -> float:
        """Hand one observation to both halves; returns the reward stored with the transition."""
        seen = self.agent.observe(self.episode, step, obs, action, terminated=terminated,
                                  truncated=truncated, truth=truth, frame=frame)
        if self.learner is not None:
            self.learner.observe(self.episode, step, obs, action, truth, terminated or truncated, frame)
        return 0.0 if seen.reward is None else seen.reward

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=seeds.episode_seed(self.config.seed, self.episode))
        self._observe(0, obs, np.zeros(0, np.float32), None)
        return obs

    def run(self) -> dict[str, Any]:
        """Train until ``total_steps``; returns a summary (also written to ``summary.json``).

        When :attr:`stop_requested` is set the loop stops between two steps (never inside a
        reward training or an SAC update), checkpoints, closes its files and returns
        ``{"interrupted": True, "steps": ...}`` instead.

        Raises:
            EnvDataError: the environment returned a non-finite observation or reward (the
                transition is not stored; everything before it is intact and can be saved).
        """
        c = self.config
        if self.learner is not None and self.learner.pending:
            self._rate(self.learner.due_for_sending(time.monotonic(), 0.0))  # asked before a stop
        obs = self._reset()
        t = 0  # step within the episode
        ep_true_return, ep_success, ep_learned = 0.0, False, 0.0
        metrics: dict[str, float] = {}
        while self.step < c.total_steps:
            if self.stop_requested:
                if self.run_dir is not None:
                    self.save(self.run_dir / "checkpoint.pt")
                self.close()
                return {"interrupted": True, "steps": self.step}
            action = self.agent.act(obs)
            metrics = self._learn() or metrics
            next_obs, env_reward, terminated, truncated, info = self.env.step(action)
            true_reward = float(info.get("true_reward", env_reward))
            if not np.all(np.isfinite(next_obs)):
                raise EnvDataError(f"env returned a non-finite observation at step {self.step}")
            if not (math.isfinite(env_reward) and math.isfinite(true_reward)):
                raise EnvDataError(f"env returned a non-finite reward at step {self.step} "
                                   f"(reward {env_reward!r}, true_reward {true_reward!r})")
            frame = self._render()
            success = bool(info.get("success", False))
            truth = SimTruth(true_reward, success, info.get("progress"), _sim_state(info))
            t += 1
            r = self._observe(t, next_obs, action, truth, bool(terminated), bool(truncated), frame)
            ep_true_return += true_reward
            ep_learned += r
            ep_success |= success
            obs = next_obs
            if terminated or truncated:
                self.logger.log("train", self.step, {
                    "episode": self.episode, "true_return": ep_true_return,
                    "learned_return": ep_learned, "success": float(ep_success),
                    "length": t, **metrics,
                })
                self.episode += 1
                obs = self._reset()
                t = 0
                ep_true_return, ep_success, ep_learned = 0.0, False, 0.0
            if self.eval_env is not None and c.eval_episodes and self.step % c.eval_every == 0:
                self.evaluate()
            if self.run_dir is not None and self.step % c.checkpoint_every == 0:
                self.save(self.run_dir / "checkpoint.pt")
            if self.progress is not None and (self.step % 100 == 0 or self.step == c.total_steps):
                self.progress(self.step, c.total_steps, {
                    "ep": self.episode, "ratings": self.num_ratings,
                    "succ": self.last_eval.get("success_rate", float("nan"))})
        return self.finish()

    @property
    def num_ratings(self) -> int:
        """Ratings stored so far (abstentions excluded)."""
        return 0 if self.learner is None else len(self.learner.dataset)

    def evaluate(self) -> dict[str, float]:
        """Deterministic-policy episodes on the eval env: success rate (max over each episode)."""
        assert self.eval_env is not None
        c = self.config
        result = evaluate_policy(self.agent.sac, self.eval_env, c.eval_episodes, c.seed)
        out = {**result, "ratings": self.num_ratings, "wall_s": time.perf_counter() - self._wall0}
        self.last_eval = out
        self.history.append({"step": self.step, **out})
        self.logger.log("eval", self.step, out)
        return out

    def finish(self) -> dict[str, Any]:
        """Write the summary and close files."""
        lr = self.learner
        summary = {
            "config": asdict(self.config), "task": asdict(self.task), "steps": self.step,
            "episodes": self.episode, "ratings": self.num_ratings,
            "queries": 0 if lr is None else lr.schedule.queries_asked,
            "abstentions": 0 if lr is None else lr.dataset.num_abstentions,
            "reward_rounds": 0 if lr is None else lr.schedule.rounds,
            "wall_s": time.perf_counter() - self._wall0, "eval": self.history,
            "final_success_rate": self.last_eval.get("success_rate"),
        }
        if self.run_dir is not None:
            self.save(self.run_dir / "checkpoint.pt")
            write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
        self.close()
        return summary

    def close(self) -> None:
        """Close the logs and the rating and request logs (releasing their locks). Safe to call twice."""
        self.logger.close()
        if self.learner is not None:
            self.learner.close()

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Atomic checkpoint: each half's ``state_dict`` plus the loop's own counters."""
        return save_checkpoint(path, {
            "agent": self.agent.state_dict(),
            "learner": None if self.learner is None else self.learner.state_dict(),
            "loop": {"episode": self.episode, "history": self.history,
                     "log_rows": self.logger.row_counts(), "config": asdict(self.config)},
        })

    def load(self, path: str | Path) -> None:
        """Resume from :meth:`save` output (ratings and requests logged after it are kept)."""
        state = load_checkpoint(path)
        self.agent.load_state_dict(state["agent"])
        if self.learner is not None and state["learner"] is not None:
            self.learner.load_state_dict(state["learner"])
        loop = state["loop"]
        self.episode = int(loop["episode"])
        self.history = list(loop["history"])
        self.logger.truncate(loop["log_rows"])
