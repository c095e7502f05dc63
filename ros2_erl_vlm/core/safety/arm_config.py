"""The arm config: one YAML file naming a real arm's topics, frames, home pose and limits.

Every field with a default is declared here (the one source of each safety default); the
workspace box has none and is required. :func:`load_arm_config` reads and validates a file and
raises :class:`ArmConfigError` naming the file and the field of the first problem, so a node can
exit 1 with a readable message before anything moves. ``docs/real_arm.md`` lists every field.

Layout of the file (``config/arms/*.yaml`` are examples)::

    arm:
      name: ur5e
      dialect: servo                 # servo (MoveIt Servo twists) | pose (PoseStamped targets)
      workspace: {min: [x, y, z], max: [x, y, z]}   # metres in base_frame; required
      home: [x, y, z]
      ee_pose_source: topic          # topic (topics.ee_pose, PoseStamped) | tf (base_frame -> ee_frame)
      control: {rate_hz: 10, step_m: 0.01, max_speed_m_s: 0.1, leash_m: 0.03}
      topics: {ee_pose: ..., joint_states: ..., twist: ..., pose_target: ..., gripper_command: ...}
      gripper: {joint_names: [...], open_position: 0.0, closed_position: 0.8, ...}
      objects: [{name: handle, topic: objects/handle/pose}]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.settings import apply_overrides, check_declared, read_settings_file, setting

DIALECTS = ("servo", "pose")
SERVO_INTERFACES = ("moveit", "fake")
#: Where the measured end-effector pose comes from: a PoseStamped topic, or tf (base_frame ->
#: ee_frame composed from ``topics.tf`` and ``topics.tf_static``).
EE_POSE_SOURCES = ("topic", "tf")
#: Named parts of the policy's state vector and their sizes (``object:<name>`` is 3).
STATE_PARTS = {"ee_position": 3, "gripper": 1}


class ArmConfigError(ValueError):
    """A missing or inconsistent arm config (the message names the file and the field)."""


@dataclass
class ControlConfig:
    """How a normalised action becomes motion: the target moves ``action * step_m`` per control
    period (MetaWorld: 0.01 m per 12.5 ms step = 0.8 m/s; a real arm runs ~10 Hz, 0.1 m/s)."""

    rate_hz: float = setting(10.0, low=0.5, high=100.0)
    step_m: float = setting(0.01, low=0.0, high=0.05, low_open=True)
    #: per-period clamp of the target's motion, as a speed (m/s)
    max_speed_m_s: float = setting(0.1, low=0.0, high=1.0, low_open=True)
    #: the target never runs further than this ahead of the measured end effector (per axis, m)
    leash_m: float = setting(0.03, low=0.001, high=0.2)
    #: no fresh action for this many control periods: zero command, then silence
    command_timeout_periods: float = setting(2.0, low=1.0, high=100.0)
    #: zero commands sent after a stop before going silent (control periods)
    zero_periods: int = setting(2, low=1, high=100)
    #: the measured state older than this stops the arm (s)
    state_timeout_s: float = setting(0.5, low=0.01, high=10.0)
    #: env steps per episode before it is truncated
    episode_steps: int = setting(200, low=1, high=100_000)
    #: the scripted move home: its speed (m/s) and how close counts as arrived (m)
    home_speed_m_s: float = setting(0.03, low=0.001, high=0.5)
    home_tolerance_m: float = setting(0.01, low=0.001, high=0.1)
    home_timeout_s: float = setting(60.0, low=1.0, high=600.0)


@dataclass
class EnableConfig:
    """The enable (deadman) heartbeat: ``std_msgs/Bool`` True at least every ``timeout_s``."""

    required: bool = True
    topic: str = "enable"
    timeout_s: float = setting(0.5, low=0.05, high=10.0)


@dataclass
class ServoConfig:
    """MoveIt Servo: twists streamed at their own rate, Servo's services and status."""

    stream_rate_hz: float = setting(50.0, low=5.0, high=1000.0)
    #: Servo's ``incoming_command_timeout`` (s): streamed stamps must stay younger than this
    timeout_s: float = setting(0.1, low=0.01, high=5.0)
    interface: str = setting("moveit", choices=SERVO_INTERFACES)
    pause_service: str = "servo_node/pause_servo"
    switch_service: str = "servo_node/switch_command_type"
    status_topic: str = "servo_node/status"


