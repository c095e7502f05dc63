"""fake_arm over real DDS: MoveIt Servo's rules (no motion before the switch, stale and zero stamps
halt, pause), the commanded velocity, the wall of blocked mode and its status code, the gripper,
the scene reset, the pose dialect, the published state and camera, and the refusal of sim time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.integration, pytest.mark.render]

MODULE = "ros2_erl_vlm.nodes.fake_arm"
STARTUP_S = 120.0  # a busy 2-core machine: imports, MetaWorld, the EGL context
STILL_M = 0.005  # "no motion": the hand moved less than this (it settles by a few mm on a loaded machine)


def _pos(msg: Any) -> np.ndarray:
    p = msg.pose.position
    return np.array([p.x, p.y, p.z])


class Arm:
    """The probe's view of a fake arm: the newest ee pose (with arrival times), joint states, status
    codes, images and object poses; publishers of twists, pose targets and gripper commands."""

    def __init__(self, probe: Any, arm_cfg: Any) -> None:
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float64MultiArray, Int8
        from std_srvs.srv import SetBool, Trigger

        from ros2_erl_vlm.nodes.fake_arm import COMMAND_QOS, POSE_STATE_QOS, RESET_SCENE_SERVICE
        from ros2_erl_vlm.ros import qos

        self.probe, self.node = probe, probe.node
        self.poses: list[tuple[float, Any]] = []
        self.joints: list[Any] = []
        self.status: list[int] = []
        self.images: list[tuple[float, Any]] = []
        self.objects: list[Any] = []
        t, n = arm_cfg["topics"], self.node
        n.create_subscription(PoseStamped, t["ee_pose"], lambda m: self.poses.append((time.time(), m)),
                              POSE_STATE_QOS)
        n.create_subscription(JointState, t["joint_states"], self.joints.append, POSE_STATE_QOS)
        n.create_subscription(Int8, "servo_node/status", lambda m: self.status.append(m.data), COMMAND_QOS)
        n.create_subscription(Image, qos.CAMERA_IMAGE, lambda m: self.images.append((time.time(), m)),
                              qos.IMAGE_QOS)
        for o in arm_cfg.get("objects", []):
            n.create_subscription(PoseStamped, o["topic"], self.objects.append, POSE_STATE_QOS)
        self.twist_pub = n.create_publisher(TwistStamped, t["twist"], COMMAND_QOS)
        self.pose_pub = n.create_publisher(PoseStamped, t["pose_target"], COMMAND_QOS)
        self.gripper_pub = n.create_publisher(Float64MultiArray, t["gripper_command"], COMMAND_QOS)
        self.switch = n.create_client(Trigger, "servo_node/switch_command_type")
        self.pause = n.create_client(SetBool, "servo_node/pause_servo")
        self.reset = n.create_client(Trigger, RESET_SCENE_SERVICE)
        self._types = (TwistStamped, PoseStamped, Float64MultiArray, SetBool, Trigger)

    @property
    def ee(self) -> np.ndarray:
        """The newest measured hand position."""
        return _pos(self.poses[-1][1])

    def _stamp_ns(self, age_s: float | None) -> int:
        return 0 if age_s is None else time.time_ns() - round(age_s * 1e9)

    def stream_twist(self, v: tuple[float, float, float], seconds: float, age_s: float | None = 0.0,
                     rate_hz: float = 50.0) -> None:
        """Publish ``v`` (m/s) at ``rate_hz`` for ``seconds``, stamped ``age_s`` ago (None: zero stamp)."""
        twist_type = self._types[0]
        end, period = time.monotonic() + seconds, 1.0 / rate_hz
        while time.monotonic() < end:
            msg = twist_type()
            ns = self._stamp_ns(age_s)
            msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 10**9, ns % 10**9
            msg.header.frame_id = "world"
            msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = v
            msg.twist.angular.z = 0.5  # ignored: orientation held
            self.twist_pub.publish(msg)
            self.probe.spin_for(period)

    def stream_target(self, goal: np.ndarray, seconds: float, age_s: float = 0.0,
                      until: Any = None) -> float:
        """Publish pose target ``goal`` at 10 Hz for ``seconds`` (or until ``until()``); the time taken."""
        pose_type = self._types[1]
        t0 = time.monotonic()
        while time.monotonic() < t0 + seconds and not (until and until()):
            msg = pose_type()
            ns = self._stamp_ns(age_s)
            msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 10**9, ns % 10**9
            msg.header.frame_id = "world"
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in goal)
            msg.pose.orientation.w = 1.0
            self.pose_pub.publish(msg)
            self.probe.spin_until(lambda: bool(until and until()), 0.1, allow_timeout=True)
        return time.monotonic() - t0

    def gripper(self, value: float) -> None:
        """Send a gripper command a few times (reliable, but the subscriber may be just matching)."""
        for _ in range(3):
            self.gripper_pub.publish(self._types[2](data=[value]))
            self.probe.spin_for(0.05)

    def set_paused(self, paused: bool) -> None:
        """Servo's pause_servo."""
        assert self.probe.call(self.pause, self._types[3].Request(data=paused)).success

    def settle(self, seconds: float = 0.4) -> np.ndarray:
        """Let the hand come to rest (no commands) and return where it is."""
        self.probe.spin_for(seconds)
        return self.ee

    def counter(self, name: str, above: int, what: str) -> None:
        """Wait until the node's status.json counter ``name`` exceeds ``above``."""
        self.probe.spin_until(lambda: self.probe.counters("fake_arm").get(name, 0) > above, 10.0, what)


