"""The teleop node over real DDS, each node in its own process: teleop drives sim_bridge (reach-v3,
lock-step, camera off) from Joy messages a probe node publishes (the shipped config/teleop/xbox.yaml
layout). With the deadman held the hand moves the way the stick points (the observations'
end-effector position); released, with the stick still pushed, it holds still; the intervention
flag follows the deadman. The same node drives arm_bridge against fake_arm, whose workspace clamp
stops an operator pushing past the box, the deadman doubling as the arm's enable heartbeat.
Start-up refusals: no input device publishing (exit 1 naming the topic) and a bad config file
(exit 1 naming the file and the field)."""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.integration]

TELEOP = "ros2_erl_vlm.nodes.teleop"
SIM = "ros2_erl_vlm.nodes.sim_bridge"
BRIDGE = "ros2_erl_vlm.nodes.arm_bridge"
FAKE = "ros2_erl_vlm.nodes.fake_arm"
STARTUP_S = 180.0
#: config/teleop/xbox.yaml: LB is the deadman, the left stick's x axis (left: +1) drives x, the
#: right stick's vertical axis (forward: +1) drives z.
DEADMAN, AXIS_X, AXIS_Z = 9, 0, 3
N_AXES, N_BUTTONS = 6, 15
#: MetaWorld moves the hand's target 1 cm per step at a full action.
STEP_M = 0.01


