"""``arm_bridge``: a real arm behind the robot contract of the graph (``sim_bridge``'s, on hardware).

Publishes ``observation`` (erl_vlm/Observation: the state the arm config assembles, the action
really applied, no simulator truth; episode and step ids) and ``safety_status`` (std_msgs/String,
JSON: phase, stop reasons, the limits that acted, measured and target position) once per control
period, and ``safety_markers`` for rviz (the workspace box, target vs measured end effector, the
safety state as text; ``MARKER_RATE_HZ``). Subscribes to
``action`` (erl_vlm/Action), the arm's state topics (end-effector ``PoseStamped``, gripper
``JointState``, object ``PoseStamped`` topics; best effort; or, with ``arm.ee_pose_source: tf``,
the end-effector pose as ``base_frame -> ee_frame`` composed from ``/tf`` and ``/tf_static``,
tf2_msgs/TFMessage as tf2_ros' listener subscribes them, ``core.safety.transforms``), ``enable``
(std_msgs/Bool heartbeat) and ``estop`` (std_msgs/Bool). Services: ``reset`` (std_srvs/Trigger:
end the episode, move home, start the next one) and ``reset_estop`` (std_srvs/Trigger: release a
latched e-stop).

Everything between an action and the arm is ``core.safety``: the action is checked (size, NaN/inf:
never applied), the end-effector target moves ``action * step_m`` per control period, clamped per
step (speed cap), held on a leash to the measured pose and clipped to the workspace box; the
gripper has hysteresis. The supervisor stops the arm (zero command for ``zero_periods``, then
silence) on a command timeout (no fresh action for ``command_timeout_periods``), a stale or bad
measured state, a missing enable heartbeat, a latched e-stop, or Servo reporting a halt; every
stop truncates the episode with its reason (``Observation.truncation_reason``).

Dialects (``arm.dialect``):

* ``servo``: ``geometry_msgs/TwistStamped`` in m/s on ``topics.twist``, streamed at
  ``servo.stream_rate_hz`` (independent of the control rate) and stamped with the system clock;
  a twist is non-zero only while the control period that computed it is current, so a stalled
  bridge never leaves a stale non-zero twist streaming. At start Servo is unpaused and switched to
  twist commands (``pause_servo``, ``switch_command_type``: moveit_msgs, imported only then).
* ``pose``: ``geometry_msgs/PoseStamped`` targets on ``topics.pose_target`` (Cartesian /
  impedance controllers), orientation held at the measured one; a stop sends the measured pose.

Start-up (before the node spins): the arm config is read and validated, sim time refused, every
state topic waited for (``topics.wait_s``; exit 1 naming the missing ones), Servo activated; then a
slow scripted move to ``home`` (never the policy), then episode 0; after an episode (and after a
stop the operator cleared) the move home again, but after a command timeout the next episode starts
where the arm stands, so a dead policy never leads to motion. The arm never moves on bad data:
a NaN pose, a stamp going backwards or a stale state stops it. From tf, the pose is new only when
every dynamic link of the chain has advanced (its stamp is the chain's newest): a tf that stops
advancing stops the arm as a silent ``PoseStamped`` topic does.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import numpy as np
from erl_vlm.msg import Action, Observation
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, Int8, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from ros2_erl_vlm.core.safety.actions import BadActionError, checked_action
from ros2_erl_vlm.core.safety.arm_config import ArmConfig, ArmConfigError, load_arm_config
from ros2_erl_vlm.core.safety.gripper import GripperHysteresis, opening
from ros2_erl_vlm.core.safety.servo import activate_servo, servo_stop_reason
from ros2_erl_vlm.core.safety.supervisor import SafetySupervisor, Verdict
from ros2_erl_vlm.core.safety.target import Box, WorkspaceTarget
from ros2_erl_vlm.core.safety.transforms import TfEntry, TfPoseTracker, TfUpdate
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.convert import f32
from ros2_erl_vlm.ros.markers import safety_markers
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.params import ParamError
from ros2_erl_vlm.ros.servo_client import RosServoClient, moveit_types, spin_briefly

#: The policy's action: end-effector xyz delta + gripper (MetaWorld's).
ACTION_DIM = 4
#: How often the rviz markers (box, target, measured, safety text) are republished (Hz).
MARKER_RATE_HZ = 5.0
#: tf2_ros' listener QoS: ``/tf`` reliable, volatile, depth 100; ``/tf_static`` reliable, transient
#: local, keep all (the static broadcaster latches every static transform in one message).
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _stamp_s(stamp: Any) -> float:
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def tf_message_type() -> Any:
    """tf2_msgs/TFMessage, imported only for ``ee_pose_source: tf`` (ParamError when missing)."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError as exc:
        raise ParamError("arm.ee_pose_source tf needs the tf2_msgs package, which is not on PyPI: "
                         "source your ROS 2 install (e.g. /opt/ros/jazzy/setup.bash) before starting "
                         "the node, or publish the pose as a PoseStamped (ee_pose_source: topic, "
                         "docs/real_arm.md)") from exc
    return TFMessage


