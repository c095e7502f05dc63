"""arm_bridge against fake_arm over real DDS, each in its own process, with the policy played by a
probe node: homing and episodes, adversarial actions never take the measured hand out of the
workspace box (and do with the clamp switched off), a killed policy stops the arm within two
control periods, the e-stop latches until reset, a blocked arm keeps its target on the leash, the
pose dialect, and start-up refusals (sim time, missing topics, no workspace box).

The fake arm and the bridge run faster than a real arm (50 Hz control) to keep the suite short.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.ros.node_process import node_process

pytestmark = [pytest.mark.ros, pytest.mark.integration, pytest.mark.render]

BRIDGE = "ros2_erl_vlm.nodes.arm_bridge"
FAKE = "ros2_erl_vlm.nodes.fake_arm"
STARTUP_S = 150.0
RATE_HZ = 50.0
PERIOD = 1.0 / RATE_HZ
#: The measured hand may overshoot the box by the arm's own lag and tracking error (m).
BOX_TOLERANCE_M = 0.01
BOX_MIN = np.array([-0.25, 0.45, 0.07])
BOX_MAX = np.array([0.25, 0.85, 0.30])


def fast_config(arm_config_file: Callable[..., Path], name: str, **changes: Any) -> Path:
    """fake_sawyer.yaml at 50 Hz control, a quick home, generous start-up wait."""
    control = {"rate_hz": RATE_HZ, "max_speed_m_s": 0.25, "home_speed_m_s": 0.15,
               "episode_steps": 100_000, "command_timeout_periods": 2.0, **changes.pop("control", {})}
    topics = {"wait_s": STARTUP_S, **changes.pop("topics", {})}
    servo = {"stream_rate_hz": 100.0, **changes.pop("servo", {})}
    return arm_config_file(name, control=control, topics=topics, servo=servo, **changes)


class Policy:
    """The probe as the policy: answers each observation with ``act(obs)`` while ``alive``; records
    observations, streamed twists (with arrival times), the measured hand and the safety status."""

    def __init__(self, probe: Any, cfg: dict[str, Any]) -> None:
        from erl_vlm.msg import Action, Observation
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from std_msgs.msg import Bool, String

        from ros2_erl_vlm.nodes.fake_arm import COMMAND_QOS, POSE_STATE_QOS
        from ros2_erl_vlm.ros import qos

        self.probe, n = probe, probe.node
        self.alive = True
        self.act: Callable[[Any], list[float]] = lambda _o: [0.0, 0.0, 0.0, -1.0]
        self.obs: list[Any] = []
        self.twists: list[tuple[float, np.ndarray]] = []
        self.targets: list[tuple[float, np.ndarray]] = []
        self.ee: list[tuple[float, np.ndarray]] = []
        self.status: list[dict[str, Any]] = []
        self.actions_sent: list[float] = []
        self._Action = Action
        self.pub = n.create_publisher(Action, qos.ACTION, qos.ACTION_QOS)
        self.estop_pub = n.create_publisher(Bool, qos.ESTOP, qos.SAFETY_INPUT_QOS)
        n.create_subscription(Observation, qos.OBSERVATION, self.on_obs, qos.OBSERVATION_QOS)
        n.create_subscription(String, qos.SAFETY_STATUS, lambda m: self.status.append(json.loads(m.data)),
                              qos.SAFETY_STATUS_QOS)
        from visualization_msgs.msg import MarkerArray

        self.markers: list[Any] = []
        n.create_subscription(MarkerArray, qos.SAFETY_MARKERS, self.markers.append, qos.SAFETY_STATUS_QOS)
        t = cfg["topics"]
        n.create_subscription(TwistStamped, t["twist"], self.on_twist, COMMAND_QOS)
        n.create_subscription(PoseStamped, t["pose_target"], self.on_target, COMMAND_QOS)
        n.create_subscription(PoseStamped, t["ee_pose"], self.on_ee, POSE_STATE_QOS)

    def on_obs(self, msg: Any) -> None:
        self.obs.append(msg)
        if self.alive and not msg.truncated:
            a = self._Action(episode=msg.episode, step=msg.step,
                             action=np.asarray(self.act(msg), np.float32))
            self.pub.publish(a)
            self.actions_sent.append(time.monotonic())

    def on_twist(self, msg: Any) -> None:
        v = msg.twist.linear
        self.twists.append((time.monotonic(), np.array([v.x, v.y, v.z])))

    def on_target(self, msg: Any) -> None:
        p = msg.pose.position
        self.targets.append((time.monotonic(), np.array([p.x, p.y, p.z])))

    def on_ee(self, msg: Any) -> None:
        p = msg.pose.position
        self.ee.append((time.monotonic(), np.array([p.x, p.y, p.z])))

    def steps(self) -> int:
        """Observations of running episodes seen so far."""
        return sum(1 for o in self.obs if o.step > 0 and not o.truncated)

    def run_until(self, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        self.probe.spin_until(cond, timeout_s, what)


def start(arm_node_probe: Any, arm_config_file: Any, tmp_path: Path, name: str,
          bridge_args: tuple[str, ...] = (), fake_args: tuple[str, ...] = (),
          setup: Callable[[Policy], None] | None = None, **changes: Any) -> Any:
    """Context: fake_arm and arm_bridge processes and the policy probe, episode 0 running."""
    import yaml

    cfg_path = fast_config(arm_config_file, f"{name}.yaml", **changes)
    cfg = yaml.safe_load(cfg_path.read_text())["arm"]

    @contextlib.contextmanager
    def ctx() -> Iterator[tuple[Policy, Any]]:
        with node_process(FAKE, name, ["-p", f"arm_config:={cfg_path}", "-p", "camera.rate_hz:=0",
                                       "-p", "rate_hz:=100.0", *fake_args], tmp_path), \
                arm_node_probe(BRIDGE, name, tmp_path, ["-p", f"arm_config:={cfg_path}",
                                                        "-p", "status_period_s:=0.2",
                                                        *bridge_args]) as probe:
            policy = Policy(probe, cfg)
            if setup is not None:
                setup(policy)
            policy.run_until(lambda: policy.steps() > 5, STARTUP_S, "the first episode's steps")
            yield policy, probe

    return ctx()


def inside(p: np.ndarray, tol: float = BOX_TOLERANCE_M) -> bool:
    return bool(np.all(p >= BOX_MIN - tol) and np.all(p <= BOX_MAX + tol))


def adversarial(rng: np.random.Generator) -> Callable[[Any], list[float]]:
    """Random, huge, NaN and face-pushing actions (the face changes every 100 steps)."""
    count = [0]

    def act(_obs: Any) -> list[float]:
        count[0] += 1
        k = count[0]
        kind = k % 4
        if kind == 0:
            return list(rng.uniform(-1, 1, 4))
        if kind == 1:
            return list(rng.uniform(-1e6, 1e6, 4))
        if kind == 2 and k % 20 == 2:
            return [float("nan"), 0.0, 0.0, 0.0]
        face = np.zeros(3)
        face[(k // 100) % 3] = 1.0 if (k // 300) % 2 == 0 else -1.0
        return [*face, 1.0]

    return act


def commanded_motion(policy: Policy, after: float, dialect: str) -> list[float]:
    """Times after ``after`` at which the bridge commanded motion: a non-zero twist (servo), or a
    pose target more than 3 mm from the measured hand (pose; a hold sends the measured pose)."""
    if dialect == "servo":
        return [t for t, v in policy.twists if t > after and np.linalg.norm(v) > 1e-9]
    out = []
    for t, target in policy.targets:
        if t <= after:
            continue
        before = [p for te, p in policy.ee if te <= t]
        if before and np.linalg.norm(target - before[-1]) > 0.003:
            out.append(t)
    return out


def commands(policy: Policy, dialect: str) -> list[tuple[float, np.ndarray]]:
    """Every command the bridge sent (twists or pose targets) with its arrival time."""
    return policy.twists if dialect == "servo" else policy.targets


@pytest.mark.parametrize("dialect", ["servo", "pose"])
def test_box_watchdog_and_estop_over_dds(dialect: str, arm_node_probe: Any, arm_config_file: Any,
                                         tmp_path: Path) -> None:
    from std_msgs.msg import Bool
    from std_srvs.srv import Trigger

    with start(arm_node_probe, arm_config_file, tmp_path, f"{dialect}_box",
               dialect=dialect) as (policy, probe):
        first = next(o for o in policy.obs if o.step == 0)
        assert not first.has_truth and len(first.state) == 4
        assert np.allclose(np.asarray(first.state[:3]), [0.0, 0.6, 0.2], atol=0.015)  # homed
        # -- 1,000 adversarial actions: the measured hand never leaves the box ------------------
        policy.act = adversarial(np.random.default_rng(0))
        n0 = len(policy.actions_sent)
        policy.run_until(lambda: len(policy.actions_sent) - n0 >= 1000, 300, "1000 adversarial actions")
        measured = np.array([p for _t, p in policy.ee])
        worst = max(float(np.max(np.maximum(BOX_MIN - p, p - BOX_MAX))) for p in measured)
        if dialect == "pose":  # what the bridge commands is inside the box, exactly
            assert all(inside(t, tol=1e-6) for _t, t in policy.targets)
        # The measured hand: within the fake arm's tracking of a face-pushing policy (its weld
        # follows a mocap that reverses at full speed at the face; pose targets overshoot most:
        # up to 11 mm seen once in a full suite run on an idle machine).
        tol = 0.015 if dialect == "pose" else BOX_TOLERANCE_M
        assert all(inside(p, tol) for p in measured), f"left the box by {worst:.4f} m"
        applied = np.array([o.action_taken for o in policy.obs if len(o.action_taken)])
        assert np.all(np.isfinite(applied)) and np.all(np.abs(applied) <= 1.0)
        assert probe.counters("arm_bridge").get("bad_actions", 0) > 0  # the NaN ones
        assert probe.counters("arm_bridge").get("limited_box", 0) > 0
        # -- the policy dies: no commanded motion within 2 control periods, then silence --------
        policy.act = lambda _o: [1.0, 0.0, 0.0, 0.0]
        policy.run_until(lambda: len(policy.actions_sent) > n0 + 1010, 30, "a few more steps")
        policy.alive = False
        t_dead = policy.actions_sent[-1]
        policy.probe.spin_for(1.0)
        moving = commanded_motion(policy, t_dead, dialect)
        assert not moving or max(moving) - t_dead <= 2 * PERIOD + 0.05, max(moving) - t_dead
        late = [t for t, _v in commands(policy, dialect) if t > t_dead + 0.5]
        assert not late, "commands still sent half a second after the stop"
        stopped = [o for o in policy.obs if o.truncated and o.truncation_reason == "command_timeout"]
        assert stopped, [o.truncation_reason for o in policy.obs if o.truncated]
        # -- the policy comes back: the new episode (started where the arm stood) runs ----------
        policy.alive = True
        ep = stopped[-1].episode
        policy.act = lambda _o: [0.0, 1.0, 0.0, 0.0]
        policy.run_until(lambda: any(o.episode > ep and o.step > 3 for o in policy.obs), 60, "a new episode")
        # -- e-stop: stop within one period, no motion while latched, back after reset ----------
        policy.estop_pub.publish(Bool(data=True))
        t_stop = time.monotonic()
        policy.probe.spin_for(0.5)
        moving = commanded_motion(policy, t_stop, dialect)
        assert not moving or max(moving) - t_stop <= PERIOD + 0.05, max(moving) - t_stop
        policy.estop_pub.publish(Bool(data=False))  # releasing the button does not restart
        at = policy.ee[-1][1]
        policy.probe.spin_for(1.5)
        # no commanded motion while latched; the hand itself settles by its controller's tracking
        # error (a pose controller pulls it onto the hold target: a few mm)
        settle = 0.005 if dialect == "servo" else 0.01
        assert not commanded_motion(policy, t_stop + PERIOD + 0.05, dialect)
        assert np.linalg.norm(policy.ee[-1][1] - at) < settle, (at, policy.ee[-1][1], policy.status[-1])
        assert policy.status[-1]["estop_latched"] is True
        assert any(o.truncation_reason == "estop" for o in policy.obs), [(o.episode, o.step, o.truncation_reason) for o in policy.obs if o.truncated][-5:]
        n_obs = len(policy.obs)
        reply = probe.call(probe.node.create_client(Trigger, "reset_estop"), Trigger.Request())
        assert reply.success and "released" in reply.message
        policy.run_until(lambda: any(o.step > 3 for o in policy.obs[n_obs:]), 60, "steps after the reset")


def test_without_the_clamp_the_same_push_leaves_the_box(arm_node_probe: Any, arm_config_file: Any,
                                                       tmp_path: Path) -> None:
    """The control for the box test: the fake arm's own reach is wider, so the clamp is what holds."""
    with start(arm_node_probe, arm_config_file, tmp_path, "servo_noclamp",
               bridge_args=("-p", "clamp_workspace:=false")) as (policy, _probe):
        policy.act = lambda _o: [1.0, 0.0, 0.0, 0.0]
        policy.run_until(lambda: policy.ee[-1][1][0] > BOX_MAX[0] + 2 * BOX_TOLERANCE_M, 60,
                         "the hand past the box's +x face")