@contextlib.contextmanager
def processes(namespace: str, run_dir: Path, nodes: dict[str, list[str]]) -> Iterator[dict[str, Any]]:
    """``python -m <module> --ros-args -r __ns:=/<namespace> -p run_dir:=<run_dir> <args>`` for each
    node; SIGINT-ed (then killed) at exit. Yields ``{module: Popen}``."""
    procs = {m: subprocess.Popen([sys.executable, "-m", m, "--ros-args", "-r", f"__ns:=/{namespace}",
                                  "-p", f"run_dir:={run_dir}", *args],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for m, args in nodes.items()}
    try:
        yield procs
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()


class Operator:
    """A probe node in the namespace playing the gamepad (Joy at ``rate_hz``, like
    game_controller_node's autorepeat) and recording observations and intervention flags."""

    def __init__(self, namespace: str, procs: dict[str, Any], rate_hz: float = 50.0) -> None:
        import rclpy
        from erl_vlm.msg import Observation
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Joy
        from std_msgs.msg import Bool

        from ros2_erl_vlm.ros import qos

        self.procs = procs
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("operator", namespace=f"/{namespace}", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.obs: list[Any] = []
        self.flags: list[tuple[float, bool]] = []
        self.node.create_subscription(Observation, qos.OBSERVATION, self.obs.append, qos.OBSERVATION_QOS)
        self.node.create_subscription(Bool, "intervention", lambda m: self.flags.append(
            (time.monotonic(), bool(m.data))), 10)
        self._Joy = Joy
        self.pub = self.node.create_publisher(Joy, "joy", 10)  # as joy's nodes: reliable, depth 10
        self.period = 1.0 / rate_hz
        self.axes = [0.0] * N_AXES
        self.buttons = [0] * N_BUTTONS
        self._next = 0.0

    def set(self, deadman: bool, **axes: float) -> None:
        """Hold (or release) the deadman, set stick axes (``x=``, ``z=``: raw Joy values)."""
        self.buttons = [0] * N_BUTTONS
        self.buttons[DEADMAN] = int(deadman)
        self.axes = [0.0] * N_AXES
        self.axes[AXIS_X] = axes.get("x", 0.0)
        self.axes[AXIS_Z] = axes.get("z", 0.0)

    def spin_until(self, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Publish the pad's state at its rate and spin until ``cond()``; fail if a node dies."""
        deadline = time.monotonic() + timeout_s
        while not cond():
            for m, p in self.procs.items():
                if p.poll() is not None:
                    pytest.fail(f"{m} exited ({p.returncode}) while waiting for {what}:\n"
                                f"{p.communicate()[0][-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
            now = time.monotonic()
            if now >= self._next:
                msg = self._Joy(axes=self.axes, buttons=self.buttons)
                msg.header.stamp = self.node.get_clock().now().to_msg()
                self.pub.publish(msg)
                self._next = now + self.period
            self.executor.spin_once(timeout_sec=0.002)

    def steps_with(self, since: int, pred: Callable[[np.ndarray], bool]) -> int:
        """Observations after index ``since`` whose applied action satisfies ``pred``."""
        return sum(1 for o in self.obs[since:] if len(o.action_taken) and pred(np.asarray(o.action_taken)))

    def close(self) -> None:
        """Stop the probe."""
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def moves(obs: list[Any], start: int, end: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(applied action, end-effector displacement over that step) for consecutive observations of
    one episode among ``obs[start:end]`` (state[0:3] is MetaWorld's hand position)."""
    out = []
    seg = obs[start:end]
    for prev, cur in itertools.pairwise(seg):
        if cur.episode == prev.episode and cur.step == prev.step + 1:
            out.append((np.asarray(cur.action_taken), np.asarray(cur.state[:3]) - np.asarray(prev.state[:3])))
    return out


def test_deadman_drives_the_hand_and_release_holds_it(tmp_path: Path) -> None:
    ns = "teleop_drive"
    nodes = {
        SIM: ["-p", 'task:="reach-v3"', "-p", "camera.enabled:=false", "-p", "mode:=lockstep",
              "-p", "publish_clock:=false", "-p", "start.observation_subscribers:=2",
              "-p", "action_timeout_s:=1.0"],
        TELEOP: ["-p", f"input_wait_s:={STARTUP_S}", "-p", "rate_hz:=100.0", "-p", "status_period_s:=0.5"],
    }
    with processes(ns, tmp_path, nodes) as procs:
        op = Operator(ns, procs)
        try:
            # Released, sticks centred: teleop answers with the hold action, the episode runs.
            op.set(deadman=False)
            op.spin_until(lambda: op.steps_with(0, lambda a: True) >= 20, STARTUP_S,
                          "teleop answering the bridge's observations")
            assert all(np.array_equal(o.action_taken, [0, 0, 0, -1]) for o in op.obs if len(o.action_taken))

            # Deadman held, left stick right: +x at full speed.
            a_start = len(op.obs)
            op.set(deadman=True, x=-1.0)
            # 25 steps take the hand to x ~ 0.25, well inside the arm's reach (stretched further out,
            # MetaWorld's hand keeps creeping towards its target for a while after it stopped).
            op.spin_until(lambda: op.steps_with(a_start, lambda a: a[0] == 1.0) >= 25, 60,
                          "25 steps driven along +x")
            # Released with the stick still pushed: hold.
            b_start = len(op.obs)
            op.set(deadman=False, x=-1.0)
            op.spin_until(lambda: op.steps_with(b_start, lambda a: not a[:3].any()) >= 60, 60,
                          "60 held steps")
            # Held again, right stick back: -z.
            c_start = len(op.obs)
            op.set(deadman=True, z=-1.0)
            op.spin_until(lambda: op.steps_with(c_start, lambda a: a[2] == -1.0) >= 20, 60,
                          "20 steps driven along -z")
            c_end = len(op.obs)
            op.set(deadman=False)
            op.spin_until(lambda: len(op.flags) > 0 and not op.flags[-1][1], 10, "the flag cleared")
        finally:
            op.close()
        teleop_out = procs[TELEOP]
    assert teleop_out.returncode == 0

    # Driven: the applied action is exactly the stick's; the hand goes +x, hardly along y or z.
    drive = [(a, d) for a, d in moves(op.obs, a_start, b_start) if a[0] == 1.0]
    assert len(drive) >= 20
    np.testing.assert_array_equal(drive[-1][0], [1.0, 0.0, 0.0, -1.0])
    dx = np.sum([d for _, d in drive], axis=0)
    assert dx[0] > 0.5 * STEP_M * len(drive), dx  # the hand follows its target with some lag
    assert abs(dx[1]) < 0.2 * dx[0] and abs(dx[2]) < 0.2 * dx[0], dx

    # Released: every action is the hold action; once the hand caught up with its target (15
    # steps) it stays within 2 mm, never moving more than 0.5 mm a step (a full action: 10 mm).
    held = moves(op.obs, b_start, c_start)
    assert all(np.array_equal(a, [0.0, 0.0, 0.0, -1.0]) for a, _ in held[3:])
    settled = [d for _, d in held[15:]]
    assert len(settled) >= 40
    drift = np.abs(np.sum(settled, axis=0))
    assert np.all(drift < 0.002), drift
    assert np.abs(settled).max() < 0.0005, np.abs(settled).max()

    # Held again: -z.
    down = [(a, d) for a, d in moves(op.obs, c_start, c_end) if a[2] == -1.0]
    dz = np.sum([d for _, d in down], axis=0)
    assert dz[2] < -0.3 * STEP_M * len(down), dz
    assert abs(dz[0]) < 0.3 * abs(dz[2]), dz

    # The intervention flag: true while driving, false while held, in that order.
    values = [v for _, v in op.flags]
    assert values.count(True) >= 45 and values.count(False) >= 80
    runs = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    assert runs == [False, True, False, True, False], runs


def fake_arm_config(tmp_path: Path, **arm: Any) -> tuple[Path, dict[str, Any]]:
    """config/arms/fake_sawyer.yaml with ``arm`` fields replaced, a long start-up wait and
    load-tolerant stop timeouts: these tests are about the operator, not the stops (which
    test/integration/arm covers); on a loaded CI machine a node starved for 0.2 s would otherwise
    stop the arm (command timeout, stale state) in the middle of a test."""
    import yaml

    from ros2_erl_vlm.paths import config_dir

    data = yaml.safe_load((config_dir() / "arms" / "fake_sawyer.yaml").read_text())
    data["arm"]["topics"]["wait_s"] = STARTUP_S
    data["arm"]["control"].update({"command_timeout_periods": 10.0, "state_timeout_s": 2.0})
    data["arm"].update(arm)
    cfg = tmp_path / "fake_sawyer.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg, data


def test_teleop_drives_the_fake_arm_within_its_box_and_the_deadman_is_its_enable(tmp_path: Path) -> None:
    """The same node on the real-arm side (config/arms/fake_sawyer.yaml: 10 Hz, 0.1 m/s, workspace
    x <= 0.25 m), the deadman also the arm's enable heartbeat (``enable_topic``):

    - released, nothing moves (not even the move home) until the operator holds the deadman;
    - held and pushing +x past the box, the bridge's clamp stops the hand at its face (teleop
      publishes actions only; the arm's safety stays in charge);
    - held with the stick centred, the hand holds and the episode goes on (a hold is an action,
      not a command timeout);
    - released, the arm stops at once and the episode ends with ``deadman`` (the false heartbeat,
      0.1 s at 10 Hz, not its timeout)."""
    import json

    from std_msgs.msg import String

    from ros2_erl_vlm.ros import qos

    cfg, data = fake_arm_config(tmp_path, enable={"required": True, "topic": "enable", "timeout_s": 1.0})
    box_max_x = data["arm"]["workspace"]["max"][0]
    ns = "teleop_arm"
    nodes = {
        FAKE: ["-p", f"arm_config:={cfg}", "-p", "camera.rate_hz:=0.0"],
        BRIDGE: ["-p", f"arm_config:={cfg}"],
        TELEOP: ["-p", f"input_wait_s:={STARTUP_S}", "-p", "enable_topic:=enable"],
    }
    with processes(ns, tmp_path, nodes) as procs:
        op = Operator(ns, procs)
        status: list[dict[str, Any]] = []
        op.node.create_subscription(String, qos.SAFETY_STATUS, lambda m: status.append(json.loads(m.data)),
                                    qos.SAFETY_STATUS_QOS)
        try:
            op.set(deadman=False)
            op.spin_until(lambda: any("enable heartbeat" in st["stop"] for st in status), 2 * STARTUP_S,
                          "the bridge waiting for the enable heartbeat")
            waited = len(status)
            op.spin_until(lambda: len(status) >= waited + 20, 30, "2 s more of the bridge's status")
            assert op.obs == [] and all(st["phase"] != "episode" for st in status)
            op.set(deadman=True, x=-1.0)  # 0.1 m/s from x = 0: the box's face (0.25 m) after 2.5 s
            op.spin_until(lambda: sum(1 for o in op.obs if o.step > 0) >= 35, 90, "35 steps pushing +x")
            a_start = next(i for i, o in enumerate(op.obs) if o.step == 0)
            b_start = len(op.obs)
            op.set(deadman=True)
            op.spin_until(lambda: len(op.obs) - b_start >= 15, 30, "15 held steps")
            released_at = len(op.obs)
            op.set(deadman=False)
            op.spin_until(lambda: any(o.truncated for o in op.obs[released_at:]), 10,
                          "the episode ended by the release")
        finally:
            op.close()
    assert all(p.returncode == 0 for p in procs.values()), {m: p.returncode for m, p in procs.items()}
    x = np.array([o.state[0] for o in op.obs])
    assert x[b_start - 1] - x[a_start] > 0.15, (x[a_start], x[b_start - 1])
    assert x.max() < box_max_x + 0.01, x.max()  # the bridge's clamp, not the operator, stops it
    reasons = [(o.step, o.truncation_reason) for o in op.obs[a_start:released_at] if o.truncation_reason]
    assert reasons == [], reasons
    held = np.array([o.state[:3] for o in op.obs[b_start + 3:released_at]])
    assert np.abs(held - held[0]).max() < 0.003, held
    assert all(np.array_equal(o.action_taken[:3], [0.0, 0.0, 0.0]) for o in op.obs[b_start + 2:released_at])
    ended = next(o for o in op.obs[released_at:] if o.truncated)
    assert ended.truncation_reason == "deadman"
    assert ended.step - op.obs[released_at - 1].step <= 5, (ended.step, op.obs[released_at - 1].step)


@pytest.mark.parametrize("kind, silent", [("joy", ["joy"]), ("spacemouse", ["spacenav/twist", "spacenav/joy"])])
def test_no_input_device_exits_1_naming_the_topic(tmp_path: Path, kind: str, silent: list[str]) -> None:
    ns = f"teleop_silent_{kind}"
    proc = subprocess.run([sys.executable, "-m", TELEOP, "--ros-args", "-r", f"__ns:=/{ns}",
                           "-p", f"input:={kind}", "-p", "input_wait_s:=2.0"],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    line = next(ln for ln in out.splitlines() if ln.startswith("error: "))
    for topic in silent:
        assert f"/{ns}/{topic}" in line, line
    assert "no input message" in line and "after 2 s" in line
    deadman = 9 if kind == "joy" else 0
    assert f"HOLD button {deadman}" in out  # said loudly before waiting


def test_bad_config_exits_1_naming_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "pad.yaml"
    bad.write_text("teleop:\n  input: joy\n  deadzone: 1.5\n")
    proc = subprocess.run([sys.executable, "-m", TELEOP, "--ros-args", "-p", f"config:={bad}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: parameter 'config': {bad}: teleop.deadzone must be in [0, 0.95], got 1.5" in proc.stderr