@dataclass
class TopicsConfig:
    """Topic names (relative names follow the bridge's namespace)."""

    ee_pose: str = "ee_pose"
    #: with ``ee_pose_source: tf``: tf2_msgs/TFMessage topics (dynamic, and static: transient local)
    tf: str = "/tf"
    tf_static: str = "/tf_static"
    joint_states: str = "joint_states"
    twist: str = "servo_node/delta_twist_cmds"
    pose_target: str = "target_pose"
    gripper_command: str = "gripper_controller/commands"
    #: a std_srvs/Trigger service that resets the scene between episodes (a person or a script on
    #: a real robot; the fake arm's fake_arm/reset_scene); empty: none
    scene_reset_service: str = ""
    #: optional vendor signals the bridge watches (empty: not watched): a std_msgs/Bool that is
    #: false while the robot executes no commands (UR: io_and_status_controller/
    #: robot_program_running) and a std_msgs/Float64 speed scaling (UR:
    #: speed_scaling_state_broadcaster/speed_scaling); false or 0 stops the arm (``external``),
    #: and so does no message yet (fail closed)
    program_running: str = ""
    speed_scaling: str = ""
    #: wait this long at start for every state topic, then exit naming the missing ones (s)
    wait_s: float = setting(10.0, low=0.0, high=600.0)


@dataclass
class GripperConfig:
    """The gripper: its command (``Float64MultiArray``), its measured joints and hysteresis."""

    enabled: bool = True
    joint_names: list[str] = field(default_factory=list)
    #: measured joint position (mean over ``joint_names``) when open / closed
    open_position: float = 0.0
    closed_position: float = 1.0
    #: what is sent on ``gripper_command`` to open / close
    command_open: list[float] = field(default_factory=lambda: [0.0])
    command_closed: list[float] = field(default_factory=lambda: [1.0])
    #: the action's gripper value closes above ``close_above`` and opens below ``open_below``
    close_above: float = setting(0.25, low=-1.0, high=1.0)
    open_below: float = setting(-0.25, low=-1.0, high=1.0)


@dataclass
class ObjectConfig:
    """An object pose topic (``PoseStamped``, e.g. from a marker tracker) in the state vector."""

    name: str
    topic: str


@dataclass
class ArmConfig:
    """A real arm's config (see the module docstring)."""

    name: str = "arm"
    dialect: str = setting("servo", choices=DIALECTS)
    base_frame: str = "base_link"
    #: the end-effector frame (read with ``ee_pose_source: tf``)
    ee_frame: str = "tool0"
    ee_pose_source: str = setting("topic", choices=EE_POSE_SOURCES)
    #: the workspace box (metres in ``base_frame``); no default: required
    workspace_min: tuple[float, float, float] | None = None
    workspace_max: tuple[float, float, float] | None = None
    home: tuple[float, float, float] | None = None
    #: the policy's state vector, in order: ee_position, gripper, object:<name>
    state: list[str] = field(default_factory=lambda: ["ee_position", "gripper"])
    control: ControlConfig = field(default_factory=ControlConfig)
    enable: EnableConfig = field(default_factory=EnableConfig)
    servo: ServoConfig = field(default_factory=ServoConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    gripper: GripperConfig = field(default_factory=GripperConfig)
    objects: list[ObjectConfig] = field(default_factory=list)
    source: str = ""

    @property
    def state_dim(self) -> int:
        """Length of the policy's state vector."""
        return sum(STATE_PARTS.get(p, 3) for p in self.state)

    @property
    def period_s(self) -> float:
        """One control period (s)."""
        return 1.0 / self.control.rate_hz

    @property
    def ee_pose_name(self) -> str:
        """Where the ee pose comes from, for messages: the topic, or the tf chain."""
        if self.ee_pose_source == "tf":
            return f"tf {self.base_frame} -> {self.ee_frame} ({self.topics.tf}, {self.topics.tf_static})"
        return self.topics.ee_pose

    def summary(self) -> str:
        """One line of the safety settings (logged at start)."""
        c = self.control
        return (f"arm {self.name} ({self.dialect}, ee pose from {self.ee_pose_name}): box "
                f"{list(self.workspace_min or ())} .. {list(self.workspace_max or ())} m, "
                f"{c.rate_hz:g} Hz, step {c.step_m:g} m, "
                f"speed cap {c.max_speed_m_s:g} m/s, leash {c.leash_m:g} m, command timeout "
                f"{c.command_timeout_periods:g} periods, state timeout {c.state_timeout_s:g} s, "
                f"enable {'required' if self.enable.required else 'off'} "
                f"({self.enable.timeout_s:g} s), home {list(self.home or ())}")


def _vec3(raw: Any, where: str) -> tuple[float, float, float]:
    if (not isinstance(raw, (list, tuple)) or len(raw) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)):
        raise ArmConfigError(f"{where} must be three numbers [x, y, z], got {raw!r}")
    out = tuple(float(v) for v in raw)
    if not all(math.isfinite(v) for v in out):
        raise ArmConfigError(f"{where} must be finite, got {raw!r}")
    return out  # type: ignore[return-value]