def test_blocked_arm_keeps_its_target_on_the_leash(arm_node_probe: Any, arm_config_file: Any,
                                                   tmp_path: Path) -> None:
    leash = 0.03
    with start(arm_node_probe, arm_config_file, tmp_path, "servo_blocked",
               fake_args=("-p", "block.enabled:=true", "-p", "block.axis:=x", "-p", "block.side:=max",
                          "-p", "block.limit:=0.05")) as (policy, _probe):
        policy.act = lambda _o: [1.0, 0.0, 0.0, 0.0]
        n = len(policy.status)
        policy.probe.spin_for(3.0)
        pairs = [(np.array(s["target"]), np.array(s["measured"])) for s in policy.status[n:]
                 if s["target"] is not None and s["phase"] == "episode"]
        assert pairs
        assert max(float(np.max(np.abs(t - m))) for t, m in pairs) <= leash + 1e-6
        assert policy.ee[-1][1][0] <= 0.05 + 0.005  # the wall held the hand


def test_pose_dialect_moves_and_stays_in_the_box(arm_node_probe: Any, arm_config_file: Any,
                                                 tmp_path: Path) -> None:
    from std_msgs.msg import Bool

    from ros2_erl_vlm.ros import qos

    running: list[Any] = []

    def program_running(policy: Policy) -> None:  # latched, as UR's driver publishes it
        policy.probe.spin_for(3.0)  # the bridge holds (fail closed) until the first message
        assert not any(o.step > 0 for o in policy.obs)
        running.append(policy.probe.node.create_publisher(Bool, "robot/program_running",
                                                          qos.LATCHED_STATE_QOS))
        running[0].publish(Bool(data=True))

    with start(arm_node_probe, arm_config_file, tmp_path, "pose_box", dialect="pose", setup=program_running,
               topics={"program_running": "robot/program_running"}) as (policy, _probe):
        assert not policy.twists
        z0 = policy.ee[-1][1][2]
        policy.act = lambda _o: [0.0, 0.0, -1.0, 0.0]
        policy.probe.spin_for(3.0)
        assert policy.ee[-1][1][2] < z0 - 0.05  # moved down ...
        assert all(t[2] >= BOX_MIN[2] - 1e-9 for _t, t in policy.targets)  # ... targets clipped
        assert all(inside(p) for _t, p in policy.ee)
        assert policy.markers and {m.ns for m in policy.markers[-1].markers} >= {"workspace_box", "target"}
        # the robot's program stops (UR's robot_program_running false): the bridge stops too
        running[0].publish(Bool(data=False))
        policy.run_until(lambda: any(o.truncation_reason == "external" for o in policy.obs), 10,
                         "the stop on program_running false")
        n = len(policy.obs)
        running[0].publish(Bool(data=True))
        policy.run_until(lambda: any(o.step > 3 for o in policy.obs[n:]), 60, "steps after it runs again")