def _config(arm_config_file: Any, name: str, **changes: Any) -> tuple[Path, dict[str, Any]]:
    import yaml

    path = arm_config_file(name, **changes)
    return path, yaml.safe_load(path.read_text())["arm"]


def test_servo_rules_motion_wall_gripper_state_and_camera(arm_config_file: Any, arm_node_probe: Any,
                                                          tmp_path: Path) -> None:
    from std_srvs.srv import Trigger

    from ros2_erl_vlm.nodes.fake_arm import HAND_QUAT_XYZW, STATUS_HALT_FOR_COLLISION, STATUS_OK

    cfg_path, cfg = _config(arm_config_file, "servo.yaml",
                            objects=[{"name": "handle", "topic": "fake_arm/objects/handle/pose"}])
    wall_x = 0.03
    args = ["-p", f"arm_config:={cfg_path}", "-p", "status_period_s:=0.2", "-p", "camera.image_size:=64",
            "-p", "block.enabled:=true", "-p", "block.axis:=x", "-p", "block.side:=max",
            "-p", f"block.limit:={wall_x}"]
    with arm_node_probe(MODULE, "fake_arm_servo_test", tmp_path / "run", args) as pr:
        arm = Arm(pr, cfg)

        # (7) State, objects, status and camera are published, stamped with the system clock.
        pr.spin_until(lambda: arm.poses and arm.joints and arm.status and arm.images and arm.objects,
                      STARTUP_S, "ee pose, joint states, status, images and the object pose")
        arrived, ee = arm.poses[-1]
        assert ee.header.frame_id == "world"
        assert abs(ee.header.stamp.sec + ee.header.stamp.nanosec * 1e-9 - arrived) < 1.0
        q = ee.pose.orientation
        assert np.allclose([q.x, q.y, q.z, q.w], HAND_QUAT_XYZW)
        start = arm.ee
        assert np.allclose(start, [0.0, 0.75, 0.15], atol=0.01), start  # drawer-open, paper layout
        js = arm.joints[-1]
        assert list(js.name) == ["gripper_opening"] and 0.9 <= js.position[0] <= 1.0  # open
        arrived, img = arm.images[-1]
        assert (img.width, img.height, img.encoding) == (64, 64, "rgb8")
        assert abs(img.header.stamp.sec + img.header.stamp.nanosec * 1e-9 - arrived) < 1.0
        handle = _pos(arm.objects[-1])
        assert np.isfinite(handle).all() and handle[2] < start[2]  # the drawer handle, below the hand
        assert set(arm.status) == {STATUS_OK}
        pr.spin_until(lambda: arm.twist_pub.get_subscription_count() > 0, 10, "the twist subscriber")

        # (1) Fresh twists before the command-type switch: ignored.
        p0 = arm.settle(0.2)
        arm.stream_twist((0.0, 0.0, 0.1), 0.6)
        assert np.linalg.norm(arm.settle(0.2) - p0) < STILL_M, arm.ee - p0
        arm.counter("twists_before_switch", 0, "twists counted as ignored before the switch")

        # (2) After the switch: motion in the commanded direction at about the commanded speed.
        assert pr.call(arm.switch, Trigger.Request()).success
        p0, n0 = arm.ee, len(arm.poses)
        arm.stream_twist((0.0, 0.0, 0.1), 1.2)
        track = [(t, _pos(m)) for t, m in arm.poses[n0:]]
        t_start = track[0][0]
        late = [(t, p) for t, p in track if t - t_start > 0.4]
        assert len(late) > 10, len(late)
        ts, zs = np.array([t for t, _ in late]), np.array([p[2] for _, p in late])
        speed = float(np.polyfit(ts, zs, 1)[0])
        assert 0.04 < speed < 0.16, speed  # 0.1 m/s commanded, loose on a loaded machine
        moved = arm.settle() - p0
        assert moved[2] > 0.05, moved
        assert abs(moved[0]) < 0.3 * moved[2] and abs(moved[1]) < 0.3 * moved[2], moved

        # (3) Stale stamps (older than Servo's 0.1 s timeout) and zero stamps: no motion.
        p0 = arm.ee
        arm.stream_twist((0.0, 0.0, 0.1), 0.5, age_s=0.3)
        assert np.linalg.norm(arm.settle(0.2) - p0) < STILL_M, arm.ee - p0
        arm.counter("twists_stale", 0, "twists that took effect stale counted")
        arm.stream_twist((0.0, 0.0, 0.1), 0.5, age_s=None)
        assert np.linalg.norm(arm.settle(0.2) - p0) < STILL_M, arm.ee - p0
        arm.counter("twists_zero_stamp", 0, "twists with zero stamps dropped")

        # (4) pause_servo(true): fresh twists move nothing; pause_servo(false) resumes.
        arm.set_paused(True)
        arm.stream_twist((0.0, 0.0, -0.1), 0.5)
        assert np.linalg.norm(arm.settle(0.2) - p0) < STILL_M, arm.ee - p0
        arm.set_paused(False)
        arm.stream_twist((0.0, 0.0, -0.1), 0.5)
        assert arm.settle()[2] < p0[2] - 0.02, arm.ee - p0

        # (5) Blocked mode: driven into the wall at x = 0.03 the hand stops there, status 5 (halt for
        # collision); the halt stops the whole motion, so the y component does not move it either.
        n0, s0 = len(arm.poses), len(arm.status)
        arm.stream_twist((0.1, 0.02, 0.0), 1.0)
        xs = [_pos(m)[0] for _, m in arm.poses[n0:]]
        assert max(xs) < wall_x + STILL_M, max(xs)
        assert abs(arm.ee[0] - wall_x) < 0.006, arm.ee
        assert STATUS_HALT_FOR_COLLISION in arm.status[s0:], set(arm.status[s0:])
        assert arm.status[-1] == STATUS_HALT_FOR_COLLISION
        at_wall = arm.settle()
        arm.stream_twist((0.1, 0.02, 0.0), 0.4)
        assert np.linalg.norm(arm.settle() - at_wall) < STILL_M, arm.ee - at_wall
        assert arm.status[-1] == STATUS_OK  # no command into the wall: no warning
        arm.stream_twist((-0.1, 0.0, 0.0), 0.4)  # away from the wall: free
        assert arm.settle()[0] < wall_x - 0.02, arm.ee

        # Gripper: data[0] > 0 closes (the measured opening drops), otherwise opens.
        arm.gripper(1.0)
        pr.spin_until(lambda: arm.joints[-1].position[0] < 0.7, 5, "the gripper closing")
        arm.gripper(-1.0)
        pr.spin_until(lambda: arm.joints[-1].position[0] > 0.9, 5, "the gripper opening")
        arm.gripper(float("nan"))
        arm.counter("gripper_bad", 0, "the NaN gripper command counted")

        # The scene reset teleports the hand to MetaWorld's start.
        resp = pr.call(arm.reset, Trigger.Request())
        assert resp.success and "teleported" in resp.message, resp.message
        pr.spin_until(lambda: np.linalg.norm(arm.ee - start) < 0.01, 5, "the hand back at the start")
    assert pr.proc.returncode == 0, pr.output[-3000:]