def arm_config_from_mapping(data: dict[str, Any], source: str = "arm config") -> ArmConfig:
    """A validated :class:`ArmConfig` from the file's ``arm:`` mapping (or the mapping itself)."""
    body = data.get("arm", data) if isinstance(data, dict) else data
    if not isinstance(body, dict):
        raise ArmConfigError(f"{source}: expected a mapping under 'arm'")
    body = dict(body)
    cfg = ArmConfig(source=source)
    ws = body.pop("workspace", None)
    if ws is None:
        raise ArmConfigError(f"{source}: arm.workspace is required (a box {{min: [x, y, z], max: "
                             f"[x, y, z]}} in metres; there is no default: measure it by jogging "
                             f"the arm, docs/real_arm.md)")
    if not isinstance(ws, dict) or set(ws) != {"min", "max"}:
        raise ArmConfigError(f"{source}: arm.workspace needs exactly 'min' and 'max', got {ws!r}")
    cfg.workspace_min = _vec3(ws["min"], f"{source}: arm.workspace.min")
    cfg.workspace_max = _vec3(ws["max"], f"{source}: arm.workspace.max")
    for axis, lo, hi in zip("xyz", cfg.workspace_min, cfg.workspace_max, strict=True):
        if not lo < hi:
            raise ArmConfigError(f"{source}: arm.workspace: min {axis} ({lo:g}) must be below "
                                 f"max {axis} ({hi:g})")
    home = body.pop("home", None)
    if home is not None:
        cfg.home = _vec3(home, f"{source}: arm.home")
        if not all(lo <= h <= hi for lo, h, hi in
                   zip(cfg.workspace_min, cfg.home, cfg.workspace_max, strict=True)):
            raise ArmConfigError(f"{source}: arm.home {list(cfg.home)} is outside the workspace box")
    objects = body.pop("objects", None) or []
    if not isinstance(objects, list):
        raise ArmConfigError(f"{source}: arm.objects must be a list of {{name, topic}}")
    for i, o in enumerate(objects):
        if not isinstance(o, dict) or set(o) != {"name", "topic"}:
            raise ArmConfigError(f"{source}: arm.objects[{i}] needs exactly 'name' and 'topic'")
        cfg.objects.append(ObjectConfig(str(o["name"]), str(o["topic"])))
    lists = {k: body.pop(k) for k in ("state",) if k in body}
    grip = body.get("gripper")
    if isinstance(grip, dict):
        grip = dict(grip)
        lists.update({f"gripper.{k}": grip.pop(k) for k in
                      ("joint_names", "command_open", "command_closed") if k in grip})
        body["gripper"] = grip
    apply_overrides(cfg, body, source, ArmConfigError, prefix="arm.")
    for key, value in lists.items():
        if not isinstance(value, list) or (not value and key != "gripper.joint_names"):
            raise ArmConfigError(f"{source}: arm.{key} must be a non-empty list, got {value!r}")
        target, name = (cfg.gripper, key.split(".")[1]) if "." in key else (cfg, key)
        kind = float if name.startswith("command") else str
        if kind is float and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                     for v in value):
            raise ArmConfigError(f"{source}: arm.{key} must be a list of numbers, got {value!r}")
        setattr(target, name, [kind(v) for v in value])
    return validate(cfg)