def _exit(args: list[str], tmp_path: Path, timeout: float = 120) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", BRIDGE, "--ros-args", "-r", "__ns:=/refuse",
                           "-p", f"run_dir:={tmp_path}", *args], capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_start_up_refusals(arm_config_file: Any, tmp_path: Path) -> None:
    good = fast_config(arm_config_file, "good.yaml", topics={"wait_s": 2.0})
    code, out = _exit(["-p", f"arm_config:={good}", "-p", "use_sim_time:=true"], tmp_path)
    assert code == 1 and "refuses use_sim_time" in out
    code, out = _exit(["-p", f"arm_config:={good}"], tmp_path)  # no arm publishes
    assert code == 1 and "no message after 2 s on /refuse/fake_arm/ee_pose" in out, out
    bad = tmp_path / "nobox.yaml"
    bad.write_text("arm: {dialect: servo}\n")
    code, out = _exit(["-p", f"arm_config:={bad}"], tmp_path)
    assert code == 1 and "workspace is required" in out
    code, out = _exit([], tmp_path)
    assert code == 1 and "needs an arm config" in out


def test_ee_pose_from_tf_moves_and_stops_when_tf_freezes(arm_node_probe: Any, arm_config_file: Any,
                                                         tmp_path: Path) -> None:
    """ee_pose_source tf: the bridge composes world -> fake_wrist (dynamic) -> hand (static) from the
    fake arm's /tf and /tf_static, moves, and stops with stale_state when tf stops advancing (the
    fake keeps re-publishing its last transform, old stamp), as for a silent PoseStamped topic."""
    pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not on PyPI: source a ROS 2 install")
    from std_srvs.srv import SetBool

    state_timeout = 0.5
    with start(arm_node_probe, arm_config_file, tmp_path, "servo_tf", ee_pose_source="tf",
               fake_args=("-p", "status_period_s:=0.2"),
               control={"state_timeout_s": state_timeout}) as (policy, probe):
        first = next(o for o in policy.obs if o.step == 0)
        assert np.allclose(np.asarray(first.state[:3]), [0.0, 0.6, 0.2], atol=0.015)  # homed on tf
        # the state composed from tf is the hand the fake's PoseStamped reports (the static link
        # alone is 0.1 m: a wrong composition would show)
        last = policy.obs[-1]
        assert np.linalg.norm(np.asarray(last.state[:3]) - policy.ee[-1][1]) < 0.005
        # a commanded motion reaches the measured pose
        z0 = policy.ee[-1][1][2]
        policy.act = lambda _o: [0.0, 0.0, -1.0, 0.0]
        policy.probe.spin_for(2.0)
        assert policy.ee[-1][1][2] < z0 - 0.05
        assert abs(policy.obs[-1].state[2] - policy.ee[-1][1][2]) < 0.01
        assert probe.counters("fake_arm").get("tf_sent", 0) > 0
        # tf freezes: the stale-state stop within the state timeout (+ two periods)
        freeze = probe.node.create_client(SetBool, "fake_arm/freeze_tf")
        assert probe.call(freeze, SetBool.Request(data=True)).success
        t_frozen = time.monotonic()
        n = len(policy.obs)
        policy.run_until(lambda: any(o.truncation_reason == "stale_state" for o in policy.obs[n:]),
                         5.0, "the stale_state stop")
        latency = time.monotonic() - t_frozen
        assert latency <= state_timeout + 2 * PERIOD + 0.25, latency
        t_stop = time.monotonic()
        policy.probe.spin_for(1.0)
        assert not commanded_motion(policy, t_stop + 2 * PERIOD + 0.05, "servo")
        assert "no fresh measured state" in policy.status[-1]["stop"], policy.status[-1]
        policy.probe.spin_until(lambda: probe.counters("fake_arm").get("tf_frozen_ticks", 0) > 0, 5.0,
                                "the fake's count of frozen tf ticks")  # tf kept arriving, old stamp
        # tf live again: the bridge homes and runs the next episode
        assert probe.call(freeze, SetBool.Request(data=False)).success
        n = len(policy.obs)
        policy.run_until(lambda: any(o.step > 3 for o in policy.obs[n:]), 60, "steps after tf is back")


def test_tf_source_start_up_refusal(arm_config_file: Any, tmp_path: Path) -> None:
    """No tf at all: exit 1 naming the chain (or, without tf2_msgs, saying where to get it)."""
    cfg = fast_config(arm_config_file, "tf.yaml", ee_pose_source="tf", topics={"wait_s": 2.0})
    code, out = _exit(["-p", f"arm_config:={cfg}"], tmp_path)
    try:
        import tf2_msgs.msg  # noqa: F401
    except ImportError:
        assert code == 1 and "needs the tf2_msgs package" in out, out
    else:
        assert code == 1 and "no ee pose from tf world -> hand after 2 s on /tf and /tf_static" in out, out
