"""``sac_agent``: acts, stores transitions, relabels on every reward model update, trains, evaluates,
checkpoints.

Subscribes to ``observation`` and ``reward_model``; publishes ``action`` (erl_vlm/Action for the
observation's (episode, step)) and ``episode_summary``. Per observation, in the order of the
in-process trainer: store the transition that led to it, publish the next action, then run the SAC
updates due (they overlap with the simulator's step). Until a reward model arrives the agent
explores (seed steps, then PEBBLE's state entropy); each new model version relabels the whole
replay buffer, the first one also resets the critic. Without new models (a restarting learner) it
keeps acting and training on the last one.

Evaluation (simulation only): every ``eval_every`` env steps, ``eval_episodes`` deterministic
episodes on a private copy of the task with the in-process runner's seeds, so success rates are
comparable. After ``total_steps`` the agent checkpoints, writes ``summary.json`` and exits 0, which
ends the graph. Files: ``<run_dir>/sac_agent/{checkpoint.pt,train.csv,eval.csv,summary.json}``.

Progress: a ``[progress]`` line (:func:`ros2_erl_vlm.core.progress.progress_line`) through the node's
logger every ``progress_period_s`` seconds of wall time, right after every evaluation and every new
reward model, and at the end: env steps of ``total_steps``, the recent steps/s (over the last
``max(60 s, 4 periods)``) and the ETA from it, episodes, the last evaluation's success rate, the
ratings so far and the reward-model version. The agent does not own the ratings and learns them
without coupling the cores: it also subscribes to ``ratings`` and counts the answers and abstentions
by request id (the learner's totals in ``<run_dir>/reward_learner/status.json`` replace them when
larger, e.g. after this agent restarted); the agreement with simulator truth (simulation only) is
the newest trained round's ``truth_agreement`` from that same status file (rewritten every
``status_period_s``, so right after a new model it may still be the previous round's). Without the
file (a learner on another machine) the agreement shows as ``-``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np
from erl_vlm.msg import Action, EpisodeSummary, Observation, Rating, RewardModelUpdate

from ros2_erl_vlm.core import seeds
from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.checkpoint import load_checkpoint, save_checkpoint
from ros2_erl_vlm.core.metrics import MetricsLogger
from ros2_erl_vlm.core.progress import RecentRate, progress_line
from ros2_erl_vlm.core.rl.evaluation import evaluate_policy
from ros2_erl_vlm.core.rl.online_agent import EpisodeStats, OnlineAgent
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.convert import model_from_update, read_observation
from ros2_erl_vlm.ros.frame_input import StepFrameInput, check_frame_replay_memory
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.node_params import loop_config, observation_dim
from ros2_erl_vlm.ros.params import ParamError


class SacAgent(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("bad_observations", "bad_models", "relabels")

    def __init__(self) -> None:
        super().__init__("sac_agent")
        from ros2_erl_vlm.envs import load_task
        from ros2_erl_vlm.envs.metaworld_env import ACTION_DIM

        p = self.p
        self.dir = self.require_run_dir()
        self.config = c = loop_config(p)
        on_arm = bool(p["arm_config"])
        if on_arm and not p["allow_real_training"]:
            raise ParamError("sac_agent: training online on a real (or fake) arm needs "
                             "allow_real_training:=true")
        if on_arm and c.eval_episodes > 0:
            raise ParamError("sac_agent: parameter 'eval_episodes': evaluation runs on the simulator; "
                             "on an arm it must be 0")
        frame_shape = None
        if c.reward.input_kind == "image":
            frame_shape = (c.reward.image_size, c.reward.image_size, 3)
            check_frame_replay_memory(c.replay_capacity, frame_shape)
        self.agent = OnlineAgent(c, observation_dim(p), ACTION_DIM, frame_shape=frame_shape)
        # An image reward model rewards each transition from its step's frame (camera/frames).
        self.frames = (None if frame_shape is None else
                       StepFrameInput(self, self.handle_observation, c.reward.image_size,
                                      float(p["frame_wait_s"])))
        self.eval_env = None
        if c.eval_episodes > 0:
            task = load_task(p["task"], layout=p["layout"] or None)
            if p["max_episode_steps"]:
                task = replace(task, max_episode_steps=int(p["max_episode_steps"]))
            from ros2_erl_vlm.envs import make_env

            self.eval_env = make_env(task, seed=seeds.eval_env_seed(c.seed), render=False)
        self.ckpt = self.dir / "checkpoint.pt"
        self.episodes_done = 0
        self.history: list[dict[str, Any]] = []
        self.metrics: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}
        state = load_checkpoint(self.ckpt) if p["resume"] and self.ckpt.exists() else None
        if state is not None:
            self.agent.load_state_dict(state["agent"])
        self.logger = MetricsLogger(self.dir, tensorboard=bool(p["tensorboard"]),
                                    purge_step=None if state is None else self.agent.step)
        if state is not None:
            self.episodes_done = int(state["episodes_done"])
            self.history = list(state["history"])
            if "log_rows" in state:  # drop log rows written after the checkpoint
                self.logger.truncate(state["log_rows"])
            self.get_logger().info(
                f"resumed at env step {self.agent.step}, model v{self.agent.model_version}")
        self.first_step_time: float | None = None
        self.first_step = self.agent.step
        self.on_arm = on_arm
        period = float(p["progress_period_s"])
        self.recent_rate = RecentRate(max(60.0, 4 * period))
        self.rated: dict[str, bool] = {}  # request id -> answered (False: only abstentions)
        self.learner_status = self.dir.parent / "reward_learner" / "status.json"
        self.progress_step = -1  # env step of the last progress line
        self.pub_action = self.create_publisher(Action, qos.ACTION, qos.ACTION_QOS)
        self.pub_summary = self.create_publisher(EpisodeSummary, qos.EPISODE_SUMMARY, qos.SUMMARY_QOS)
        self.create_subscription(Observation, qos.OBSERVATION, self.on_observation, qos.OBSERVATION_QOS)
        self.create_subscription(RewardModelUpdate, qos.REWARD_MODEL, self.on_model, qos.REWARD_MODEL_QOS)
        self.create_subscription(Rating, qos.RATINGS, self.on_rating, qos.RATING_QOS)
        self.wall_timer(period, self.log_progress)
        if self.agent.step >= c.total_steps:
            self.get_logger().info("the run is already complete")
            self.finish(0)

    # -- observation -> transition, action, learning -------------------------------------------
    def on_observation(self, msg: Observation) -> None:
        """Store, act, learn (see module docstring); with an image reward model, once the step's
        frame is there."""
        if self.frames is not None:
            self.frames.add_observation(msg)
        else:
            self.handle_observation(msg, None)

    def handle_observation(self, msg: Observation, frame: np.ndarray | None) -> None:
        """One observation (and, for an image reward model, its frame or None when it was lost)."""
        if self.done:
            return
        try:
            o = read_observation(msg)
            seen = self.agent.observe(o.episode, o.step, o.state, o.action_taken,
                                      terminated=o.terminated, truncated=o.truncated, truth=o.truth,
                                      frame=frame, frame_lost=self.frames is not None and frame is None)
        except ValueError as exc:
            self.count("bad_observations", f"dropped an observation: {exc}")
            return
        self.counters[f"obs_{seen.kind}"] += 1
        if seen.kind == "transition" and self.first_step_time is None:
            self.first_step_time = time.monotonic()
            self.first_step = self.agent.step - 1
            self.recent_rate.add(self.first_step_time, self.first_step)
        if seen.episode_end is not None:
            self.end_episode(seen.episode_end, msg)
        if seen.kind == "transition":
            self.after_step()
            if self.done:
                return
        if not seen.needs_action:
            return
        if seen.kind == "duplicate" and self.agent.last_action is not None:
            action = self.agent.last_action  # the env asks again: same answer
        else:
            action = self.agent.act(o.state)
        out = Action(episode=o.episode, step=o.step, action=action.astype(np.float32))
        out.header.stamp = msg.header.stamp
        self.pub_action.publish(out)
        if seen.kind != "duplicate":
            self.metrics = self.agent.learn() or self.metrics

    def after_step(self) -> None:
        """Evaluation, checkpoint and the end of the run, at the in-process trainer's steps."""
        c, step = self.config, self.agent.step
        if self.eval_env is not None and step % c.eval_every == 0:
            self.evaluate()
        if step % c.checkpoint_every == 0:
            self.save()
        if step >= c.total_steps:
            self.complete()

    def end_episode(self, st: EpisodeStats, msg: Observation) -> None:
        """Log and publish an episode's totals."""
        self.episodes_done += 1
        self.logger.log("train", self.agent.step, {
            "episode": st.episode, "true_return": st.true_return, "learned_return": st.learned_return,
            "success": float(st.success), "length": st.length, "model_version": self.agent.model_version,
            "wall_s": time.monotonic() - self._t0, **self.metrics})
        out = EpisodeSummary(episode=st.episode, length=st.length, true_return=float(st.true_return),
                             success=bool(st.success), learned_return=float(st.learned_return))
        out.header.stamp = msg.header.stamp
        self.pub_summary.publish(out)

    def on_model(self, msg: RewardModelUpdate) -> None:
        """Adopt a newer reward model: relabel (and, the first time, reset the critic)."""
        if int(msg.version) <= self.agent.model_version:
            return
        try:
            model = model_from_update(msg)
            t0 = time.perf_counter()
            info = self.agent.set_reward_model(model, int(msg.version))
        except ValueError as exc:
            self.count("bad_models", f"rejected reward model v{msg.version}: {exc}")
            return
        if info is not None:
            self.counters["relabels"] += 1
            self.logger.log("relabel", self.agent.step, {**info, "seconds": time.perf_counter() - t0})
            self.get_logger().info(f"reward model v{info['version']}: relabelled {info['relabelled']} "
                                   f"transitions{' (critic reset)' if info['first'] else ''}")
            self.log_progress()

    # -- progress ---------------------------------------------------------------------------------
    def on_rating(self, msg: Rating) -> None:
        """Count a rater answer (or abstention) for the progress line; repeats of an id count once."""
        rid = str(msg.request_id)
        self.rated[rid] = self.rated.get(rid, False) or int(msg.label) >= 0

    def read_learner_status(self) -> dict[str, Any]:
        """The reward learner's status.json ({} when absent or unreadable)."""
        try:
            data = json.loads(self.learner_status.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def progress(self) -> str:
        """The current progress line (see module docstring)."""
        if self.first_step_time is not None:
            self.recent_rate.add(time.monotonic(), self.agent.step)
        learned = self.config.reward_source == "learned"
        ratings = abstentions = None
        agreement = None
        if learned:
            ratings = sum(self.rated.values())
            abstentions = len(self.rated) - ratings
            st = self.read_learner_status()
            if isinstance(st.get("ratings"), int) and isinstance(st.get("abstentions"), int):
                ratings, abstentions = max(ratings, st["ratings"]), max(abstentions, st["abstentions"])
            quality = st.get("last_round_quality")
            value = quality.get("truth_agreement") if isinstance(quality, dict) else None
            agreement = float(value) if isinstance(value, (int, float)) else None
        return progress_line(step=self.agent.step, total_steps=self.config.total_steps,
                             steps_per_s=self.recent_rate.rate(), episodes=self.episodes_done,
                             success_rate=self.last_eval.get("success_rate"), ratings=ratings,
                             abstentions=abstentions or 0, agreement=agreement,
                             show_agreement=learned and not self.on_arm,
                             model_version=self.agent.model_version)

    def log_progress(self, once_per_step: bool = False) -> None:
        """Log :meth:`progress` (the timer, and after evaluations, new models and the last step);
        with ``once_per_step`` not when a line was already logged at this env step."""
        if self.done or (once_per_step and self.progress_step == self.agent.step):
            return
        self.progress_step = self.agent.step
        self.get_logger().info(self.progress())

    # -- evaluation, checkpoints, the end ------------------------------------------------------
    def evaluate(self) -> None:
        """Deterministic episodes on the private eval env."""
        assert self.eval_env is not None
        res = evaluate_policy(self.agent.sac, self.eval_env, self.config.eval_episodes, self.config.seed)
        out = {**res, "model_version": self.agent.model_version, "wall_s": time.monotonic() - self._t0}
        self.last_eval = out
        self.history.append({"step": self.agent.step, **out})
        self.logger.log("eval", self.agent.step, out)
        self.get_logger().info(f"eval at step {self.agent.step}: success {res['success_rate']:.2f}")
        self.log_progress()

    def save(self) -> None:
        """Atomic checkpoint of the agent (with its replay buffer) and the history."""
        save_checkpoint(self.ckpt, {"agent": self.agent.state_dict(), "episodes_done": self.episodes_done,
                                    "history": self.history, "log_rows": self.logger.row_counts()})

    def steps_per_s(self) -> float:
        """Env steps per second since the first transition of this process."""
        if self.first_step_time is None:
            return math.nan
        dt = time.monotonic() - self.first_step_time
        return (self.agent.step - self.first_step) / dt if dt > 0 else math.nan

    def complete(self) -> None:
        """Checkpoint, write the summary and stop (exit 0)."""
        self.log_progress(once_per_step=True)  # the last line shows the total (unless an eval's did)
        self.save()
        summary = {"steps": self.agent.step, "episodes": self.episodes_done,
                   "model_version": self.agent.model_version, "relabels": self.agent.relabels,
                   "sac_updates": self.agent.updates, "steps_per_s": self.steps_per_s(),
                   "final_success_rate": self.last_eval.get("success_rate"), "eval": self.history,
                   "counters": dict(self.counters), "config": asdict(self.config)}
        write_text_atomic(self.dir / "summary.json", json.dumps(summary, indent=2, default=str))
        self.get_logger().info(f"done: {self.agent.step} env steps, {self.episodes_done} episodes, "
                               f"{summary['steps_per_s']:.1f} steps/s")
        self.finish(0)

    def status(self) -> dict[str, Any]:
        """Progress."""
        return {"step": self.agent.step, "episodes": self.episodes_done, "phase": self.agent.phase,
                "model_version": self.agent.model_version, "relabels": self.agent.relabels,
                "sac_updates": self.agent.updates, "steps_per_s": self.steps_per_s(),
                "last_eval": self.last_eval, "lost_frames": self.agent.lost_frames,
                **(self.frames.status() if getattr(self, "frames", None) is not None else {})}

    def close(self) -> None:
        """Checkpoint (when interrupted) and close files."""
        if not self.done:
            self.save()
        super().close()
        self.logger.close()
        if self.eval_env is not None:
            self.eval_env.close()


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``sac_agent`` executable."""
    return run_node(SacAgent, args)


if __name__ == "__main__":
    sys.exit(main())