def validate(cfg: ArmConfig) -> ArmConfig:
    """Every declared range and the cross-field rules; ArmConfigError names the field."""
    src = cfg.source
    try:
        check_declared(cfg, "arm.")
        for part in ("control", "enable", "servo", "topics", "gripper"):
            check_declared(getattr(cfg, part), f"arm.{part}.")
    except ValueError as exc:
        raise ArmConfigError(f"{src}: {exc}") from exc
    if cfg.ee_pose_source == "tf":
        if not cfg.ee_frame or cfg.ee_frame == cfg.base_frame:
            raise ArmConfigError(f"{src}: arm.ee_frame ({cfg.ee_frame!r}) must name the end-effector "
                                 f"frame, not empty nor base_frame, with ee_pose_source: tf")
        if not cfg.topics.tf or not cfg.topics.tf_static:
            raise ArmConfigError(f"{src}: arm.topics.tf and arm.topics.tf_static must be set with "
                                 f"ee_pose_source: tf")
    names = {o.name for o in cfg.objects}
    for part in cfg.state:
        if part in STATE_PARTS:
            continue
        kind, _, name = part.partition(":")
        if kind != "object" or name not in names:
            raise ArmConfigError(
                f"{src}: arm.state entry {part!r} is not ee_position, gripper or object:<name> of "
                f"an arm.objects entry (objects: {sorted(names) or 'none'})")
    if "gripper" in cfg.state and not cfg.gripper.enabled:
        raise ArmConfigError(f"{src}: arm.state has 'gripper' but arm.gripper.enabled is false")
    if "gripper" in cfg.state and not cfg.gripper.joint_names:
        raise ArmConfigError(f"{src}: arm.gripper.joint_names is empty but the state has 'gripper' "
                             f"(name the JointState joints that measure the opening)")
    if cfg.gripper.open_below >= cfg.gripper.close_above:
        raise ArmConfigError(f"{src}: arm.gripper.open_below ({cfg.gripper.open_below:g}) must be "
                             f"below close_above ({cfg.gripper.close_above:g}): that gap is the hysteresis")
    if cfg.gripper.open_position == cfg.gripper.closed_position:
        raise ArmConfigError(f"{src}: arm.gripper.open_position and closed_position are equal")
    c = cfg.control
    if c.max_speed_m_s / c.rate_hz < 1e-6:
        raise ArmConfigError(f"{src}: arm.control: max_speed_m_s / rate_hz is below 1 micrometre")
    if cfg.dialect == "servo" and cfg.servo.stream_rate_hz * cfg.servo.timeout_s < 2.0:
        raise ArmConfigError(
            f"{src}: arm.servo.stream_rate_hz ({cfg.servo.stream_rate_hz:g}) is too slow for Servo's "
            f"timeout ({cfg.servo.timeout_s:g} s): at least two twists per timeout, or stamps go "
            f"stale between them")
    return cfg


def load_arm_config(path: str | Path, dialect: str | None = None) -> ArmConfig:
    """Read and validate an arm config file (ArmConfigError names the file and field);
    ``dialect`` (the ``arm:=servo|pose`` argument) replaces the file's."""
    p = Path(path).expanduser()
    data = read_settings_file(p, "arm config", ArmConfigError, empty_ok=False)
    if dialect:
        body = data.get("arm", data)
        if isinstance(body, dict):
            body["dialect"] = dialect
    return arm_config_from_mapping(data, str(p))
