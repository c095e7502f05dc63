"""``fake_arm``: MetaWorld's Sawyer behind MoveIt Servo's rules, so the real-arm launch path
(``arm_bridge``) runs on a machine without a robot.

The scene is the ``task`` parameter's (e.g. ``drawer-open-v3``, ``layout``), built with
``ros2_erl_vlm.envs.make_env`` (``MUJOCO_GL=egl``). The arm config file (``arm_config``, the same
file the bridge reads, e.g. ``config/arms/fake_sawyer.yaml``) gives the topic and service names,
the frames, the dialect and the gripper joint names. Every name is relative: it follows the node's
namespace. Units: metres, m/s, seconds; positions in ``arm.base_frame``.

Each tick of a wall-clock timer at ``rate_hz`` (default 50 Hz) the fake applies the newest valid
command that arrived at least ``lag_s`` (0.03 s) ago, moves MetaWorld's mocap target, steps the
MuJoCo physics directly for the wall time since the previous tick (at most 5 ticks' worth after
a stall; MetaWorld's ``step`` is never called, so its 500-step path limit never triggers) and
publishes the state. The hand follows the mocap target through MetaWorld's weld, a few mm behind.

Dialects (``arm.dialect``, or the ``arm_dialect`` parameter when set, as the bridge's):

* ``servo``: ``geometry_msgs/TwistStamped`` on ``arm.topics.twist``, linear velocity in m/s
  (Servo's ``speed_units``) in ``arm.base_frame`` (``header.frame_id`` must be that frame or
  empty); angular velocity is ignored: the orientation is held. Servo's rules:

  - twists are ignored (dropped on arrival, counted) until the command type is switched to twist
    with the service ``arm.servo.switch_service``: ``std_srvs/Trigger`` here (moveit_msgs'
    ``ServoCommandType`` is not on PyPI), always "twist";
  - ``arm.servo.pause_service`` (``std_srvs/SetBool``): ``data=true`` pauses (no motion),
    ``false`` resumes; the fake starts unpaused;
  - the arm halts (zero velocity) on every tick where ``now - header.stamp >= arm.servo.timeout_s``
    on the system clock; a zero stamp is dropped at once; NaN/inf twists are dropped;
  - the velocity is multiplied by ``speed_scaling`` (0..1) and capped at ``max_speed_m_s``
    (the fake's own speed limit, like joint velocity limits);
  - status as ``std_msgs/Int8`` on ``arm.servo.status_topic`` at ``rate_hz`` with Servo's codes.
    The fake uses two: 0 (no warning) and 5 (halt for collision, see blocked mode); it never
    reports 4 (decelerate for collision) or the singularity / joint-bound codes.

* ``pose``: ``geometry_msgs/PoseStamped`` on ``arm.topics.pose_target`` (orientation ignored):
  the mocap target moves toward the target position at most ``max_speed_m_s`` x
  ``speed_scaling``, like a Cartesian impedance controller; a target whose stamp is zero or older
  than ``pose_timeout_s`` holds the hand where it is. No switch, pause or status.

Gripper: ``std_msgs/Float64MultiArray`` on ``arm.topics.gripper_command``: ``data[0] > 0`` closes
(MetaWorld's gripper action +1), anything else opens (-1); empty or NaN commands are ignored with a
counted warning. The gripper starts open.

Reachable box: MetaWorld's own mocap range for the task (drawer-open: x -0.5..0.5, y 0.4..1.0,
z 0.05..0.5), wider than the bridge's workspace box; the fake clips only to that, so keeping the
hand inside the workspace is the bridge's job.

Blocked mode (``block.enabled``, default off): a wall the hand cannot pass, at ``block.limit`` (m)
on ``block.axis`` (x | y | z of the base frame); ``block.side`` ``max`` keeps the hand at or below
the limit, ``min`` at or above. A motion step that would cross the wall is cut where the target
reaches it; once there, any command with a component into the wall halts the whole motion (as
Servo's collision halt stops every joint) and the status is 5 for that tick; motion away from or
along the wall is free (status 0). A hand that starts beyond the wall is only kept from going
further. The same wall applies in the pose dialect (without a status).

Published, stamped with the system clock, ``frame_id`` ``arm.base_frame``:

* ``arm.topics.ee_pose`` (``geometry_msgs/PoseStamped``, best effort as Franka's convenience
  topics: a reliable subscriber gets nothing): the hand position (MetaWorld's ``obs[0:3]``) and a
  fixed orientation (MetaWorld's mocap quaternion, x=0, y=0.7071, z=0, w=0.7071);
* ``arm.topics.joint_states`` (``sensor_msgs/JointState``, reliable, depth 10, as
  joint_state_broadcaster's): the joints ``arm.gripper.joint_names``, each at MetaWorld's gripper
  opening ``obs[3]`` (1 open .. 0 closed);
* for each ``arm.objects`` entry (at most two): a ``geometry_msgs/PoseStamped`` of the task's
  object on its topic, best effort (first object ``obs[4:7]`` with its quaternion ``obs[7:11]``,
  second ``obs[11:14]`` / ``obs[14:18]``);
* with ``arm.ee_pose_source: tf``, the same hand pose as tf (tf2_msgs/TFMessage, as a
  robot_state_publisher does; tf2_msgs is imported only then): ``arm.base_frame ->``
  :data:`TF_LINK_FRAME` (``fake_wrist``) on ``arm.topics.tf`` every tick (reliable, volatile,
  depth 100) and the fixed link ``fake_wrist -> arm.ee_frame`` (:data:`WRIST_TO_HAND`: 0.1 m along z, turned
  90 degrees about x) once on ``arm.topics.tf_static`` (reliable, transient local), so the
  bridge composes a chain with an intermediate frame and a static link;
* ``camera/image_raw`` (``sensor_msgs/Image``, rgb8, sensor-data QoS) of the task camera at
  ``camera.rate_hz`` (0: off), ``camera.image_size`` pixels (0: the task's), stamped at render
  time, ``frame_id`` ``camera.frame_id``; with ``camera.compressed`` also JPEG on
  ``camera/image_raw/compressed`` (sensor_msgs/CompressedImage), as a camera driver does.

Commands are subscribed reliable, volatile, depth 10 (Servo's and the controllers' defaults: a
best-effort publisher reaches none of them).

Service ``fake_arm/freeze_tf`` (:data:`FREEZE_TF_SERVICE`, ``std_srvs/SetBool``): ``true`` keeps
re-publishing the last dynamic transform with its old stamp (a dead driver behind a relay that
repeats the last transform), ``false`` makes tf live again; the ``PoseStamped`` ee topic stays live.

Service ``fake_arm/reset_scene`` (:data:`RESET_SCENE_SERVICE`, ``std_srvs/Trigger``): a human
resetting the scene. Resets the MetaWorld task with the next seed (``episode_seed(seed, n)``,
n = 1, 2, ...; the start used n = 0): objects re-placed and the hand TELEPORTED to MetaWorld's
start position; pending twists and pose targets are forgotten, Servo's switch and pause state
are kept.

The fake runs on the system clock like a real arm: ``use_sim_time:=true`` is refused (exit 1), as
is a missing or invalid ``arm_config``. With a ``run_dir`` it writes
``<run_dir>/fake_arm/status.json`` (counters, Servo state, hand and target positions).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, Int8
from std_srvs.srv import SetBool, Trigger

from ros2_erl_vlm.core.safety.arm_config import ArmConfig, load_arm_config
from ros2_erl_vlm.core.safety.transforms import Pose
from ros2_erl_vlm.core.seeds import episode_seed
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.images import rgb_to_image
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.params import ParamError

#: The scene-reset service (relative: follows the namespace).
RESET_SCENE_SERVICE = "fake_arm/reset_scene"
#: Freezes / unfreezes the published tf (relative: follows the namespace).
FREEZE_TF_SERVICE = "fake_arm/freeze_tf"

#: MoveIt Servo's status codes the fake reports (moveit_msgs/ServoStatus).
STATUS_OK = 0
STATUS_DECELERATE_FOR_COLLISION = 4  # never reported by the fake
STATUS_HALT_FOR_COLLISION = 5

#: Commands: reliable, volatile, depth 10 (rclcpp's SystemDefaultsQoS, as Servo subscribes).
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
#: ee pose and object poses: best effort, as Franka's convenience topics.
POSE_STATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                            reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
#: Joint states and the Servo status: reliable, depth 10 (joint_state_broadcaster's, Servo's).
RELIABLE_STATE_QOS = COMMAND_QOS

#: The hand's fixed orientation (MetaWorld's mocap quaternion [1, 0, 1, 0] normalised), x y z w.
HAND_QUAT_XYZW = (0.0, math.sqrt(0.5), 0.0, math.sqrt(0.5))
_MOCAP_QUAT_WXYZ = np.array([1.0, 0.0, 1.0, 0.0])
#: The intermediate frame of the published tf chain base_frame -> fake_wrist -> ee_frame.
TF_LINK_FRAME = "fake_wrist"
#: The static tf link from the intermediate frame to the hand: 0.1 m along z, 90 degrees about x.
WRIST_TO_HAND = Pose((0.0, 0.0, 0.1), (math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)))
#: tf2_ros' broadcaster QoS: dynamic reliable, volatile, depth 100; static transient local, depth 1.
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: At most this many ticks' worth of physics after a stalled tick.
_MAX_TICKS_PER_STEP = 5.0
#: Object slots of MetaWorld's observation: (position, quaternion w x y z) index ranges.
_OBJECT_SLOTS = ((slice(4, 7), slice(7, 11)), (slice(11, 14), slice(14, 18)))
_AXES = {"x": 0, "y": 1, "z": 2}


def _stamp_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class FakeArm(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("ticks", "twists", "twists_before_switch", "twists_zero_stamp", "twists_bad",
                "twists_stale", "timeout_halts", "paused_ticks", "pose_targets", "pose_targets_bad",
                "pose_stale_ticks", "gripper_commands", "gripper_bad", "blocked_ticks", "images",
                "scene_resets", "tf_sent", "tf_frozen_ticks")

    def __init__(self) -> None:
        super().__init__("fake_arm")
        p = self.p
        if self.get_parameter("use_sim_time").value:
            raise ParamError("parameter 'use_sim_time': fake_arm runs on the system clock like a real "
                             "arm (its stamps are what Servo's timeout is checked against); start it "
                             "without use_sim_time:=true")
        if not p["arm_config"]:
            raise ParamError("parameter 'arm_config': must be set (an arm config YAML, e.g. "
                             "config/arms/fake_sawyer.yaml)")
        self.arm: ArmConfig = load_arm_config(p["arm_config"], p.get("arm_dialect") or None)
        if len(self.arm.objects) > len(_OBJECT_SLOTS):
            raise ValueError(f"{self.arm.source}: arm.objects has {len(self.arm.objects)} entries; the "
                             f"fake arm publishes at most {len(_OBJECT_SLOTS)} (MetaWorld's object slots)")
        os.environ.setdefault("MUJOCO_GL", "egl")
        from ros2_erl_vlm.envs import load_task, make_env

        task = load_task(p["task"], layout=p["layout"] or None)
        self.camera_rate = float(p["camera.rate_hz"])
        size = int(p["camera.image_size"]) or task.image_size
        self.env = make_env(task, seed=int(p["seed"]), render=self.camera_rate > 0, image_size=size)
        self.close_at_exit(self.env)
        self.mw: Any = getattr(self.env.metaworld, "unwrapped", self.env.metaworld)
        self.mocap_low = np.asarray(self.mw.mocap_low, dtype=np.float64)
        self.mocap_high = np.asarray(self.mw.mocap_high, dtype=np.float64)
        self.sim_dt = float(self.mw.model.opt.timestep)
        self.seed = int(p["seed"])
        self.rate_hz = float(p["rate_hz"])
        self.lag_ns = round(float(p["lag_s"]) * 1e9)
        self.speed_scaling = float(p["speed_scaling"])
        self.max_speed = float(p["max_speed_m_s"])
        self.pose_timeout_ns = round(float(p["pose_timeout_s"]) * 1e9)
        self.servo_timeout_ns = round(self.arm.servo.timeout_s * 1e9)
        self.block = (_AXES[p["block.axis"]], str(p["block.side"]), float(p["block.limit"])) \
            if p["block.enabled"] else None
        self.servo = self.arm.dialect == "servo"
        if self.servo and self.arm.servo.interface != "fake":
            self.get_logger().warning(
                f"arm.servo.interface is {self.arm.servo.interface!r}: the fake serves "
                f"{self.arm.servo.switch_service} as std_srvs/Trigger, not moveit_msgs/ServoCommandType")

        # Servo state and the commands waiting out the lag: (arrival ns, message).
        self.switched = False
        self.paused = False
        self.status_code = STATUS_OK
        self.pending: dict[str, deque[tuple[int, Any]]] = {k: deque(maxlen=1000)
                                                           for k in ("twist", "pose", "gripper")}
        self.twist: TwistStamped | None = None
        self._timed_out = False  # the held twist ran past Servo's timeout (counted once)
        self.pose_goal: PoseStamped | None = None
        self.gripper = -1.0  # MetaWorld's gripper action: -1 open, +1 closed
        self.scene = 0
        self.target = np.zeros(3)
        self.obs = np.zeros(18)
        self._reset_env()

        t = self.arm.topics
        self.pub_ee = self.create_publisher(PoseStamped, t.ee_pose, POSE_STATE_QOS)
        self.pub_joints = self.create_publisher(JointState, t.joint_states, RELIABLE_STATE_QOS)
        self.pub_objects = [self.create_publisher(PoseStamped, o.topic, POSE_STATE_QOS)
                            for o in self.arm.objects]
        self.pub_status = (self.create_publisher(Int8, self.arm.servo.status_topic, RELIABLE_STATE_QOS)
                           if self.servo else None)
        self.pub_img = self.create_publisher(Image, qos.CAMERA_IMAGE, qos.IMAGE_QOS)
        self.pub_cimg = (self.create_publisher(CompressedImage, qos.CAMERA_IMAGE_COMPRESSED, qos.IMAGE_QOS)
                         if p["camera.compressed"] else None)
        if self.servo:
            self.create_subscription(TwistStamped, t.twist, self.on_twist, COMMAND_QOS)
            self.create_service(Trigger, self.arm.servo.switch_service, self.on_switch)
            self.create_service(SetBool, self.arm.servo.pause_service, self.on_pause)
        else:
            self.create_subscription(PoseStamped, t.pose_target, self.on_pose_target, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, t.gripper_command, self.on_gripper, COMMAND_QOS)
        self.create_service(Trigger, RESET_SCENE_SERVICE, self.on_reset_scene)
        self.pub_tf = None
        self.tf_frozen = False
        self.tf_last: Any = None
        if self.arm.ee_pose_source == "tf":
            self._start_tf(TF_LINK_FRAME)
        self._last_tick = time.monotonic()
        self._sim_debt = 0.0  # wall time not yet simulated (less than one physics step)
        self.wall_timer(1.0 / self.rate_hz, self.tick)
        if self.camera_rate > 0:
            self.wall_timer(1.0 / self.camera_rate, self.publish_image)
        block = ("off" if self.block is None else
                 f"{p['block.axis']} {'<=' if self.block[1] == 'max' else '>='} {self.block[2]:g} m")
        self.get_logger().info(
            f"fake {self.arm.name} ({self.arm.dialect}) on task {task.name} ({task.layout}): "
            f"{self.rate_hz:g} Hz, lag {p['lag_s']:g} s, speed x{self.speed_scaling:g} (cap "
            f"{self.max_speed:g} m/s), reachable {self.mocap_low.tolist()} .. {self.mocap_high.tolist()}, "
            f"wall {block}, hand at {np.round(self.obs[:3], 3).tolist()}")

    # -- the scene ------------------------------------------------------------------------------
    def _reset_env(self) -> None:
        """Reset MetaWorld with scene ``self.scene``'s seed; the target is where the hand starts."""
        self.env.reset(seed=episode_seed(self.seed, self.scene))
        self.target = np.asarray(self.mw.data.mocap_pos[0], dtype=np.float64).copy()
        self.obs = np.asarray(self.mw._get_curr_obs_combined_no_goal(), dtype=np.float64)
        # The weld's offset between the mocap and the hand, measured whenever the hand is at rest
        # (while it moves the difference also holds its lag): a hand target -> a mocap target.
        self.hand_offset = self.target - self.obs[0:3]
        self.twist = None
        self.pose_goal = None
        for queue in self.pending.values():
            queue.clear()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _stamp(self) -> Time:
        return self.get_clock().now().to_msg()

    # -- commands -------------------------------------------------------------------------------
    def _frame_ok(self, frame_id: str) -> bool:
        return frame_id in ("", self.arm.base_frame)

    def on_twist(self, msg: TwistStamped) -> None:
        """Servo: queue a valid twist (dropped before the switch, with a zero stamp, NaN, wrong frame)."""
        self.counters["twists"] += 1
        if not self.switched:
            self.count("twists_before_switch", "twist ignored: the command type is not switched to twist "
                       f"yet (call {self.arm.servo.switch_service})")
            return
        if _stamp_ns(msg.header.stamp) == 0:
            self.count("twists_zero_stamp", "twist with a zero stamp dropped (Servo's rule)")
            return
        lin = msg.twist.linear
        if not all(math.isfinite(v) for v in (lin.x, lin.y, lin.z)):
            self.count("twists_bad", "twist with NaN/inf dropped")
            return
        if not self._frame_ok(msg.header.frame_id):
            self.count("twists_bad", f"twist in frame {msg.header.frame_id!r} dropped (the fake takes "
                       f"{self.arm.base_frame!r} or empty)")
            return
        self.pending["twist"].append((time.monotonic_ns(), msg))

    def on_pose_target(self, msg: PoseStamped) -> None:
        """Pose dialect: queue a valid target (NaN or a wrong frame dropped)."""
        p = msg.pose.position
        if not all(math.isfinite(v) for v in (p.x, p.y, p.z)):
            self.count("pose_targets_bad", "pose target with NaN/inf dropped")
            return
        if not self._frame_ok(msg.header.frame_id):
            self.count("pose_targets_bad", f"pose target in frame {msg.header.frame_id!r} dropped (the "
                       f"fake takes {self.arm.base_frame!r} or empty)")
            return
        self.counters["pose_targets"] += 1
        self.pending["pose"].append((time.monotonic_ns(), msg))

    def on_gripper(self, msg: Float64MultiArray) -> None:
        """Queue a gripper command: data[0] > 0 closes, otherwise opens; empty/NaN ignored."""
        data = list(msg.data)
        if not data or not math.isfinite(data[0]):
            self.count("gripper_bad", f"gripper command {data!r} ignored (need a finite data[0])")
            return
        self.counters["gripper_commands"] += 1
        self.pending["gripper"].append((time.monotonic_ns(), 1.0 if data[0] > 0 else -1.0))

    def _take_due(self, kind: str, now_mono_ns: int) -> Any:
        """The newest command of ``kind`` that has waited out the lag (older ones are dropped)."""
        queue, due = self.pending[kind], None
        while queue and queue[0][0] + self.lag_ns <= now_mono_ns:
            due = queue.popleft()[1]
        return due

    def on_switch(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        """Servo's switch_command_type: from now on twists are accepted."""
        self.switched = True
        resp.success, resp.message = True, "command type: twist"
        return resp

    def on_pause(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        """Servo's pause_servo: true pauses (no motion), false resumes."""
        self.paused = bool(req.data)
        resp.success, resp.message = True, "paused" if self.paused else "running"
        return resp

    def on_reset_scene(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        """A human resetting the scene: the next seed; the hand teleports to MetaWorld's start."""
        self.scene += 1
        self._reset_env()
        self.counters["scene_resets"] += 1
        resp.success = True
        resp.message = (f"scene {self.scene} (seed {episode_seed(self.seed, self.scene)}): the hand was "
                        f"teleported to {np.round(self.obs[:3], 4).tolist()}")
        self.get_logger().info(resp.message)
        return resp

    # -- motion ---------------------------------------------------------------------------------
    def _wall(self, old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, bool]:
        """``new`` cut at the wall (blocked mode); True when the wall stopped the motion."""
        if self.block is None:
            return new, False
        axis, side, limit = self.block
        sign = 1.0 if side == "max" else -1.0
        into = sign * (new[axis] - old[axis])  # > 0: towards / through the wall
        beyond = sign * (new[axis] - limit)
        if into <= 0 or beyond <= 0:
            return new, False
        gap = sign * (limit - old[axis])
        if gap <= 0:  # at (or beyond) the wall already: a collision halt stops the whole motion
            return old.copy(), True
        cut = old + (new - old) * (gap / into)
        cut[axis] = limit
        return cut, True

    def _servo_velocity(self, now_ns: int) -> np.ndarray:
        """Servo's rules for this tick: the velocity (m/s) to apply (zero when halted)."""
        due = self._take_due("twist", time.monotonic_ns())
        if due is not None:
            if now_ns - _stamp_ns(due.header.stamp) >= self.servo_timeout_ns:
                self.count("twists_stale", "twist older than Servo's timeout when it took effect: halt "
                           "(stamp twists with the system clock and stream them)")
            self.twist, self._timed_out = due, False
        if self.paused:
            self.counters["paused_ticks"] += 1
            return np.zeros(3)
        if self.twist is None:
            return np.zeros(3)
        if now_ns - _stamp_ns(self.twist.header.stamp) >= self.servo_timeout_ns:
            if not self._timed_out:  # once per command that runs out
                self._timed_out = True
                self.counters["timeout_halts"] += 1
            return np.zeros(3)
        lin = self.twist.twist.linear
        return np.array([lin.x, lin.y, lin.z], dtype=np.float64)

    def _pose_step(self, now_ns: int, dt: float) -> np.ndarray:
        """Pose dialect: the target's next position (toward the goal at the capped speed)."""
        due = self._take_due("pose", time.monotonic_ns())
        if due is not None:
            self.pose_goal = due
        goal = self.pose_goal
        if goal is None:
            return self.target.copy()
        stamp = _stamp_ns(goal.header.stamp)
        if stamp == 0 or now_ns - stamp > self.pose_timeout_ns:
            self.counters["pose_stale_ticks"] += 1
            return self.target.copy()
        p = goal.pose.position
        # The target is for the hand; the mocap sits the weld's offset from it.
        want = np.array([p.x, p.y, p.z], dtype=np.float64) + self.hand_offset
        want = np.clip(want, self.mocap_low, self.mocap_high)
        step = want - self.target
        dist, reach = float(np.linalg.norm(step)), self.max_speed * self.speed_scaling * dt
        if dist > reach:
            step *= reach / dist
        return self.target + step

    def tick(self) -> None:
        """One control period: apply the commands, move the mocap target, step physics, publish."""
        now_mono = time.monotonic()
        dt = min(max(now_mono - self._last_tick, 0.0), _MAX_TICKS_PER_STEP / self.rate_hz)
        self._last_tick = now_mono
        now_ns = self._now_ns()
        grip = self._take_due("gripper", time.monotonic_ns())
        if grip is not None:
            self.gripper = float(grip)
        if self.servo:
            v = self._servo_velocity(now_ns) * self.speed_scaling
            speed = float(np.linalg.norm(v))
            if speed > self.max_speed:
                v *= self.max_speed / speed
            new = np.clip(self.target + v * dt, self.mocap_low, self.mocap_high)
        else:
            new = self._pose_step(now_ns, dt)
        new, blocked = self._wall(self.target, new)
        if blocked:
            self.counters["blocked_ticks"] += 1
        self.status_code = STATUS_HALT_FOR_COLLISION if blocked else STATUS_OK
        self.target = new
        self._step_physics(dt)
        self.counters["ticks"] += 1
        self.publish_state()

    def _step_physics(self, dt: float) -> None:
        """MuJoCo steps for ``dt`` of sim time with the mocap at the target (MetaWorld's ``step``
        is bypassed: no path-length limit, no reward). Sim time keeps up with wall time: what is
        left over (under one physics step) is simulated on a later tick."""
        import mujoco

        mw = self.mw
        mw.data.mocap_pos[0] = self.target
        mw.data.mocap_quat[0] = _MOCAP_QUAT_WXYZ
        self._sim_debt += dt
        n = int(self._sim_debt / self.sim_dt)
        if n == 0:
            return
        self._sim_debt -= n * self.sim_dt
        mw.do_simulation([self.gripper, -self.gripper], n_frames=n)
        mujoco.mj_forward(mw.model, mw.data)
        for site in mw._target_site_config:
            mw._set_pos_site(*site)
        before = self.obs[0:3].copy()
        self.obs = np.asarray(mw._get_curr_obs_combined_no_goal(), dtype=np.float64)
        if np.linalg.norm(self.obs[0:3] - before) < 1e-4 * n:  # at rest: the weld's own offset
            self.hand_offset = self.target - self.obs[0:3]

    # -- tf -------------------------------------------------------------------------------------
    def _transform(self, parent: str, child: str, pose: Pose, stamp: Time) -> Any:
        from geometry_msgs.msg import TransformStamped

        ts = TransformStamped()
        ts.header.stamp, ts.header.frame_id, ts.child_frame_id = stamp, parent, child
        tr, q = ts.transform.translation, ts.transform.rotation
        tr.x, tr.y, tr.z = (float(v) for v in pose.translation)
        q.x, q.y, q.z, q.w = (float(v) for v in pose.rotation)
        return ts

    def _start_tf(self, link: str) -> None:
        """tf publishers (tf2_msgs imported here only), the static link sent once, latched."""
        from ros2_erl_vlm.nodes.arm_bridge import tf_message_type

        if not link or link in (self.arm.base_frame, self.arm.ee_frame):
            raise ParamError(f"{self.arm.source}: arm.base_frame and arm.ee_frame must differ from the "
                             f"fake's intermediate tf frame {link!r}")
        self.tf_type, self.tf_link = tf_message_type(), link
        self.pub_tf = self.create_publisher(self.tf_type, self.arm.topics.tf, TF_QOS)
        self.pub_tf_static = self.create_publisher(self.tf_type, self.arm.topics.tf_static, TF_STATIC_QOS)
        self.pub_tf_static.publish(self.tf_type(transforms=[
            self._transform(link, self.arm.ee_frame, WRIST_TO_HAND, self._stamp())]))
        self.create_service(SetBool, FREEZE_TF_SERVICE, self.on_freeze_tf)

    def on_freeze_tf(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        """true: tf keeps repeating its last transform (old stamp); false: live again."""
        self.tf_frozen = bool(req.data)
        resp.success, resp.message = True, "tf frozen" if self.tf_frozen else "tf live"
        self.get_logger().info(resp.message)
        return resp

    def _publish_tf(self, stamp: Time) -> None:
        """base -> link (the hand's pose with the static link taken off), or the frozen last one."""
        if self.pub_tf is None:
            return
        if self.tf_frozen and self.tf_last is not None:
            self.counters["tf_frozen_ticks"] += 1
        else:
            hand = Pose.of(self.obs[0:3], HAND_QUAT_XYZW)
            self.tf_last = self.tf_type(transforms=[self._transform(
                self.arm.base_frame, self.tf_link, hand.compose(WRIST_TO_HAND.inverse()), stamp)])
        self.pub_tf.publish(self.tf_last)
        self.counters["tf_sent"] += 1

    # -- publishing -----------------------------------------------------------------------------
    def _pose_msg(self, stamp: Time, pos: np.ndarray, quat_xyzw: tuple[float, ...]) -> PoseStamped:
        msg = PoseStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = self.arm.base_frame
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in quat_xyzw)
        return msg

    def publish_state(self) -> None:
        """ee pose, joint states, object poses and (servo) the status, all stamped now."""
        stamp = self._stamp()
        obs = self.obs
        self.pub_ee.publish(self._pose_msg(stamp, obs[0:3], HAND_QUAT_XYZW))
        self._publish_tf(stamp)
        js = JointState()
        js.header.stamp = stamp
        js.header.frame_id = self.arm.base_frame
        js.name = list(self.arm.gripper.joint_names)
        js.position = [float(obs[3])] * len(js.name)
        self.pub_joints.publish(js)
        for pub, (pos, quat) in zip(self.pub_objects, _OBJECT_SLOTS, strict=False):
            w, x, y, z = (float(v) for v in obs[quat])
            q = (x, y, z, w) if x * x + y * y + z * z + w * w > 1e-12 else (0.0, 0.0, 0.0, 1.0)
            pub.publish(self._pose_msg(stamp, obs[pos], q))
        if self.pub_status is not None:
            self.pub_status.publish(Int8(data=self.status_code))

    def publish_image(self) -> None:
        """Render the task camera and publish it, stamped at render time."""
        frame = self.env.render()
        if frame is None:
            return
        stamp = self._stamp()
        self.pub_img.publish(rgb_to_image(frame, stamp, str(self.p["camera.frame_id"])))
        if self.pub_cimg is not None:  # as image_transport's compressed plugin: JPEG of BGR
            import cv2

            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]))
            if ok:
                msg = CompressedImage(format="rgb8; jpeg compressed bgr8", data=buf.tobytes())
                msg.header.stamp, msg.header.frame_id = stamp, str(self.p["camera.frame_id"])
                self.pub_cimg.publish(msg)
        self.counters["images"] += 1

    def status(self) -> dict[str, Any]:
        """Servo state, the hand and its target."""
        return {"dialect": self.arm.dialect, "switched": self.switched, "paused": self.paused,
                "status_code": self.status_code, "scene": self.scene, "tf_frozen": self.tf_frozen,
                "hand": np.round(self.obs[:3], 5).tolist(), "target": np.round(self.target, 5).tolist(),
                "gripper_opening": round(float(self.obs[3]), 4)}


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``fake_arm`` executable."""
    return run_node(FakeArm, args)


if __name__ == "__main__":
    sys.exit(main())
