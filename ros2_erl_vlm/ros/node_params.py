"""Every node's parameters (name, default, description, range): the single table behind the nodes'
declarations, the params-file check of the runner and the parameter docs.

Defaults here are the paper's (long) settings; ``config/train_sim.yaml`` holds the defaults of the
shipped graph (a short budget). ROS-free: importing this module does not import rclpy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ros2_erl_vlm.core.config import LoopConfig
from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
from ros2_erl_vlm.core.rl.sac import SACConfig
from ros2_erl_vlm.ros.params import ParamError, ParamSpec

P = ParamSpec

# -- shared rows ---------------------------------------------------------------------------------
TASK = P("task", "drawer-open-v3", "MetaWorld task: a sim/tasks/<task>.yaml name")
SEED = P("seed", 0, "random seed of the run", 0, 2**31 - 1)
RUN_DIR = P("run_dir", "", "run directory: each node writes under <run_dir>/<node name>/ "
            "(the runner and the launch file set it)")
TORCH_THREADS = P("torch_threads", 1, "torch CPU threads of this node", 1, 64)
STATUS_PERIOD = P("status_period_s", 2.0, "how often <run_dir>/<node>/status.json is rewritten (s)",
                  0.1, 3600.0)
NUM_SEED_STEPS = P("num_seed_steps", 1000, "env steps with uniformly random actions", 0, 10**9)
NUM_UNSUP_STEPS = P("num_unsup_steps", 9000, "env steps of PEBBLE state-entropy exploration after "
                    "the seed steps (reward learning starts after both)", 0, 10**9)
REWARD_SOURCE = P("reward_source", "learned", "learned: reward from VLM ratings; true: the "
                  "simulator's dense reward (upper-bound baseline, no rating)", choices=("learned", "true"))
MAX_EPISODE_STEPS = P("max_episode_steps", 0, "episode length in env steps (0: the task's, 500)",
                      0, 500)

SIM_BRIDGE = (
    TASK, SEED, RUN_DIR, STATUS_PERIOD, MAX_EPISODE_STEPS,
    P("mode", "lockstep", "lockstep: step when the action for the current step arrives and publish "
      "/clock (sim time); realtime: step at control_rate_hz with the latest action",
      choices=("lockstep", "realtime")),
    P("control_rate_hz", 80.0, "realtime mode: env steps per second", 0.1, 1000.0),
    P("action_timeout_s", 2.0, "lockstep: re-publish the observation when no valid action came for "
      "this long; realtime: actions older than this are replaced by a zero action", 0.01, 3600.0),
    P("publish_clock", True, "publish sim time on /clock (lockstep; turn off when several sims "
      "share a ROS domain)"),
    P("auto_reset", True, "start the next episode as soon as one ends"),
    P("camera.enabled", True, "render and publish the task camera every step"),
    P("camera.image_size", 0, "rendered image side in pixels (0: the task's)", 0, 2048),
    P("camera.frame_id", "task_camera", "frame_id of the camera images"),
    P("start.observation_subscribers", 0, "lockstep: hold the first episode until this many "
      "subscribers of the observations are connected (the graph's agent, learner and camera "
      "capture), so none misses the first steps", 0, 1000),
    P("start.image_subscribers", 0, "lockstep with the camera on: also wait for this many image "
      "subscribers", 0, 1000),
    P("start.timeout_s", 60.0, "start anyway (with a warning) after waiting this long", 0.0, 1e6),
)

CAMERA_CAPTURE = (
    RUN_DIR, STATUS_PERIOD,
    P("image_size", 224, "side of the stored square frames (the rating resolution)", 16, 2048),
    P("crop", [0, 0, 0, 0], "crop box x, y, width, height in pixels applied before resizing "
      "(all zero: no crop)", 0, 16384, length=4),
    P("storage", "jpeg", "how frames are kept in memory", choices=("jpeg", "png", "raw")),
    P("jpeg_quality", 90, "JPEG quality of stored frames", 1, 100),
    P("max_episodes", 100, "frames of this many recent episodes are kept", 1, 100_000),
    P("max_megabytes", 1024.0, "memory cap of the stored frames (oldest episodes evicted)", 1.0, 1e6),
    P("sync_tolerance_s", 0.0, "largest image/observation stamp difference that still pairs them "
      "(0: exact, as in lockstep sim time)", 0.0, 10.0),
    P("image_buffer", 30, "camera images kept for pairing", 1, 10_000),
    P("publish_frames", True, "publish each step's stored frame on camera/frames"),
)

VLM_RATER = (
    TASK, SEED, RUN_DIR, TORCH_THREADS, STATUS_PERIOD,
    P("rater.backend", "oracle", "rating backend", choices=("oracle", "transformers", "openai", "replay")),
    P("rater.config_file", "", "YAML file of backend settings (ros2_erl_vlm.raters.make_rater keys); "
      "empty: backend defaults"),
    P("rater.noise", 0.0, "oracle: probability of a wrong label", 0.0, 1.0),
    P("rater.noise_mode", "symmetric", "oracle: kind of label noise", choices=("symmetric", "neighbor")),
    P("rater.abstain_rate", 0.0, "oracle: probability of a simulated rater failure", 0.0, 0.99),
    P("store_frames", False, "keep the rated frames in the rating log"),
    P("batch_size", 8, "requests rated per backend call", 1, 1024),
    P("queue_size", 200, "requests waiting at most (the oldest is dropped beyond)", 1, 100_000),
    P("max_request_age_s", 600.0, "requests older than this are dropped unrated", 0.1, 1e6),
)

REWARD_LEARNER = (
    TASK, SEED, RUN_DIR, TORCH_THREADS, STATUS_PERIOD, NUM_SEED_STEPS, NUM_UNSUP_STEPS, REWARD_SOURCE,
    P("num_classes", 0, "rating classes (0: the task's)", 0, 5),
    P("query_every", 5000, "env steps between reward-learning rounds", 1, 10**9),
    P("queries_per_round", 50, "segments rated per round", 1, 100_000),
    P("max_feedback", 10_000, "total queries of the run", 1, 10**9),
    P("query_strategy", "uniform", "how segments are chosen", choices=("uniform", "disagreement")),
    P("segment_length", 1, "steps per rated segment", 1, 500),
    P("episode_store_size", 100, "recent episodes queries are drawn from", 1, 100_000),
    P("reward.ensemble_size", 3, "reward ensemble members", 1, 32),
    P("reward.hidden_dim", 256, "reward MLP width", 1, 8192),
    P("reward.hidden_layers", 3, "reward MLP hidden layers", 1, 16),
    P("reward.lr", 3e-4, "reward model learning rate", 1e-8, 1.0),
    P("reward.batch_size", 128, "reward model minibatch", 1, 100_000),
    P("reward.epochs", 10, "reward training passes per round (early stop)", 1, 10_000),
    P("reward.early_stop_accuracy", 0.97, "stop training above this accuracy", 0.01, 1.0),
    P("reward.loss", "mae", "mae: ERL-VLM's robust loss; ce: RbRL's cross-entropy", choices=("mae", "ce")),
    P("reward.stratified", True, "stratified minibatches (ERL-VLM)"),
    P("reward.class_weighting", True, "class weights (N - n_c) / N (ERL-VLM)"),
    P("reward.output_norm", "none", "none: the paper's raw tanh ensemble mean; rated: each member "
      "standardised over the rated inputs before averaging", choices=("none", "rated")),
    P("rating_timeout_s", 60.0, "train after this long even if some ratings of the round are missing",
      0.1, 1e6),
    P("request_retry_s", 20.0, "re-send a request unanswered for this long", 0.1, 1e6),
    P("max_attempts", 30, "sends of one request before it is recorded as an abstention (with "
      "request_retry_s: give up after the rater would have dropped it as stale; a rating arriving "
      "later is still stored)", 1, 1000),
    P("model_transport", "inline", "reward model weights in the message (inline) or only as a file "
      "path + checksum (file: nodes must share a file system)", choices=("inline", "file")),
)

SAC_AGENT = (
    TASK, SEED, RUN_DIR, TORCH_THREADS, STATUS_PERIOD, NUM_SEED_STEPS, NUM_UNSUP_STEPS, REWARD_SOURCE,
    MAX_EPISODE_STEPS,
    P("total_steps", 1_000_000, "env steps to train; the agent (and the graph) stops after them",
      1, 10**10),
    P("updates_per_step", 1, "SAC updates per env step", 1, 1000),
    P("reset_updates", 100, "SAC updates right after the critic reset on the first reward model",
      0, 10**7),
    P("replay_capacity", 1_000_000, "replay buffer size", 1, 10**8),
    P("eval_every", 10_000, "env steps between evaluations", 1, 10**10),
    P("eval_episodes", 10, "deterministic evaluation episodes on a private simulator copy of the task "
      "(sim only; 0: no evaluation)", 0, 10_000),
    P("checkpoint_every", 50_000, "env steps between checkpoints", 1, 10**10),
    P("resume", True, "continue from <run_dir>/sac_agent/checkpoint.pt when it exists"),
    P("sac.hidden_dim", 256, "actor/critic width", 1, 8192),
    P("sac.hidden_layers", 3, "actor/critic hidden layers", 1, 16),
    P("sac.batch_size", 512, "SAC minibatch", 1, 100_000),
    P("sac.actor_lr", 3e-4, "actor learning rate", 1e-8, 1.0),
    P("sac.critic_lr", 3e-4, "critic learning rate", 1e-8, 1.0),
    P("sac.alpha_lr", 1e-4, "temperature learning rate", 1e-8, 1.0),
    P("sac.init_temperature", 0.1, "initial temperature", 1e-6, 100.0),
    P("sac.gamma", 0.99, "discount", 0.0, 0.9999),
    P("sac.tau", 0.005, "target smoothing", 1e-6, 1.0),
)

RATING_VIZ = (
    RUN_DIR, STATUS_PERIOD,
    P("frame_id", "world", "frame of the markers (the frame the positions are in)"),
    P("position_indices", [0, 1, 2], "state entries giving a rated segment's position (MetaWorld: "
      "end-effector x, y, z)"),
    P("max_points", 1000, "rated points drawn (the oldest are dropped)", 1, 100_000),
    P("text_labels", 20, "the newest ratings also get a text caption (class, sim progress)", 0, 10_000),
    P("point_size", 0.015, "sphere diameter of a rated point (m)", 1e-4, 10.0),
    P("publish_period_s", 0.5, "markers are republished at most this often, when changed", 0.01, 60.0),
)

NODE_PARAMS: dict[str, tuple[ParamSpec, ...]] = {
    "sim_bridge": SIM_BRIDGE,
    "camera_capture": CAMERA_CAPTURE,
    "vlm_rater": VLM_RATER,
    "reward_learner": REWARD_LEARNER,
    "sac_agent": SAC_AGENT,
    "rating_viz": RATING_VIZ,
}


def all_param_names() -> set[str]:
    """Every parameter name some node of the graph declares."""
    return {s.name for specs in NODE_PARAMS.values() for s in specs}


def loop_config(values: dict[str, Any], num_classes: int = 3) -> LoopConfig:
    """A validated LoopConfig from a node's parameter values (missing keys keep the defaults).

    Raises:
        ParamError: the combination is invalid (the message names the setting).
    """
    cfg = LoopConfig(sac=SACConfig(), reward=RewardModelConfig())
    for key, value in values.items():
        if key.startswith("sac."):
            target, name = cfg.sac, key[4:]
        elif key.startswith("reward."):
            target, name = cfg.reward, key[7:]
        else:
            target, name = cfg, key
        if name in {f.name for f in dataclasses.fields(target)}:
            setattr(target, name, value)
    cfg.num_classes = num_classes
    try:
        return cfg.validate()
    except ValueError as exc:
        raise ParamError(f"invalid settings: {exc}") from exc
