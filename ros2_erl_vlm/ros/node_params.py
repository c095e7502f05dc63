"""Every node's parameters (name, default, description, range): the single table behind the nodes'
declarations, the params-file check of the runner and the parameter docs.

A parameter that is a field of a config dataclass (:class:`~ros2_erl_vlm.core.config.LoopConfig`,
``sac.*``: :class:`~ros2_erl_vlm.core.rl.sac.SACConfig`, ``reward.*``:
:class:`~ros2_erl_vlm.core.reward.reward_model.RewardModelConfig`, ``rater.*`` of the oracle:
:class:`~ros2_erl_vlm.raters.oracle.OracleConfig`) takes its default, type and range from the
field (:func:`field_param`); the table adds only its description. Only parameters that are no
config field state their own default and range here. The defaults are the paper's (long)
settings; ``config/train_sim.yaml`` holds the shipped graph's short run. ROS-free: importing this
module does not import rclpy.
"""

from __future__ import annotations

from typing import Any

from ros2_erl_vlm.core.config import LoopConfig
from ros2_erl_vlm.core.rating.rater import MAX_CLASSES
from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
from ros2_erl_vlm.core.rl.sac import SACConfig
from ros2_erl_vlm.core.settings import apply_overrides, leaf_fields
from ros2_erl_vlm.raters.factory import BACKENDS
from ros2_erl_vlm.raters.oracle import OracleConfig
from ros2_erl_vlm.ros.params import ParamError, ParamSpec

P = ParamSpec

#: Parameter-name prefix of each config dataclass's fields.
PREFIXES: dict[type, str] = {LoopConfig: "", SACConfig: "sac.", RewardModelConfig: "reward.",
                             OracleConfig: "rater."}


#: ``{parameter name: (config dataclass, field name)}`` of every parameter made by :func:`field_param`.
CONFIG_FIELDS: dict[str, tuple[type, str]] = {}


def field_param(owner: type, field_name: str, description: str) -> ParamSpec:
    """The parameter ``<prefix><field_name>`` of a config dataclass field: default, type and
    range from the field, and ``description``."""
    name = PREFIXES[owner] + field_name
    CONFIG_FIELDS[name] = (owner, field_name)
    return ParamSpec.from_field(owner, field_name, description, name)


def _loop(name: str, description: str) -> ParamSpec:
    return field_param(LoopConfig, name, description)


def _sac(name: str, description: str) -> ParamSpec:
    return field_param(SACConfig, name, description)


def _reward(name: str, description: str) -> ParamSpec:
    return field_param(RewardModelConfig, name, description)


def _oracle(name: str, description: str) -> ParamSpec:
    return field_param(OracleConfig, name, description)


# -- shared rows ---------------------------------------------------------------------------------
TASK = P("task", "drawer-open-v3", "MetaWorld task: a sim/tasks/<task>.yaml name")
LAYOUT = P("layout", "", "task layout: paper (the reference's fixed scene) or stock (MetaWorld's "
           "randomised one); empty: the task's default")
SEED = _loop("seed", "random seed of the run")
RUN_DIR = P("run_dir", "", "run directory: each node writes under <run_dir>/<node name>/ "
            "(the runner and the launch file set it)")
TORCH_THREADS = P("torch_threads", 1, "torch CPU threads of this node", 1, 64)
STATUS_PERIOD = P("status_period_s", 2.0, "how often <run_dir>/<node>/status.json is rewritten (s)",
                  0.1, 3600.0)
NUM_SEED_STEPS = _loop("num_seed_steps", "env steps with uniformly random actions")
NUM_UNSUP_STEPS = _loop("num_unsup_steps", "env steps of PEBBLE state-entropy exploration after "
                        "the seed steps (reward learning starts after both)")
REWARD_SOURCE = _loop("reward_source", "learned: reward from VLM ratings; true: the simulator's "
                      "dense reward (upper-bound baseline, no rating)")