def tf_entries(msg: Any, static: bool) -> list[TfEntry]:
    """A TFMessage's transforms, ROS-free."""
    out = []
    for ts in msg.transforms:
        t, q = ts.transform.translation, ts.transform.rotation
        out.append(TfEntry(str(ts.header.frame_id).lstrip("/"), str(ts.child_frame_id).lstrip("/"),
                           (t.x, t.y, t.z), (q.x, q.y, q.z, q.w), _stamp_s(ts.header.stamp), static))
    return out


class ArmBridge(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("episodes", "steps", "bad_actions", "stale_actions", "held_steps", "bad_states",
                "stops", "scene_resets", "limited_speed", "limited_leash", "limited_box", "twists_sent",
                "observations_republished")

    def __init__(self) -> None:
        super().__init__("arm_bridge")
        p = self.p
        if not p["arm_config"]:
            raise ParamError("parameter 'arm_config': arm_bridge needs an arm config file (topics, "
                             "workspace box, home pose; see config/arms/ and docs/real_arm.md)")
        try:
            self.arm: ArmConfig = load_arm_config(p["arm_config"], p["arm_dialect"] or None)
        except ArmConfigError as exc:
            raise ParamError(str(exc)) from exc
        arm = self.arm
        if self.get_parameter("use_sim_time").value:
            raise ParamError("arm_bridge refuses use_sim_time: a real arm's commands are stamped on "
                             "the system clock (Servo drops or never expires stamps from another clock)")
        self.fake = arm.servo.interface == "fake"
        if not p["clamp_workspace"] and not self.fake:
            raise ParamError("parameter 'clamp_workspace': only a fake arm (servo.interface: fake) "
                             "may run without the workspace clamp")
        c = arm.control
        self.period = arm.period_s
        self.box = Box.of(arm.workspace_min, arm.workspace_max)
        self.target = WorkspaceTarget(c.step_m, c.max_speed_m_s * self.period, c.leash_m,
                                      self.box if p["clamp_workspace"] else None)
        self.supervisor = SafetySupervisor(self.period, c.command_timeout_periods, c.state_timeout_s,
                                           arm.enable.timeout_s if arm.enable.required else None,
                                           c.zero_periods)
        g = arm.gripper
        self.gripper = GripperHysteresis(g.close_above, g.open_below)
        # -- measured state ----------------------------------------------------------------------
        self.ee: np.ndarray | None = None
        self.ee_quat: np.ndarray | None = None
        self.grip: float | None = None
        self.objects: dict[str, np.ndarray] = {}
        #: arrival time of the newest good message of each other state part (gripper, objects)
        self.part_times: dict[str, float] = {}
        self.tf: TfPoseTracker | None = None
        self.tf_problem = ""
        if arm.ee_pose_source == "tf":
            tf_type = tf_message_type()
            self.tf = TfPoseTracker(arm.base_frame.lstrip("/"), arm.ee_frame.lstrip("/"))
            self.create_subscription(tf_type, arm.topics.tf, lambda m: self.on_tf(m, False), TF_QOS)
            self.create_subscription(tf_type, arm.topics.tf_static, lambda m: self.on_tf(m, True),
                                     TF_STATIC_QOS)
        else:
            self.create_subscription(PoseStamped, arm.topics.ee_pose, self.on_ee_pose,
                                     qos.ROBOT_STATE_QOS)
        if "gripper" in arm.state:
            self.create_subscription(JointState, arm.topics.joint_states, self.on_joint_states,
                                     qos.ROBOT_STATE_QOS)
        for o in arm.objects:
            self.create_subscription(PoseStamped, o.topic, lambda m, n=o.name: self.on_object(n, m),
                                     qos.ROBOT_STATE_QOS)
        # -- commands out ------------------------------------------------------------------------
        self.pub_twist = self.pub_pose = None
        if arm.dialect == "servo":
            self.pub_twist = self.create_publisher(TwistStamped, arm.topics.twist, qos.ARM_COMMAND_QOS)
        else:
            self.pub_pose = self.create_publisher(PoseStamped, arm.topics.pose_target, qos.ARM_COMMAND_QOS)
        self.pub_grip = (self.create_publisher(Float64MultiArray, arm.topics.gripper_command,
                                               qos.ARM_COMMAND_QOS) if g.enabled else None)
        self.pub_obs = self.create_publisher(Observation, qos.OBSERVATION, qos.OBSERVATION_QOS)
        self.pub_status = self.create_publisher(String, qos.SAFETY_STATUS, qos.SAFETY_STATUS_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, qos.SAFETY_MARKERS, qos.SAFETY_STATUS_QOS)
        self._ticks = 0
        # -- safety inputs -----------------------------------------------------------------------
        self.create_subscription(Bool, arm.enable.topic, lambda m: self.supervisor.enable_received(m.data),
                                 qos.SAFETY_INPUT_QOS)
        self.create_subscription(Bool, qos.ESTOP, self.on_estop, qos.SAFETY_INPUT_QOS)
        # The robot's own signals, when named: fail closed until the first message arrives.
        self.vendor_stops: dict[str, str] = {}
        if arm.topics.program_running:  # UR publishes it latched (transient local), on change
            self._vendor("program", f"no message yet on {arm.topics.program_running}")
            self.create_subscription(Bool, arm.topics.program_running, self.on_program_running,
                                     qos.LATCHED_STATE_QOS)
        if arm.topics.speed_scaling:
            self._vendor("scaling", f"no message yet on {arm.topics.speed_scaling}")
            self.create_subscription(Float64, arm.topics.speed_scaling, self.on_speed_scaling,
                                     qos.ROBOT_STATE_QOS)
        self.create_service(Trigger, qos.RESET_ESTOP_SERVICE, self.on_reset_estop)
        self.create_service(Trigger, qos.RESET_SERVICE, self.on_reset)
        self.scene_client = (self.create_client(Trigger, arm.topics.scene_reset_service)
                             if arm.topics.scene_reset_service else None)
        self.create_subscription(Action, qos.ACTION, self.on_action, qos.ACTION_QOS)
        # -- episode bookkeeping -----------------------------------------------------------------
        self.phase = "starting"  # starting | homing | episode | stopped
        self.episode = -1
        self.step_idx = 0
        self.pending: np.ndarray | None = None
        self.last_obs: Observation | None = None
        self.last_obs_time = 0.0
        self.stop_reason = ""
        self.home_started = 0.0
        self.velocity = np.zeros(3)
        self.velocity_until = 0.0  # monotonic time the streamed velocity expires
        self.last_limited: tuple[str, ...] = ()
        self.get_logger().info(arm.summary())
        self._wait_for_topics()
        if arm.dialect == "servo":
            self._watch_servo()
            if not self.fake:
                moveit_types()  # a clear message now rather than at the first twist
            activate_servo(RosServoClient(self, arm.servo.pause_service, arm.servo.switch_service,
                                          self.fake))
            self.get_logger().info("servo activated (unpaused, twist commands)")
            self.wall_timer(1.0 / arm.servo.stream_rate_hz, self.stream_twist)
        self.wall_timer(self.period, self.control_tick)
        self._begin_homing("start")

    # -- start-up ---------------------------------------------------------------------------------
    def _state_topics(self) -> dict[str, bool]:
        have = {self.arm.topics.ee_pose if self.tf is None else "": self.ee is not None}
        if "gripper" in self.arm.state:
            have[self.arm.topics.joint_states] = self.grip is not None
        for o in self.arm.objects:
            have[o.topic] = o.name in self.objects
        return have

    def _wait_for_topics(self) -> None:
        """Spin until every state topic has delivered a message, at most ``topics.wait_s``."""
        end = time.monotonic() + self.arm.topics.wait_s
        while not all(self._state_topics().values()) and time.monotonic() < end:
            spin_briefly(self, 0.1)
        missing = [t for t, ok in self._state_topics().items() if not ok]
        if "" in missing:  # the ee pose from tf
            a, t = self.arm, self.arm.topics
            raise ValueError(f"arm_bridge: no ee pose from tf {a.base_frame} -> {a.ee_frame} after "
                             f"{t.wait_s:g} s on {self.resolve_topic_name(t.tf)} and "
                             f"{self.resolve_topic_name(t.tf_static)}: "
                             f"{self.tf_problem or 'no transform of the chain arrived'} (is the arm's "
                             f"driver running, and are the frames in {a.source} right?)")
        if missing:
            raise ValueError(f"arm_bridge: no message after {self.arm.topics.wait_s:g} s on "
                             f"{', '.join(self.resolve_topic_name(t) for t in missing)} (is the arm's "
                             f"driver running, and are the topic names in {self.arm.source} right?)")

    def _watch_servo(self) -> None:
        if self.fake:
            self.create_subscription(Int8, self.arm.servo.status_topic,
                                     lambda m: self.on_servo_status(int(m.data)), qos.ROBOT_STATE_QOS)
        else:
            _cmd, status_type = moveit_types()
            self.create_subscription(status_type, self.arm.servo.status_topic,
                                     lambda m: self.on_servo_status(int(m.code)), qos.ROBOT_STATE_QOS)

    # -- state in ---------------------------------------------------------------------------------
    def _state_time(self, msg: Any, values: list[float]) -> bool:
        stamp = _stamp_s(msg.header.stamp)
        if stamp == 0.0:  # an unstamped driver, or one on a clock that is not running
            self.supervisor.state_refused("a measured state with a zero stamp")
            self.count("bad_states", "measured state refused: zero stamp")
            return False
        problem = self.supervisor.state_received(all(math.isfinite(v) for v in values), stamp)
        if problem:
            self.count("bad_states", f"measured state refused: {problem}")
            return False
        return True

    def on_ee_pose(self, msg: PoseStamped) -> None:
        """The measured end-effector pose."""
        p, q = msg.pose.position, msg.pose.orientation
        values = [p.x, p.y, p.z, q.x, q.y, q.z, q.w]
        if self._state_time(msg, values):
            self.ee = np.array(values[:3])
            self.ee_quat = np.array(values[3:])

    def on_tf(self, msg: Any, static: bool) -> None:
        """tf (``static``: from ``/tf_static``): the ee pose when every dynamic link of the chain
        ``base_frame -> ee_frame`` has advanced; a refused transform on the chain stops the arm."""
        assert self.tf is not None
        update: TfUpdate = self.tf.update(tf_entries(msg, static))
        for text in update.refused:
            self.count("bad_states", f"transform refused: {text}")
        if update.problem:
            self.tf_problem = update.problem
            if self.ee is not None:  # before the first pose the start-up wait reports it
                self.supervisor.state_refused(f"ee pose from tf: {update.problem}")
            return
        if update.pose is None:
            return  # the chain has not advanced (or the message was about other frames)
        pose = update.pose
        assert pose.newest_stamp_s is not None
        problem = self.supervisor.state_received(True, pose.newest_stamp_s)
        if problem:
            self.count("bad_states", f"measured state refused: {problem}")
            return
        self.tf_problem = ""
        self.ee = np.asarray(pose.pose.translation, np.float64).copy()
        self.ee_quat = np.asarray(pose.pose.rotation, np.float64).copy()

    def on_joint_states(self, msg: JointState) -> None:
        """The gripper's opening from its joints (mean of ``gripper.joint_names``)."""
        names = list(msg.name)
        g = self.arm.gripper
        if not all(n in names for n in g.joint_names) or len(msg.position) != len(names):
            return  # another joint group's message
        vals = [float(msg.position[names.index(n)]) for n in g.joint_names]
        if not all(math.isfinite(v) for v in vals):
            self.count("bad_states", "gripper joint state with NaN/inf refused")
            self.supervisor.state_received(False)
            return
        self.grip = opening(float(np.mean(vals)), g.open_position, g.closed_position)
        self.part_times[self.arm.topics.joint_states] = time.monotonic()

    def on_object(self, name: str, msg: PoseStamped) -> None:
        """An object's pose."""
        p = msg.pose.position
        if all(math.isfinite(v) for v in (p.x, p.y, p.z)):
            self.objects[name] = np.array([p.x, p.y, p.z])
            self.part_times[next(o.topic for o in self.arm.objects if o.name == name)] = time.monotonic()
        else:
            self.count("bad_states", f"object {name}: pose with NaN/inf refused")

    def state_vector(self) -> np.ndarray:
        """The policy's state, assembled as ``arm.state`` says."""
        parts: list[np.ndarray] = []
        for part in self.arm.state:
            if part == "ee_position":
                parts.append(self.ee)  # type: ignore[arg-type]
            elif part == "gripper":
                parts.append(np.array([self.grip]))
            else:
                parts.append(self.objects[part.partition(":")[2]])
        return np.concatenate(parts).astype(np.float32)

    # -- safety in --------------------------------------------------------------------------------
    def on_estop(self, msg: Bool) -> None:
        """E-stop: True latches; the arm stops within one control period."""
        if msg.data:
            first = not self.supervisor.estop_latched
            self.supervisor.estop_received(True)
            if first:
                self.get_logger().error("E-STOP: latched until the reset_estop service is called")
                self.control_tick()  # stop now, not at the next period

    def on_reset_estop(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        """Service: release a latched e-stop (the next episode starts after the move home)."""
        was = self.supervisor.reset_estop()
        resp.success = True
        resp.message = "e-stop released" if was else "no e-stop was latched"
        self.get_logger().warning(resp.message)
        return resp

    def on_servo_status(self, code: int) -> None:
        """Servo's status: a halt stops the bridge too."""
        self._vendor("servo", servo_stop_reason(code))

    def on_program_running(self, msg: Bool) -> None:
        """The robot's program state (false: it executes no commands)."""
        self._vendor("program", "" if msg.data else "the robot program is not running")

    def on_speed_scaling(self, msg: Float64) -> None:
        """The robot's speed scaling (0, or NaN: it does not move)."""
        v = float(msg.data)
        self._vendor("scaling", "" if math.isfinite(v) and v > 0.0 else f"speed scaling is {v:g}")

    def _vendor(self, source: str, reason: str) -> None:
        """An arm-side stop reason from one source ("" clears it); any one stops the arm."""
        if reason:
            self.vendor_stops[source] = reason
        else:
            self.vendor_stops.pop(source, None)
        if self.vendor_stops:
            self.supervisor.external_stop("; ".join(self.vendor_stops.values()))
        else:
            self.supervisor.clear_external()

    def on_action(self, msg: Action) -> None:
        """Keep the action for the current step (checked; a bad one is never applied)."""
        try:
            a = checked_action(f32(msg.action), ACTION_DIM)
        except BadActionError as exc:
            self.count("bad_actions", f"dropped {exc}")
            return
        if self.phase != "episode" or int(msg.episode) != self.episode or int(msg.step) != self.step_idx:
            self.count("stale_actions")
            return
        self.pending = a
        self.supervisor.action_received()

    # -- control ----------------------------------------------------------------------------------
    def control_tick(self) -> None:
        """Once per control period: home, step the episode, or hold a stop; then the status."""
        if self.ee is None:
            return
        now = time.monotonic()
        self.supervisor.parts_stale([t for t, at in self.part_times.items()
                                     if now - at > self.arm.control.state_timeout_s])
        if self.phase == "homing":
            self._home_tick()
        elif self.phase == "episode":
            self._episode_tick()
        elif self.phase == "stopped":
            self._stopped_tick()
        self.publish_status()

    def _episode_tick(self) -> None:
        if self.step_idx == 0 and self.pending is None:
            # Waiting for the episode's first action: the hold sent on arrival fades to silence;
            # the observation is announced again for an agent that (re)starts.
            if self.supervisor.reasons() not in ((), ("command_timeout",)):
                self._stop(self.supervisor.reasons(), truncate=False)
            elif time.monotonic() - self.last_obs_time > float(self.p["action_timeout_s"]):
                self.pub_obs.publish(self.last_obs)
                self.last_obs_time = time.monotonic()
                self.count("observations_republished")
            return
        verdict = self.supervisor.verdict()
        if verdict.mode != "run":
            self._stop(verdict.reasons, truncate=True, verdict=verdict)
            return
        if self.pending is None:
            # No action for this step (yet): a held step commands no motion at all (zero twist /
            # the measured pose), so a policy that died stops the arm at once.
            self.count("held_steps")
            if self.ee is not None:
                self.target.hold(self.ee)  # no lead left to chase when actions resume
            self._hold()
            applied = np.append(np.zeros(3, np.float32), self.gripper.applied).astype(np.float32)
        else:
            applied = self._command(self.pending)
        self.pending = None
        self.step_idx += 1
        self.counters["steps"] += 1
        done = self.step_idx >= self.arm.control.episode_steps
        self._publish_obs(applied, truncated=done, reason="time_limit" if done else "")
        if done:
            self._end_episode("time_limit")

    def _command(self, a: np.ndarray) -> np.ndarray:
        """Move the target by the checked action, send the command; the action really applied."""
        assert self.ee is not None
        if not np.any(a[:3]):
            # A zero action holds the hand where it is measured (teleop's deadman released, or a
            # policy's exact zero): the target drops its lead, the command is no motion.
            self.target.hold(self.ee)
            self._send_gripper(self.gripper.update(float(a[3])))
            self._hold()
            return np.append(np.zeros(3, np.float32), self.gripper.applied).astype(np.float32)
        step = self.target.step(a[:3], self.ee)
        for limit in step.limited:
            self.counters[f"limited_{limit}"] += 1
        self.last_limited = step.limited
        closed = self.gripper.update(float(a[3]))
        self._send_gripper(closed)
        if self.pub_twist is not None:
            self.velocity = self.target.velocity(self.ee, self.period, self.arm.control.max_speed_m_s)
            self.velocity_until = time.monotonic() + self.period * 1.5
            self.stream_twist()
        else:
            self._send_pose(step.target)
        return np.append(step.applied, self.gripper.applied).astype(np.float32)

    def _hold(self) -> None:
        """Command no motion (zero twist / the measured pose as target)."""
        self.velocity = np.zeros(3)
        self.velocity_until = time.monotonic() + self.period * 1.5
        if self.pub_twist is not None:
            self.stream_twist()
        elif self.ee is not None:  # the measured pose (in the box: never a target outside it)
            self._send_pose(self.box.clip(self.ee) if self.target.box is not None else self.ee)

    def _stop(self, reasons: tuple[str, ...], truncate: bool, verdict: Verdict | None = None) -> None:
        """A stop: zero command (then silence), the episode truncated with the reason."""
        text = self.supervisor.describe(reasons)
        if verdict is None or verdict.mode == "zero":
            self._hold()
        if self.phase == "episode" and truncate:
            self._truncate(reasons[0])
        if self.phase != "stopped":
            self.counters["stops"] += 1
            self.get_logger().warning(f"stopped: {text}")
            self.stop_reason = reasons[0]
            self.phase = "stopped"
            self.publish_status()

    def _stopped_tick(self) -> None:
        reasons = self.supervisor.reasons()
        verdict = self.supervisor.verdict()
        if verdict.mode == "zero":
            self._hold()
        else:
            self.velocity = np.zeros(3)
            self.velocity_until = 0.0  # silence
        if self.stop_reason == "home_timeout":
            return  # stays stopped until the reset service: never retry a failed move by itself
        # Recoverable once nothing but the missing action (there is no episode to act on) remains.
        if reasons in ((), ("command_timeout",)) and self.p["auto_reset"]:
            if self.stop_reason == "command_timeout":
                # A dead policy never leads to motion: the next episode starts where the arm
                # stands and waits for an agent to act on it.
                self._start_episode()
            else:
                self._begin_homing(f"after {self.stop_reason}")

    def _end_episode(self, reason: str) -> None:
        """After the episode's last step: home (and reset the scene) or wait stopped."""
        self.stop_reason = reason
        if self.p["auto_reset"]:
            self._begin_homing(f"after {reason}")
        else:
            self.phase = "stopped"
            self._hold()

    # -- home -------------------------------------------------------------------------------------
    def _begin_homing(self, why: str) -> None:
        self.phase = "homing"
        self.pending = None
        self._reset_scene()
        self.home_started = time.monotonic()
        if self.arm.home is None:
            self._start_episode()
            return
        self.get_logger().info(f"moving home {list(self.arm.home)} ({why})")
        assert self.ee is not None
        self.target.reset(self.ee)

    def _home_tick(self) -> None:
        """A slow scripted move to ``home`` (never the policy), under the same stops."""
        reasons = tuple(r for r in self.supervisor.reasons() if r != "command_timeout")
        if reasons:
            self.velocity_until = 0.0
            self._hold()
            self.get_logger().warning(f"homing paused: {self.supervisor.describe(reasons)}",
                                      throttle_duration_sec=5.0)
            return
        assert self.ee is not None and self.arm.home is not None
        home = np.array(self.arm.home)
        err = home - self.ee
        if float(np.max(np.abs(err))) <= self.arm.control.home_tolerance_m:
            self._hold()
            self._start_episode()
            return
        if time.monotonic() - self.home_started > self.arm.control.home_timeout_s:
            self._hold()
            self.phase = "stopped"
            self.stop_reason = "home_timeout"
            self.get_logger().error(f"did not reach home within {self.arm.control.home_timeout_s:g} s "
                                    f"(at {self.ee.round(3).tolist()}); call reset to try again")
            return
        speed = self.arm.control.home_speed_m_s
        n = float(np.linalg.norm(err))
        move = err if n <= speed * self.period else err * (speed * self.period / n)
        self.target.reset(self.ee)
        self.target.move_to(self.ee + move)
        t = self.target.target
        if self.pub_twist is not None:
            self.velocity = self.target.velocity(self.ee, self.period, speed)
            self.velocity_until = time.monotonic() + self.period * 1.5
            self.stream_twist()
        else:
            self._send_pose(t)

    def _reset_scene(self) -> None:
        """Ask ``topics.scene_reset_service`` (if any) to reset the scene; never waits for it."""
        if self.scene_client is None or self.episode < 0:
            return
        if not self.scene_client.service_is_ready():
            self.count("scene_resets_missed", f"scene reset service "
                       f"{self.arm.topics.scene_reset_service} not available")
            return
        self.scene_client.call_async(Trigger.Request())
        self.counters["scene_resets"] += 1

    def _start_episode(self) -> None:
        assert self.ee is not None
        self.episode += 1
        self.step_idx = 0
        self.pending = None
        self.target.reset(self.ee)
        self.phase = "episode"
        self.counters["episodes"] += 1
        self._publish_obs(np.zeros(0, np.float32), truncated=False, reason="")

    # -- out --------------------------------------------------------------------------------------
    def _truncate(self, reason: str) -> None:
        """End the episode early: one more step (the period the arm held) marked truncated."""
        self.step_idx += 1
        self.counters["steps"] += 1
        self._publish_obs(np.zeros(ACTION_DIM, np.float32), truncated=True, reason=reason)

    def _publish_obs(self, applied: np.ndarray, truncated: bool, reason: str) -> None:
        msg = Observation(episode=max(self.episode, 0), step=self.step_idx, state=self.state_vector(),
                          action_taken=applied, terminated=False, truncated=truncated,
                          truncation_reason=reason, has_truth=False, true_reward=math.nan,
                          progress=math.nan, success=False)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.arm.base_frame
        self.pub_obs.publish(msg)
        self.last_obs, self.last_obs_time = msg, time.monotonic()

    def stream_twist(self) -> None:
        """Servo dialect, at ``servo.stream_rate_hz``: the current velocity, stamped now; zero once
        its control period is over; nothing while silent."""
        if self.pub_twist is None:
            return
        now = time.monotonic()
        silent = self.velocity_until == 0.0
        if silent:
            return
        v = self.velocity if now <= self.velocity_until else np.zeros(3)
        if now > self.velocity_until + self.arm.control.zero_periods * self.period:
            self.velocity_until = 0.0  # a stalled control loop: zero for a while, then silence
        msg = TwistStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.arm.base_frame
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(x) for x in v)
        self.pub_twist.publish(msg)
        self.counters["twists_sent"] += 1

    def _send_pose(self, position: np.ndarray) -> None:
        assert self.pub_pose is not None and self.ee_quat is not None
        msg = PoseStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.arm.base_frame
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(x) for x in position)
        q = self.ee_quat
        msg.pose.orientation.x, msg.pose.orientation.y = float(q[0]), float(q[1])
        msg.pose.orientation.z, msg.pose.orientation.w = float(q[2]), float(q[3])
        self.pub_pose.publish(msg)

    def _send_gripper(self, closed: bool) -> None:
        if self.pub_grip is None:
            return
        g = self.arm.gripper
        self.pub_grip.publish(Float64MultiArray(data=list(g.command_closed if closed else g.command_open)))

    def publish_status(self) -> None:
        """``safety_status``: phase, stop reasons, limits that acted, the measured and target pose."""
        reasons = self.supervisor.reasons()
        if self.phase == "episode" and self.step_idx == 0:
            reasons = tuple(r for r in reasons if r != "command_timeout")
        data = {"phase": self.phase, "episode": self.episode, "step": self.step_idx,
                "stop": self.supervisor.describe(reasons) if reasons else "",
                "last_stop": self.stop_reason, "limited": list(self.last_limited),
                "measured": None if self.ee is None else self.ee.round(4).tolist(),
                "target": None if self.target.target is None else self.target.target.round(4).tolist(),
                "estop_latched": self.supervisor.estop_latched}
        self.pub_status.publish(String(data=json.dumps(data)))
        self._ticks += 1
        if self._ticks % max(1, round(self.arm.control.rate_hz / MARKER_RATE_HZ)) == 0:
            text = f"{self.phase} ep {self.episode} step {self.step_idx}" + (
                f" | STOP: {data['stop']}" if data["stop"] else "")
            self.pub_markers.publish(safety_markers(
                self.box.low, self.box.high, data["target"], data["measured"], text,
                bool(data["stop"]), self.arm.base_frame, self.get_clock().now().to_msg()))

    def on_reset(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        """Service: end the episode (truncated, ``reset``), move home, start the next one."""
        if self.phase == "episode" and self.step_idx > 0:
            self._truncate("reset")
        self._hold()
        self.stop_reason = ""
        self._begin_homing("reset")
        resp.success, resp.message = True, f"episode {self.episode} ended; moving home"
        return resp

    def status(self) -> dict[str, Any]:
        """Phase, episode and step, and the last stop."""
        return {"phase": self.phase, "episode": self.episode, "step": self.step_idx,
                "last_stop": self.stop_reason, "estop_latched": self.supervisor.estop_latched}


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``arm_bridge`` executable."""
    return run_node(ArmBridge, args)


if __name__ == "__main__":
    sys.exit(main())
