"""The ERL-VLM online loop, in-process and ROS-free (the reference runner and the benchmarks).

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
import torch

from ros2_erl_vlm.core.checkpoint import load_checkpoint, save_checkpoint
from ros2_erl_vlm.core.config import LoopConfig, TaskInfo
from ros2_erl_vlm.core.episode_store import Episode, EpisodeRecorder, EpisodeStore, episode_seed
from ros2_erl_vlm.core.frames import FrameCodec
from ros2_erl_vlm.core.metrics import MetricsLogger
from ros2_erl_vlm.core.rating.dataset import DatasetSpec, RatingDataset
from ros2_erl_vlm.core.rating.quality import BinFn, round_quality, truth_meta
from ros2_erl_vlm.core.rating.rater import Rater, RatingQuery, SimTruth
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble
from ros2_erl_vlm.core.reward.segment_selection import (
    Segment,
    sample_disagreement,
    sample_uniform,
)
from ros2_erl_vlm.core.rl.entropy import StateEntropyReward
from ros2_erl_vlm.core.rl.evaluation import evaluate_policy
from ros2_erl_vlm.core.rl.replay_buffer import ReplayBuffer
from ros2_erl_vlm.core.rl.sac import SAC
from ros2_erl_vlm.core.schedule import QuerySchedule, acts_randomly, can_update, sac_phase


class Env(Protocol):
    """The gymnasium subset the loop uses (``info`` carries ``success``/``true_reward``/``progress``)."""

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


class EnvDataError(RuntimeError):
    """The environment returned unusable data (a non-finite observation or reward)."""


class ErlVlmTrainer:
    """Runs the loop of the module docstring on one env with one rater.

    Args:
        config: loop settings (validated).
        env: training env; ``eval_env``: a second instance for evaluation (may be ``None``).
        rater: any :class:`~ros2_erl_vlm.core.rating.rater.Rater` (oracle, VLM backend, replay).
        task: instruction and class names sent with every query.
        run_dir: where ratings, checkpoints and logs go (``None``: nothing written).
        progress: callback ``(step, total, postfix)`` for a progress bar.
        bin_truth: the task's truth binning (``TaskSpec.bin_truth``); with it every rating round
            logs its quality against simulator truth (``truth_agreement``, ``truth_above_bottom``
            in ``reward.csv``; see :func:`~ros2_erl_vlm.core.rating.quality.round_quality`).
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
        self.bin_truth = bin_truth
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.rng = np.random.default_rng(c.seed)
        torch.manual_seed(c.seed)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.action_dim = int(np.prod(env.action_space.shape))
        self.use_frames = c.reward.input_kind == "image"
        # Frames for the rater only: compressed, as the graph's camera_capture keeps them.
        self.frame_codec = None if self.use_frames or not c.query_frames else FrameCodec("jpeg", 90)
        frame_shape = (c.reward.image_size, c.reward.image_size, 3) if self.use_frames else None
        self.agent = SAC(self.obs_dim, self.action_dim, c.sac, seed=c.seed)
        self.replay = ReplayBuffer(self.obs_dim, self.action_dim, c.replay_capacity, frame_shape, seed=c.seed)
        self.reward_model = RewardEnsemble(c.reward, obs_dim=self.obs_dim, seed=c.seed + 1)
        input_shape = ((c.segment_length, *frame_shape) if frame_shape
                       else (c.segment_length, self.obs_dim))
        self.dataset = RatingDataset(
            DatasetSpec(c.num_classes, c.reward.input_kind, input_shape), capacity=c.max_feedback,
            path=None if self.run_dir is None else self.run_dir / "ratings.erlr",
        )
        self.episodes = EpisodeStore(c.episode_store_size)
        self.entropy = StateEntropyReward()
        self.logger = MetricsLogger(self.run_dir, tensorboard=tensorboard)
        self.step = 0
        self.episode = 0
        self.schedule = QuerySchedule()
        self.abstentions = 0
        self.last_eval: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self._wall0 = time.perf_counter()
        #: Set (e.g. from a signal handler) to make :meth:`run` stop at the next step boundary.
        self.stop_requested = False

    # -- schedule counters (kept as attributes for callers and checkpoints) ----------------------
    @property
    def queries_asked(self) -> int:
        """Queries asked so far."""
        return self.schedule.queries_asked

    @queries_asked.setter
    def queries_asked(self, value: int) -> None:
        self.schedule.queries_asked = int(value)

    @property
    def rounds(self) -> int:
        """Reward-learning rounds run so far."""
        return self.schedule.rounds

    @property
    def reward_learning_started(self) -> bool:
        """True once the first reward-learning round ran."""
        return self.schedule.started

    @property
    def last_query_step(self) -> int:
        """Env step of the last reward-learning round (-1: none)."""
        return self.schedule.last_query_step

    # -- one reward-learning round ------------------------------------------------------------
    def _segment_input(self, ep: Episode, seg: Segment) -> np.ndarray:
        sl = slice(seg.start, seg.start + seg.length)
        if self.use_frames:
            assert ep.frames is not None
            return ep.frames[sl]
        return ep.next_obs[sl]

    def _make_query(self, ep: Episode, seg: Segment) -> RatingQuery:
        sl = slice(seg.start, seg.start + seg.length)
        return RatingQuery(
            episode=ep.episode_id, steps=seg.steps, instruction=self.task.instruction,
            class_names=self.task.class_names,
            frames=None if ep.frames is None else ep.frames[sl],
            states=ep.next_obs[sl], truth=None if ep.truth is None else ep.truth[sl],
            query_id=f"e{ep.episode_id}s{seg.start}",
        )

    def collect_ratings(self) -> dict[str, float]:
        """Sample segments, ask the rater, persist every result; returns round statistics."""
        c = self.config
        n = self.schedule.budget(c)
        if n <= 0 or len(self.episodes) == 0:
            return {"asked": 0, "rated": 0, "abstained": 0}
        if c.query_strategy == "uniform" or self.reward_model.num_ratings_seen == 0:
            segments = sample_uniform(self.episodes, n, self.rng, c.segment_length)
        else:
            segments = sample_disagreement(
                self.episodes, n, self.rng,
                lambda x: self.reward_model.member_rewards(x).numpy(),
                c.segment_length, use_frames=self.use_frames)
        eps = [self.episodes[s.index] for s in segments]
        queries = [self._make_query(ep, s) for ep, s in zip(eps, segments, strict=True)]
        assert self.rater is not None
        results = self.rater.rate(queries)
        if len(results) != len(queries):
            raise RuntimeError(f"rater returned {len(results)} results for {len(queries)} queries")
        rated = 0
        for ep, seg, q, res in zip(eps, segments, queries, results, strict=True):
            # Persisted before use: RatingDataset.add writes the log record first.
            ok = self.dataset.add(self._segment_input(ep, seg), res, episode=ep.episode_id,
                                  steps=list(seg.steps), env_step=self.step, **truth_meta(q.truth))
            rated += int(ok)
        self.abstentions += n - rated
        quality = {} if self.bin_truth is None else round_quality(
            ((q.truth, r.label) for q, r in zip(queries, results, strict=True)), self.bin_truth,
            c.num_classes)
        return {"asked": n, "rated": rated, "abstained": n - rated, **quality}

    def learn_reward(self) -> dict[str, float]:
        """One full round: ratings, reward training, relabelling (booked in the schedule)."""
        t0 = time.perf_counter()
        stats = self.collect_ratings()
        self.schedule.record_round(self.step, stats["asked"])
        version = self.reward_model.version
        tr = self.reward_model.train_on(self.dataset, self.rng)
        # No new model (nothing rated yet, or a diverged training kept the old one): nothing to relabel.
        relabelled = self.replay.relabel(self._reward_fn) if self.reward_model.version > version else 0
        out = {**stats, "dataset": len(self.dataset), "reward_loss": tr.loss,
               "reward_acc": tr.accuracy, "reward_epochs": tr.epochs, "relabelled": relabelled,
               "round_s": time.perf_counter() - t0, "model_version": self.reward_model.version,
               "reward_diverged": int(tr.diverged)}
        for c, cnt in enumerate(self.dataset.class_counts()):
            out[f"class_{c}"] = int(cnt)
        self.logger.log("reward", self.step, out)
        return out

    def _reward_fn(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.reward_model.predict(inputs)

    # -- the loop -----------------------------------------------------------------------------
    def _sac_update(self, phase: str) -> dict[str, float]:
        c = self.config
        obs, act, rew, nobs, nd = self.replay.sample(c.sac.batch_size)
        if phase == "unsup":
            memory = self.replay.next_obs[: len(self.replay)]
            rew = self.entropy(nobs, memory)
        return self.agent.update(obs, act, rew, nobs, nd)

    def _learn(self) -> dict[str, float] | None:
        """Reward learning and SAC updates due at the current step (see module docstring)."""
        c = self.config
        metrics = None
        if self.schedule.due(c, self.step, len(self.episodes)):
            had_model = self.reward_model.version > 0
            self.learn_reward()
            # PEBBLE: a fresh critic on the first learned reward (a round that produced no model,
            # e.g. every query abstained, leaves the agent exploring as before)
            if not had_model and self.reward_model.version > 0:
                self.agent.reset_critic()
                for _ in range(c.reset_updates):
                    metrics = self._sac_update("reward")
                return metrics
        phase = sac_phase(c, self.step, self.reward_model.version)
        if phase == "seed" or not can_update(c.sac.batch_size, len(self.replay)):
            return None
        for _ in range(c.updates_per_step):
            metrics = self._sac_update(phase)
        return metrics

    def _step_reward(self, next_obs: np.ndarray, frame: np.ndarray | None, true_reward: float) -> float:
        if self.config.reward_source == "true":
            return true_reward
        x = frame[None] if frame is not None else next_obs[None]
        return float(self.reward_model.predict(x)[0])

    def _render(self) -> np.ndarray | None:
        if not (self.use_frames or self.config.query_frames):
            return None
        frame = self.env.render()
        if frame is None:
            need = "image reward model" if self.use_frames else "rater (query_frames)"
            raise RuntimeError(f"the {need} needs an env with render_mode='rgb_array'")
        return frame

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
        obs, _ = self.env.reset(seed=episode_seed(c.seed, self.episode))
        recorder = EpisodeRecorder(self.episode, self.frame_codec)
        ep_true_return, ep_success, ep_learned = 0.0, False, 0.0
        metrics: dict[str, float] = {}
        while self.step < c.total_steps:
            if self.stop_requested:
                if self.run_dir is not None:
                    self.save(self.run_dir / "checkpoint.pt")
                self.close()
                return {"interrupted": True, "steps": self.step}
            # Act.
            if acts_randomly(c, self.step):
                action = self.rng.uniform(-1, 1, self.action_dim).astype(np.float32)
            else:
                action = self.agent.act(obs)
            # Learn.
            metrics = self._learn() or metrics
            # Step.
            next_obs, env_reward, terminated, truncated, info = self.env.step(action)
            true_reward = float(info.get("true_reward", env_reward))
            if not np.all(np.isfinite(next_obs)):
                raise EnvDataError(f"env returned a non-finite observation at step {self.step}")
            if not (math.isfinite(env_reward) and math.isfinite(true_reward)):
                raise EnvDataError(f"env returned a non-finite reward at step {self.step} "
                                   f"(reward {env_reward!r}, true_reward {true_reward!r})")
            frame = self._render()
            success = bool(info.get("success", False))
            model_frame = frame if self.use_frames else None  # else the frame is for the rater only
            r = self._step_reward(next_obs, model_frame, true_reward)
            self.replay.add(obs, action, r, next_obs, terminated, model_frame)
            truth = SimTruth(true_reward, success, info.get("progress"))
            recorder.add(next_obs, action, truth, frame)
            ep_true_return += true_reward
            ep_learned += r
            ep_success |= success
            obs = next_obs
            self.step += 1
            if terminated or truncated:
                self.episodes.add(recorder.finish())
                self.logger.log("train", self.step, {
                    "episode": self.episode, "true_return": ep_true_return,
                    "learned_return": ep_learned, "success": float(ep_success),
                    "length": len(recorder), **{k: v for k, v in metrics.items()},
                })
                self.episode += 1
                obs, _ = self.env.reset(seed=episode_seed(c.seed, self.episode))
                recorder = EpisodeRecorder(self.episode, self.frame_codec)
                ep_true_return, ep_success, ep_learned = 0.0, False, 0.0
            if self.eval_env is not None and c.eval_episodes and self.step % c.eval_every == 0:
                self.evaluate()
            if self.run_dir is not None and self.step % c.checkpoint_every == 0:
                self.save(self.run_dir / "checkpoint.pt")
            if self.progress is not None and (self.step % 100 == 0 or self.step == c.total_steps):
                self.progress(self.step, c.total_steps, {
                    "ep": self.episode, "ratings": len(self.dataset),
                    "succ": self.last_eval.get("success_rate", float("nan"))})
        return self.finish()

    def evaluate(self) -> dict[str, float]:
        """Deterministic-policy episodes on the eval env: success rate (max over each episode)."""
        assert self.eval_env is not None
        c = self.config
        result = evaluate_policy(self.agent, self.eval_env, c.eval_episodes, c.seed)
        out = {**result, "ratings": len(self.dataset), "wall_s": time.perf_counter() - self._wall0}
        self.last_eval = out
        self.history.append({"step": self.step, **out})
        self.logger.log("eval", self.step, out)
        return out

    def finish(self) -> dict[str, Any]:
        """Write the summary and close files."""
        summary = {
            "config": asdict(self.config), "task": asdict(self.task), "steps": self.step,
            "episodes": self.episode, "ratings": len(self.dataset), "queries": self.queries_asked,
            "abstentions": self.abstentions, "reward_rounds": self.rounds,
            "wall_s": time.perf_counter() - self._wall0, "eval": self.history,
            "final_success_rate": self.last_eval.get("success_rate"),
        }
        if self.run_dir is not None:
            self.save(self.run_dir / "checkpoint.pt")
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        self.close()
        return summary

    def close(self) -> None:
        """Close the logs and the rating log (releasing its lock). Safe to call twice."""
        self.logger.close()
        self.dataset.close()

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Atomic checkpoint of agent, reward model, replay, episode store and counters."""
        return save_checkpoint(path, {
            "agent": self.agent.state_dict(), "reward_model": self.reward_model.state_dict(),
            "replay": self.replay.state_dict(), "episodes": self.episodes.episodes,
            "counters": {"step": self.step, "episode": self.episode,
                         "queries_asked": self.queries_asked, "rounds": self.rounds,
                         "abstentions": self.abstentions,
                         "reward_learning_started": self.reward_learning_started,
                         "last_query_step": self.last_query_step},
            "rng": self.rng.bit_generator.state, "history": self.history,
            "log_rows": self.logger.row_counts(),
            "entropy": vars(self.entropy.stats), "config": asdict(self.config),
        })

    def load(self, path: str | Path) -> None:
        """Resume from :meth:`save` output (ratings come from the persistent rating log)."""
        state = load_checkpoint(path)
        self.agent.load_state_dict(state["agent"])
        self.reward_model.load_state_dict(state["reward_model"])
        self.replay.load_state_dict(state["replay"])
        for ep in state["episodes"]:
            self.episodes.add(ep)
        cnt = state["counters"]
        self.step, self.episode = int(cnt["step"]), int(cnt["episode"])
        self.schedule.load_state_dict({"started": cnt["reward_learning_started"],
                                       "last_query_step": cnt["last_query_step"],
                                       "queries_asked": cnt["queries_asked"],
                                       "rounds": cnt["rounds"]})
        self.abstentions = int(cnt["abstentions"])
        self.rng.bit_generator.state = state["rng"]
        self.history = list(state["history"])
        vars(self.entropy.stats).update(state["entropy"])
        if "log_rows" in state:  # checkpoints from before it was stored: logs kept as they are
            self.logger.truncate(state["log_rows"])
        # Ratings persisted after the checkpoint are kept: the log is the source of truth.
        self.queries_asked = max(self.queries_asked, self.dataset.total_added + self.dataset.num_abstentions)