DEVICE = _loop("device", "torch device of SAC, the replay buffer and the reward ensemble: auto (a CUDA "
              "GPU when torch sees one, else the CPU), cpu or cuda (refused without a GPU)")
REWARD_INPUT = _reward("input_kind", "what the reward model reads: state (an MLP on the policy's "
                       "state) or image (the paper's CNN on camera/frames; needs the camera)")
REWARD_IMAGE_SIZE = _reward("image_size", "image reward model: side of its square input (camera/frames "
                            "are resized to it)")
FRAME_WAIT_S = P("frame_wait_s", 5.0, "image reward model: longest an observation waits for its "
                 "camera/frames frame; a step whose frame does not come is counted and not stored",
                 0.01, 600.0)
TENSORBOARD = P("tensorboard", True, "also write TensorBoard events to <run_dir>/<node>/tb "
                "(tensorboard --logdir <run_dir> shows the whole run)")
MAX_EPISODE_STEPS = P("max_episode_steps", 0, "episode length in env steps (0: the task's, 500)",
                      0, 500)

ARM_CONFIG = P("arm_config", "", "real arm: the arm config YAML (topics, frames, workspace box, home "
                "pose, limits; config/arms/*.yaml, docs/real_arm.md); empty: simulation")

ARM_DIALECT = P("arm_dialect", "", "real arm: the command dialect, replacing the arm config's "
                 "(servo: MoveIt Servo twists; pose: PoseStamped targets); empty: the config's",
                 choices=("", "servo", "pose"))

SIM_BRIDGE = (
    TASK, LAYOUT, SEED, RUN_DIR, STATUS_PERIOD, MAX_EPISODE_STEPS,
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
    P("transport", "raw", "raw: sensor_msgs/Image on camera/image_raw; compressed: "
      "sensor_msgs/CompressedImage (JPEG/PNG) on camera/image_raw/compressed", choices=("raw", "compressed")),
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
    P("rater.backend", "simulated_vlm", "rating backend", choices=BACKENDS),
    P("rater.config_file", "", "YAML file of backend settings (ros2_erl_vlm.raters.make_rater keys); "
      "empty: backend defaults"),
    _oracle("noise", "oracle: probability of a wrong label"),
    _oracle("noise_mode", "oracle: kind of label noise"),
    _oracle("abstain_rate", "oracle: probability of a simulated rater failure"),
    P("store_frames", False, "keep the rated frames in the rating log"),
    P("batch_size", 8, "requests rated per backend call", 1, 1024),
    P("queue_size", 200, "requests waiting at most (the oldest is dropped beyond)", 1, 100_000),
    P("max_request_age_s", 600.0, "requests older than this are dropped unrated", 0.1, 1e6),
)