def test_pose_dialect_moves_toward_a_fresh_target_and_holds_on_a_stale_one(
        arm_config_file: Any, arm_node_probe: Any, tmp_path: Path) -> None:
    cfg_path, cfg = _config(arm_config_file, "pose.yaml", dialect="pose")
    args = ["-p", f"arm_config:={cfg_path}", "-p", "camera.rate_hz:=0.0", "-p", "max_speed_m_s:=0.1"]
    with arm_node_probe(MODULE, "fake_arm_pose_test", tmp_path / "run", args) as pr:
        arm = Arm(pr, cfg)
        pr.spin_until(lambda: bool(arm.poses), STARTUP_S, "the ee pose")
        pr.spin_until(lambda: arm.pose_pub.get_subscription_count() > 0, 10, "the target subscriber")
        p0 = arm.settle(0.2)
        goal = p0 + np.array([0.04, -0.03, 0.03])  # 5.8 cm away
        took = arm.stream_target(goal, 5.0, until=lambda: np.linalg.norm(arm.ee - goal) < 0.008)
        assert np.linalg.norm(arm.ee - goal) < 0.008, arm.ee - goal
        assert took > 0.058 / 0.1 * 0.6, took  # the speed cap (0.1 m/s): not there at once
        # A stale target (older than pose_timeout_s, 0.5 s) holds the hand.
        p1 = arm.settle(0.3)
        arm.stream_target(p1 + np.array([0.0, 0.0, 0.05]), 0.6, age_s=2.0)
        assert np.linalg.norm(arm.settle(0.2) - p1) < STILL_M, arm.ee - p1
    assert pr.proc.returncode == 0, pr.output[-3000:]


def test_sim_time_and_a_bad_arm_config_are_refused(arm_config_file: Any) -> None:
    cfg_path, _ = _config(arm_config_file, "servo.yaml")
    runs = {
        "sim time": ["-p", f"arm_config:={cfg_path}", "-p", "use_sim_time:=true"],
        "no file": ["-p", "arm_config:=/nonexistent/arm.yaml"],
        "unset": [],
    }
    procs = {k: subprocess.Popen([sys.executable, "-m", MODULE, "--ros-args", *v], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for k, v in runs.items()}
    out = {k: p.communicate(timeout=120) for k, p in procs.items()}
    for k, p in procs.items():
        assert p.returncode == 1, (k, out[k][1][-2000:])
    assert "error: parameter 'use_sim_time'" in out["sim time"][1] and "system clock" in out["sim time"][1]
    assert "cannot read arm config /nonexistent/arm.yaml" in out["no file"][1], out["no file"][1]
    assert "error: parameter 'arm_config': must be set" in out["unset"][1], out["unset"][1]
