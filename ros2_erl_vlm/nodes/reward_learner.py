"""``reward_learner``: episode store, query selection, rating dataset, reward training, model updates.

Subscribes to ``observation`` (builds the recent-episode store) and ``ratings``; publishes
``rating_requests`` (to camera_capture, which adds frames for the rater) and ``reward_model``
(erl_vlm/RewardModelUpdate: version, SHA-256, weights inline or a file path; reliable and
transient-local, so a restarted agent gets the newest model).

The loop follows :mod:`ros2_erl_vlm.core.schedule` (first round after ``num_seed_steps +
num_unsup_steps`` env steps, then every ``query_every``, until ``max_feedback``): sample segments,
persist and send the requests, store each rating as it arrives (persisted first; duplicates
ignored), train once the round is answered (or after ``rating_timeout_s``), publish the new
version. Unanswered requests are re-sent every ``request_retry_s`` (``max_attempts`` times, then
recorded as abstentions; a rating that still arrives later is stored and used). Everything lives
in ``<run_dir>/reward_learner/`` and a restarted learner continues where it stopped (see
:mod:`ros2_erl_vlm.core.reward.reward_learner`).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
from erl_vlm.msg import Observation, Rating, RatingRequest, RewardModelUpdate

from ros2_erl_vlm.core.config import TaskInfo
from ros2_erl_vlm.core.frames import FrameCodec
from ros2_erl_vlm.core.metrics import MetricsLogger
from ros2_erl_vlm.core.rating.quality import describe_round_quality
from ros2_erl_vlm.core.reward.reward_learner import RewardLearner, TrainedModel
from ros2_erl_vlm.core.reward.round_log import round_answer_counts, round_row
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.convert import (
    model_update_msg,
    read_observation,
    request_msg,
    result_from_rating,
)
from ros2_erl_vlm.ros.frame_input import StepFrameInput
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.node_params import loop_config, observation_dim


class RewardLearnerNode(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("bad_observations", "bad_ratings", "models_published")

    def __init__(self) -> None:
        super().__init__("reward_learner")
        from ros2_erl_vlm.envs import load_task

        p = self.p
        node_dir = self.require_run_dir()
        task = load_task(p["task"])
        n = int(p["num_classes"]) or task.num_classes
        self.config = loop_config(p, num_classes=n)
        self.task = TaskInfo(task.name, task.instruction, task.class_names(n))
        c = self.config
        image = c.reward.input_kind == "image"
        # An image reward model rates and trains on camera/frames; the episode store keeps them
        # losslessly (PNG: the same pixels the agent's reward sees) to bound its memory.
        self.learner = RewardLearner(c, observation_dim(p), self.task, node_dir,
                                     checkpoint_path=node_dir / "checkpoint.pt",
                                     max_attempts=int(p["max_attempts"]), bin_truth=task.bin_truth,
                                     frame_codec=FrameCodec("png") if image else None,
                                     frame_shape=(c.reward.image_size, c.reward.image_size, 3)
                                     if image else None)
        self.frames = (StepFrameInput(self, self.handle_observation, c.reward.image_size,
                                      float(p["frame_wait_s"])) if image else None)
        self.close_at_exit(self.learner)  # checkpoints and closes the logs
        # One reward.csv row per trained round (written after the learner's checkpoint, so a
        # restart never logs a round twice), as the in-process loop writes it; plus TensorBoard.
        self.logger = MetricsLogger(node_dir, tensorboard=bool(p["tensorboard"]))
        self.close_at_exit(self.logger)
        self.round_asked = sum(1 for r in self.learner.pending.values()
                               if r.round == self.learner.current_round)
        self.round_t0 = time.perf_counter()
        self.active = self.config.reward_source == "learned"
        self.pub_requests = self.create_publisher(RatingRequest, qos.RATING_REQUESTS, qos.RATING_QOS)
        self.pub_model = self.create_publisher(RewardModelUpdate, qos.REWARD_MODEL, qos.REWARD_MODEL_QOS)
        self.create_subscription(Observation, qos.OBSERVATION, self.on_observation, qos.OBSERVATION_QOS)
        self.create_subscription(Rating, qos.RATINGS, self.on_rating, qos.RATING_QOS)
        self.wall_timer(0.2, self.tick)
        for log in (self.learner.dataset, self.learner.requests):
            if log.recovered_tail_bytes:
                self.get_logger().warning(
                    f"{log.path}: cut a damaged tail of {log.recovered_tail_bytes} bytes left by a crash "
                    f"(the whole file was kept as {log.backup_path})")
        if self.learner.resumed:
            self.get_logger().info(
                f"resumed: model v{self.learner.version}, {len(self.learner.dataset)} ratings, "
                f"{len(self.learner.pending)} requests pending, {self.learner.env_steps} env steps")
            latest = self.learner.export()
            if latest is not None:
                self.publish_model(latest)

    # -- callbacks ------------------------------------------------------------------------------
    def on_observation(self, msg: Observation) -> None:
        """Grow the episode store (with an image reward model, once the step's frame is there)."""
        if self.frames is not None:
            self.frames.add_observation(msg)
        else:
            self.handle_observation(msg, None)

    def handle_observation(self, msg: Observation, frame: np.ndarray | None) -> None:
        """One observation (and its frame for an image reward model); start a round when due."""
        try:
            o = read_observation(msg)
            self.learner.observe(o.episode, o.step, o.state, o.action_taken, o.truth, o.done, frame)
        except ValueError as exc:
            self.count("bad_observations", f"dropped an observation: {exc}")
            return
        if self.active and self.learner.round_due():
            self.start_round()

    def start_round(self) -> None:
        """Choose, persist and send the round's queries."""
        reqs = self.learner.start_round()
        self.round_asked, self.round_t0 = len(reqs), time.perf_counter()
        self.get_logger().info(f"round {self.learner.schedule.rounds}: {len(reqs)} queries at env step "
                               f"{self.learner.env_steps}")
        self.send_due()

    def send_due(self) -> None:
        """Send requests never sent or unanswered for ``request_retry_s``."""
        stamp = self.get_clock().now().to_msg()
        for req in self.learner.due_for_sending(time.monotonic(), float(self.p["request_retry_s"])):
            self.pub_requests.publish(request_msg(req, self.task, stamp))

    def on_rating(self, msg: Rating) -> None:
        """Store an answer (persisted first); train when the round is complete."""
        try:
            status = self.learner.on_rating(str(msg.request_id), result_from_rating(msg))
        except ValueError as exc:
            self.count("bad_ratings", f"dropped rating {msg.request_id}: {exc}")
            return
        # The learner counts every status (ratings_<status>); the node only says what it means.
        if status == "unknown":
            self.warn(f"dropped a rating for unknown request {msg.request_id}", "ratings_unknown")
        elif status == "late":
            self.warn(f"rating {msg.request_id} arrived after the request was given up; stored and used "
                      "(raise max_attempts or request_retry_s for a slow rater)", "ratings_late")
        self.maybe_train()

    def tick(self) -> None:
        """Re-send overdue requests, train on timed-out rounds."""
        if not self.active:
            return
        self.send_due()
        self.maybe_train()

    def maybe_train(self) -> None:
        """Train and publish when the open round is ready."""
        if not self.learner.round_ready(time.monotonic(), float(self.p["rating_timeout_s"])):
            return
        t0 = time.perf_counter()
        model = self.learner.train()
        self.logger.log("reward", self.learner.env_steps, {
            "asked": self.round_asked, **round_answer_counts(self.learner), **round_row(self.learner),
            "round_s": time.perf_counter() - self.round_t0})
        if model is None:
            self.get_logger().warning("round closed without any rating to learn from")
            return
        quality = describe_round_quality(self.learner.last_round_quality)
        self.get_logger().info(
            f"reward model v{model.version}: {model.num_ratings} ratings, train accuracy "
            f"{model.stats.accuracy:.2f}, {time.perf_counter() - t0:.2f} s"
            + (f"; this round: {quality}" if quality else ""))
        self.publish_model(model)

    def publish_model(self, model: TrainedModel) -> None:
        """Publish a model version."""
        self.pub_model.publish(model_update_msg(model, self.p["model_transport"],
                                                self.get_clock().now().to_msg()))
        self.counters["models_published"] += 1

    def status(self) -> dict[str, Any]:
        """The learner's counters (and the frame join's, with an image reward model)."""
        frames = getattr(self, "frames", None)
        return {**self.learner.status(), **(frames.status() if frames is not None else {})}


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``reward_learner`` executable."""
    return run_node(RewardLearnerNode, args)


if __name__ == "__main__":
    sys.exit(main())