REWARD_LEARNER = (
    TASK, SEED, RUN_DIR, TORCH_THREADS, STATUS_PERIOD, NUM_SEED_STEPS, NUM_UNSUP_STEPS, REWARD_SOURCE,
    ARM_CONFIG, TENSORBOARD, REWARD_INPUT, REWARD_IMAGE_SIZE, FRAME_WAIT_S, DEVICE,
    # Not LoopConfig.num_classes: 0 stands for the task's count.
    P("num_classes", 0, "rating classes (0: the task's)", 0, MAX_CLASSES),
    _loop("query_every", "env steps between reward-learning rounds"),
    _loop("queries_per_round", "segments rated per round"),
    _loop("max_feedback", "total queries of the run"),
    _loop("query_strategy", "how segments are chosen"),
    _loop("segment_length", "steps per rated segment"),
    _loop("episode_store_size", "recent episodes queries are drawn from"),
    _reward("ensemble_size", "reward ensemble members"),
    _reward("hidden_dim", "reward MLP width"),
    _reward("hidden_layers", "reward MLP hidden layers"),
    _reward("lr", "reward model learning rate"),
    _reward("batch_size", "reward model minibatch"),
    _reward("epochs", "reward training passes per round (early stop)"),
    _reward("early_stop_accuracy", "stop training above this accuracy"),
    _reward("loss", "mae: ERL-VLM's robust loss; ce: RbRL's cross-entropy"),
    _reward("stratified", "stratified minibatches (ERL-VLM)"),
    _reward("class_weighting", "class weights (N - n_c) / N (ERL-VLM)"),
    _reward("output_norm", "none: the paper's raw tanh ensemble mean; rated: each member "
            "standardised over the rated inputs before averaging"),
    _reward("input_norm", "none: raw observations; rated: each observation dimension "
            "standardised over the rated steps"),
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
    TASK, LAYOUT, SEED, RUN_DIR, TORCH_THREADS, STATUS_PERIOD, NUM_SEED_STEPS, NUM_UNSUP_STEPS, REWARD_SOURCE,
    MAX_EPISODE_STEPS, TENSORBOARD, REWARD_INPUT, REWARD_IMAGE_SIZE, FRAME_WAIT_S, DEVICE,
    _loop("total_steps", "env steps to train; the agent (and the graph) stops after them"),
    ARM_CONFIG,
    P("allow_real_training", False, "with arm_config (a real or fake arm): allow online training "
      "on the arm (off by default: a policy learning online moves a real arm)"),
    _loop("updates_per_step", "SAC updates per env step"),
    _loop("entropy_bonus", "weight of the state-entropy exploration bonus added to the learned reward "
          "after the first reward model (0: none, the paper)"),
    _loop("entropy_memory", "recent states the exploration bonus's k-NN distances are taken against"),
    _loop("reset_updates", "SAC updates right after the critic reset on the first reward model"),
    _loop("replay_capacity", "replay buffer size"),
    _loop("eval_every", "env steps between evaluations"),
    _loop("eval_episodes", "deterministic evaluation episodes on a private simulator copy of the "
          "task (sim only; 0: no evaluation)"),
    _loop("checkpoint_every", "env steps between checkpoints"),
    P("resume", True, "continue from <run_dir>/sac_agent/checkpoint.pt when it exists"),
    P("progress_period_s", 15.0, "log a [progress] line (steps, steps/s, ETA, episodes, eval success, "
      "ratings, reward model) at least this often (s)", 0.5, 3600.0),
    _sac("hidden_dim", "actor/critic width"),
    _sac("hidden_layers", "actor/critic hidden layers"),
    _sac("batch_size", "SAC minibatch"),
    _sac("actor_lr", "actor learning rate"),
    _sac("critic_lr", "critic learning rate"),
    _sac("alpha_lr", "temperature learning rate"),
    _sac("init_temperature", "initial temperature"),
    _sac("gamma", "discount"),
    _sac("tau", "target smoothing"),
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

ARM_BRIDGE = (
    SEED, RUN_DIR, STATUS_PERIOD, ARM_CONFIG, ARM_DIALECT,
    P("auto_reset", True, "after an episode ends (or a recoverable stop) move home slowly and start "
      "the next one"),
    P("action_timeout_s", 2.0, "while an episode waits for its first action, re-publish its first "
      "observation this often (a restarted agent)", 0.01, 3600.0),
    P("clamp_workspace", True, "clip the target to the workspace box (only a fake arm may switch "
      "it off: the test that shows the clamp is what keeps the arm inside)"),
    P("camera.frame_id", "camera", "frame_id expected on the camera images (informational)"),
)

DEPLOY_AGENT = (
    SEED, RUN_DIR, STATUS_PERIOD, ARM_CONFIG,
    P("checkpoint", "", "the training run's checkpoint whose policy is deployed "
      "(<run_dir>/sac_agent/checkpoint.pt); set by the checkpoint argument"),
    P("episodes", 10, "episodes to run, then stop (0: until stopped)", 0, 1_000_000),
)

FAKE_ARM = (
    TASK, LAYOUT, SEED, RUN_DIR, STATUS_PERIOD, ARM_CONFIG, ARM_DIALECT,
    P("rate_hz", 50.0, "physics / publishing rate of the fake arm (Hz)", 1.0, 1000.0),
    P("lag_s", 0.03, "commands (twists, pose targets, gripper) take effect this long after they "
      "arrive (s)", 0.0, 1.0),
    P("speed_scaling", 1.0, "speed override of the fake controller, as UR's (0: no motion, 1: full "
      "speed)", 0.0, 1.0),
    P("max_speed_m_s", 0.25, "the fake arm's own Cartesian speed limit (m/s): twists are capped at it, "
      "pose targets are approached at it (times speed_scaling)", 0.0, 1.0, low_open=True),
    P("pose_timeout_s", 0.5, "pose dialect: a target whose stamp is older than this holds the hand (s)",
      0.01, 60.0),
    P("block.enabled", False, "a wall the hand cannot pass (motion into it halts; Servo status 5)"),
    P("block.axis", "x", "the wall's normal axis in the base frame (default x: a bare y would be "
      "read as a boolean by ROS's YAML parser)", choices=("x", "y", "z")),
    P("block.side", "max", "max: the hand stays at or below block.limit on block.axis; min: at or above",
      choices=("max", "min")),
    P("block.limit", 0.2, "the wall's position on block.axis (m, base frame)", -5.0, 5.0),
    P("camera.rate_hz", 10.0, "task camera frames per second on camera/image_raw (0: no camera)",
      0.0, 100.0),
    P("camera.image_size", 0, "rendered image side in pixels (0: the task's)", 0, 2048),
    P("camera.frame_id", "camera", "frame_id of the camera images"),
    P("camera.compressed", False, "also publish JPEG frames on camera/image_raw/compressed "
      "(sensor_msgs/CompressedImage), as camera drivers do"),
)

NODE_PARAMS: dict[str, tuple[ParamSpec, ...]] = {
    "sim_bridge": SIM_BRIDGE,
    "camera_capture": CAMERA_CAPTURE,
    "vlm_rater": VLM_RATER,
    "reward_learner": REWARD_LEARNER,
    "sac_agent": SAC_AGENT,
    "rating_viz": RATING_VIZ,
    "arm_bridge": ARM_BRIDGE,
    "fake_arm": FAKE_ARM,
    "deploy_agent": DEPLOY_AGENT,
}


def all_param_names() -> set[str]:
    """Every parameter name some node of the graph declares."""
    return {s.name for specs in NODE_PARAMS.values() for s in specs}


def loop_config(values: dict[str, Any], num_classes: int = 3) -> LoopConfig:
    """A validated LoopConfig from a node's parameter values (keys that are no LoopConfig field
    are ignored; missing ones keep the defaults).

    Raises:
        ParamError: the combination is invalid (the message names the setting).
    """
    cfg = LoopConfig()
    names = leaf_fields(cfg)
    try:
        apply_overrides(cfg, {k: v for k, v in values.items() if k in names}, "parameters", ParamError)
        cfg.num_classes = num_classes
        return cfg.validate()
    except ParamError:
        raise
    except ValueError as exc:
        raise ParamError(f"invalid settings: {exc}") from exc


def observation_dim(values: dict[str, Any]) -> int:
    """Length of the state vector the nodes see: the arm config's (``arm_config`` set: a real or
    fake arm) or MetaWorld's 39.

    Raises:
        ParamError: the arm config is missing or invalid (the message names the field).
    """
    if not values.get("arm_config"):
        from ros2_erl_vlm.envs.metaworld_env import OBS_DIM

        return OBS_DIM
    from ros2_erl_vlm.core.safety.arm_config import ArmConfigError, load_arm_config

    try:
        return load_arm_config(str(values["arm_config"])).state_dim
    except ArmConfigError as exc:
        raise ParamError(str(exc)) from exc
