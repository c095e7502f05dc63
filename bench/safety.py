"""Safety benchmark of the real-arm bridge: ``arm_bridge`` against ``fake_arm`` over real DDS.

Both nodes run as their own processes (as in ``test/integration/arm/test_arm_bridge.py``); this
process is the policy (an rclpy probe node answering each observation) and the observer (the
streamed twists, the measured hand, the observations, ``safety_status``). Three measurements:

1. **Stop after the last action** (``--trials``): the policy runs a full-speed action along x
   (alternating direction per trial so the hand stays inside), then stops answering. Reported:
   the time from the last action published to the last non-zero twist received (0 when none came
   after it), the same from the twist's header stamp (what the bridge sent, without this
   process's receive delay), and to the truncated observation (``command_timeout``). Each trial
   starts from a fresh running episode: after the stop the bridge starts the next episode where
   the arm stands; the policy answers it and a few still steps run first.
2. **E-stop** (``--trials``): with the policy moving, ``estop`` True is published (at a random
   point of a control period); reported: the time to the last non-zero twist received (and by
   stamp, and to the ``estop`` truncation). Then ``estop`` False: the hand must not move (< 3 mm
   over ``--hold-s``) and the latch must hold; then ``reset_estop``, the move home, the next
   episode's steps.
3. **Workspace box** (``--actions``): random, huge (1e6), NaN and face-pushing actions (as the
   test's ``adversarial()``); reported: the measured hand poses outside the box by more than 1 cm
   and by more than 0 mm, the worst excursion (mm), and the bridge's ``bad_actions`` and
   ``limited_box`` counters (status.json) over the phase.

The loop runs faster than a real arm to keep this tractable: control 50 Hz, twist stream 100 Hz,
fake arm 100 Hz (``--rate-hz 10`` for a real-arm-like control rate). A default run takes about
10 minutes at 50 Hz and about 40 at 10 Hz (start-up, 200 + 200 trials, 10,000 actions). Latencies
are given in ms and in control periods. They are only meaningful on an otherwise idle machine: the
1-min load average is recorded at start and end, with a warning above half the cores.

    ./erl run python bench/safety.py                      # 200 + 200 trials, 10,000 actions, 50 Hz
    ./erl run python bench/safety.py --rate-hz 10         # bench/results/safety/safety-10hz.json
    ./erl run python bench/safety.py --quick --out /tmp/safety_smoke.json   # a smoke run

Writes ``bench/results/safety/safety-<rate>hz.json`` (``--out``; ``--quick``: ``...-quick.json``):
every raw latency (ms) and each trial's record, the summaries (p50 / p99 / max), the settings and
the arm config, load averages, python / rclpy versions and the git commit. The box phase also
reports the gaps between the bridge's observations (one per control tick): a bridge starved of CPU
ticks late, and a tick more than two periods after the last action stops the arm for
``command_timeout`` although the policy answered in time (stops while acting).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "safety"
BRIDGE = "ros2_erl_vlm.nodes.arm_bridge"
FAKE = "ros2_erl_vlm.nodes.fake_arm"
#: Start-up of both nodes (MuJoCo, DDS discovery) may take this long (s).
STARTUP_S = 180.0
#: The measured hand may overshoot the box by the arm's own lag and tracking error (m).
BOX_TOLERANCE_M = 0.01
#: A twist is "non-zero" above this speed (m/s).
NONZERO_M_S = 1e-9
#: After ``estop`` False, the hand must move less than this (m) over ``--hold-s``.
ESTOP_DRIFT_M = 0.003
#: The fast loop's settings on top of config/arms/fake_sawyer.yaml (the test's fast config).
MAX_SPEED_M_S = 0.25
HOME_SPEED_M_S = 0.15
COMMAND_TIMEOUT_PERIODS = 2.0
STILL = [0.0, 0.0, 0.0, -1.0]


class TrialTimeoutError(RuntimeError):
    """A trial waited too long for something (recorded as a failed trial)."""


class NodeDiedError(RuntimeError):
    """fake_arm or arm_bridge exited during the run."""


@dataclass
class Obs:
    """One observation as received (``t``: this process's monotonic clock)."""

    t: float
    episode: int
    step: int
    truncated: bool
    reason: str
    applied: np.ndarray


@dataclass
class Settings:
    """What the run is set to (recorded in the results)."""

    trials: int
    actions: int
    rate_hz: float
    stream_hz: float
    fake_hz: float
    move_steps: int
    warmup_steps: int
    hold_s: float
    seed: int
    phases: tuple[str, ...]
    quick: bool = False

    @property
    def period(self) -> float:
        """One control period (s)."""
        return 1.0 / self.rate_hz


# -- environment and processes -------------------------------------------------------------------
def ros_environment(tmp: Path, domain_id: int | None) -> dict[str, str]:
    """Set this run's ROS environment in ``os.environ`` (the node processes inherit it): a domain
    of its own, localhost-only discovery, ROS_HOME / ROS_LOG_DIR in ``tmp``, MUJOCO_GL=egl."""
    os.environ["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else os.getpid() % 100 + 1)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_HOME"] = str(tmp / "ros")
    os.environ["ROS_LOG_DIR"] = str(tmp / "ros" / "log")
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "MUJOCO_GL", "RMW_IMPLEMENTATION")
    return {k: os.environ.get(k, "") for k in keys}


def write_arm_config(path: Path, s: Settings) -> dict[str, Any]:
    """``config/arms/fake_sawyer.yaml`` at the benchmark's rates (the test's fast config: a quick
    home, endless episodes); returns the ``arm:`` mapping written."""
    from ros2_erl_vlm.paths import config_dir

    data = yaml.safe_load((config_dir() / "arms" / "fake_sawyer.yaml").read_text())
    arm = data["arm"]
    arm["control"] = {**arm["control"], "rate_hz": s.rate_hz, "max_speed_m_s": MAX_SPEED_M_S,
                      "home_speed_m_s": HOME_SPEED_M_S, "episode_steps": 100_000,
                      "command_timeout_periods": COMMAND_TIMEOUT_PERIODS}
    arm["topics"] = {**arm["topics"], "wait_s": STARTUP_S}
    arm["servo"] = {**arm["servo"], "stream_rate_hz": s.stream_hz}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return arm


@contextlib.contextmanager
def node_process(module: str, namespace: str, run_dir: Path, args: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A node process (output to ``<run_dir>/<module>.log``, never a pipe that could fill up and
    block it), SIGINT-ed (then killed) at exit."""
    from ros2_erl_vlm.ros.node_process import node_process as ros_node_process

    log_path = run_dir / f"{module.rsplit('.', 1)[-1]}.log"
    with open(log_path, "wb") as log, ros_node_process(module, namespace, args, run_dir, log) as proc:
        proc.log_path = log_path  # type: ignore[attr-defined]
        yield proc


def log_tail(proc: subprocess.Popen[str], chars: int = 3000) -> str:
    """The end of a node process's log."""
    try:
        return Path(proc.log_path).read_text(errors="replace")[-chars:]  # type: ignore[attr-defined]
    except OSError:
        return ""


# -- the probe: policy and observer --------------------------------------------------------------
class Probe:
    """The policy and the observer, one rclpy node in the bridge's namespace.

    Answers each running observation with ``act(obs)`` while ``alive`` (``kill_after``: die after
    that many more actions); records observations, twists (receive time, header stamp, speed),
    the measured hand, the newest safety status, and the last action's publish time."""

    def __init__(self, node: Any, executor: Any, arm: dict[str, Any], run_dir: Path,
                 procs: list[subprocess.Popen[str]]) -> None:
        from erl_vlm.msg import Action, Observation
        from geometry_msgs.msg import PoseStamped, TwistStamped
        from std_msgs.msg import Bool, String
        from std_srvs.srv import Trigger

        from ros2_erl_vlm.nodes.fake_arm import COMMAND_QOS, POSE_STATE_QOS
        from ros2_erl_vlm.ros import qos

        self.node, self.executor, self.run_dir, self.procs = node, executor, run_dir, procs
        self.alive = True
        self.act: Callable[[Obs], list[float]] = lambda _o: STILL
        self.kill_after: int | None = None
        self.obs: list[Obs] = []
        self.twists: list[tuple[float, float, float]] = []  # (received, stamp, speed)
        self.ee: list[tuple[float, np.ndarray]] = []
        self.status: dict[str, Any] = {}
        self.actions_sent = 0
        self.last_action_t = 0.0
        self.last_action_wall = 0.0
        self.last_answered: tuple[int, int] | None = None
        self._Action, self._Bool, self._Trigger = Action, Bool, Trigger
        self.pub = node.create_publisher(Action, qos.ACTION, qos.ACTION_QOS)
        self.estop_pub = node.create_publisher(Bool, qos.ESTOP, qos.SAFETY_INPUT_QOS)
        self.reset_estop_client = node.create_client(Trigger, qos.RESET_ESTOP_SERVICE)
        self.reset_client = node.create_client(Trigger, qos.RESET_SERVICE)
        node.create_subscription(Observation, qos.OBSERVATION, self.on_obs, qos.OBSERVATION_QOS)
        node.create_subscription(String, qos.SAFETY_STATUS, self.on_status, qos.SAFETY_STATUS_QOS)
        t = arm["topics"]
        node.create_subscription(TwistStamped, t["twist"], self.on_twist, COMMAND_QOS)
        node.create_subscription(PoseStamped, t["ee_pose"], self.on_ee, POSE_STATE_QOS)

    # -- callbacks ------------------------------------------------------------------------------
    def on_obs(self, msg: Any) -> None:
        """Record an observation; answer it while alive (not a truncated one)."""
        o = Obs(time.monotonic(), int(msg.episode), int(msg.step), bool(msg.truncated),
                str(msg.truncation_reason), np.asarray(msg.action_taken, np.float64))
        self.obs.append(o)
        if self.alive and not o.truncated:
            self.answer(o)

    def answer(self, o: Obs) -> None:
        """Publish ``act(o)`` for the observation's episode and step."""
        a = np.asarray(self.act(o), np.float32)
        self.pub.publish(self._Action(episode=o.episode, step=o.step, action=a))
        self.last_action_t, self.last_action_wall = time.monotonic(), time.time()
        self.actions_sent += 1
        self.last_answered = (o.episode, o.step)
        if self.kill_after is not None:
            self.kill_after -= 1
            if self.kill_after <= 0:
                self.alive, self.kill_after = False, None

    def on_twist(self, msg: Any) -> None:
        """Record a streamed twist: receive time, header stamp (system clock), speed."""
        v, st = msg.twist.linear, msg.header.stamp
        self.twists.append((time.monotonic(), int(st.sec) + int(st.nanosec) * 1e-9,
                            math.sqrt(v.x * v.x + v.y * v.y + v.z * v.z)))

    def on_ee(self, msg: Any) -> None:
        """Record the measured hand position."""
        p = msg.pose.position
        self.ee.append((time.monotonic(), np.array([p.x, p.y, p.z])))

    def on_status(self, msg: Any) -> None:
        """Keep the newest safety status."""
        self.status = json.loads(msg.data)

    # -- driving --------------------------------------------------------------------------------
    def check_nodes(self) -> None:
        """NodeDiedError (with the log's end) if fake_arm or arm_bridge exited."""
        for p in self.procs:
            if p.poll() is not None:
                raise NodeDiedError(f"{p.args[2]} exited with {p.returncode}:\n{log_tail(p)}")

    def spin_until(self, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Spin until ``cond()``; TrialTimeoutError after ``timeout_s``, NodeDiedError if a node exits."""
        deadline = time.monotonic() + timeout_s
        next_check = 0.0
        while not cond():
            now = time.monotonic()
            if now > deadline:
                raise TrialTimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
            if now > next_check:
                self.check_nodes()
                next_check = now + 0.2
            self.executor.spin_once(timeout_sec=0.005)

    def spin_for(self, seconds: float) -> None:
        """Spin for ``seconds``."""
        end = time.monotonic() + seconds
        self.spin_until(lambda: time.monotonic() >= end, seconds + 60.0, "time to pass")

    def steps_since(self, mark: int) -> int:
        """Running steps (step > 0, not truncated) observed after ``obs[mark]``."""
        return sum(1 for o in self.obs[mark:] if o.step > 0 and not o.truncated)

    def run_steps(self, act: Callable[[Obs], list[float]], n: int, timeout_s: float) -> None:
        """Answer with ``act`` until ``n`` more running steps were observed."""
        self.act = act
        mark = len(self.obs)
        self.spin_until(lambda: self.steps_since(mark) >= n, timeout_s, f"{n} running steps")

    def resume(self) -> None:
        """The policy comes back: alive again, and it answers the newest observation when that one
        waits for an action (an episode's first step; the bridge republishes it only slowly)."""
        self.alive = True
        if self.obs:
            o = self.obs[-1]
            if not o.truncated and (o.episode, o.step) != self.last_answered:
                self.answer(o)

    def estop(self, value: bool) -> None:
        """Publish ``estop``."""
        self.estop_pub.publish(self._Bool(data=value))

    def call(self, client: Any, timeout_s: float = 10.0) -> Any:
        """Call a Trigger service; its response."""
        self.spin_until(client.service_is_ready, timeout_s, f"service {client.srv_name}")
        future = client.call_async(self._Trigger.Request())
        self.spin_until(future.done, timeout_s, f"the reply of {client.srv_name}")
        return future.result()

    def counters(self, newer_than: float | None = None, timeout_s: float = 10.0) -> dict[str, int]:
        """arm_bridge's status.json counters; with ``newer_than`` (time.time()), only a file
        written after that (spinning meanwhile)."""
        path = self.run_dir / "arm_bridge" / "status.json"
        box: dict[str, Any] = {}

        def read() -> bool:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                return False
            if newer_than is not None and float(data.get("time", 0.0)) <= newer_than:
                return False
            box.update(data)
            return True

        self.spin_until(read, timeout_s, "a fresh arm_bridge status.json")
        return dict(box["counters"])

    def hand(self) -> np.ndarray:
        """The newest measured hand position."""
        return self.ee[-1][1]


# -- helpers -------------------------------------------------------------------------------------
def move_action(sign: float) -> Callable[[Obs], list[float]]:
    """Full speed along x (``sign`` +1 / -1), gripper open."""
    return lambda _o: [float(sign), 0.0, 0.0, -1.0]


def direction(probe: Probe, trial: int, low: np.ndarray, high: np.ndarray) -> float:
    """Alternate +x / -x per trial, but always back toward the middle when the hand is off it
    by more than a third of the half-width (so it stays clear of the box's faces)."""
    mid, half = (low[0] + high[0]) / 2, (high[0] - low[0]) / 2
    x = float(probe.hand()[0])
    if x > mid + half / 3:
        return -1.0
    if x < mid - half / 3:
        return 1.0
    return 1.0 if trial % 2 == 0 else -1.0


def twist_latency(probe: Probe, mark: int, t0: float, wall0: float) -> dict[str, Any]:
    """Twists after ``t0`` (monotonic; ``wall0`` the same instant on the system clock), in ms after
    it: the last non-zero one received, the last non-zero one sent (header stamp), the last of any
    received (0 when there is none)."""
    after = [tw for tw in probe.twists[mark:] if tw[0] > t0]
    moving = [tw for tw in after if tw[2] > NONZERO_M_S]
    sent_after = [tw[1] for tw in probe.twists[mark:] if tw[1] > wall0 and tw[2] > NONZERO_M_S]
    return {"last_nonzero_twist_ms": (max(tw[0] for tw in moving) - t0) * 1e3 if moving else 0.0,
            "last_nonzero_twist_stamp_ms": (max(sent_after) - wall0) * 1e3 if sent_after else 0.0,
            "nonzero_twists_after": len(moving),
            "last_twist_ms": (max(tw[0] for tw in after) - t0) * 1e3 if after else 0.0,
            "twists_after": len(after)}


def summary(values_ms: list[float], period_s: float) -> dict[str, Any]:
    """n, p50 / p99 / max / mean in ms and in control periods."""
    a = np.asarray(values_ms, np.float64)
    if not a.size:
        return {"n": 0}
    stats = {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
             "max": float(a.max()), "mean": float(a.mean())}
    out: dict[str, Any] = {"n": int(a.size)}
    out.update({f"{k}_ms": round(v, 2) for k, v in stats.items()})
    out.update({f"{k}_periods": round(v / (period_s * 1e3), 3) for k, v in stats.items()})
    return out


def recover(probe: Probe, s: Settings) -> None:
    """After a failed trial: release an e-stop, bring the policy back and wait for steps (a reset
    of the bridge when that does not do it)."""
    probe.kill_after, probe.act = None, (lambda _o: STILL)
    probe.estop(False)
    with contextlib.suppress(TrialTimeoutError):
        probe.call(probe.reset_estop_client)
    probe.resume()
    try:
        probe.run_steps(lambda _o: STILL, 3, 30.0)
    except TrialTimeoutError:
        probe.call(probe.reset_client)
        probe.resume()
        probe.run_steps(lambda _o: STILL, 3, 120.0)


def progress(phase: str, i: int, n: int, started: float) -> None:
    """A progress line every tenth of a phase."""
    if n >= 10 and (i + 1) % max(1, n // 10) and i + 1 != n:
        return
    print(f"  {phase}: {i + 1}/{n} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)


# -- 1. stop after the last action ---------------------------------------------------------------
def stop_trial(probe: Probe, i: int, s: Settings, low: np.ndarray, high: np.ndarray,
               zero_periods: int) -> dict[str, Any]:
    """One trial: still steps, ``move_steps`` full-speed actions, then the policy dies; the twists
    until the next episode (started where the arm stands) and a few periods more."""
    p = s.period
    step_timeout = 20.0 + 50 * p
    sign = direction(probe, i, low, high)
    probe.run_steps(lambda _o: STILL, s.warmup_steps, step_timeout)
    mark_obs, mark_tw = len(probe.obs), len(probe.twists)
    probe.act, probe.kill_after = move_action(sign), s.move_steps
    probe.spin_until(lambda: not probe.alive, step_timeout, "the moving steps")
    t0, wall0 = probe.last_action_t, probe.last_action_wall

    def truncation() -> Obs | None:
        return next((o for o in probe.obs[mark_obs:] if o.truncated), None)

    probe.spin_until(lambda: truncation() is not None, 10.0 + 20 * p, "the truncated observation")
    trunc = truncation()
    assert trunc is not None
    t_end = trunc.t + (zero_periods + 4) * p + 0.02
    probe.spin_until(lambda: time.monotonic() >= t_end and any(
        o.episode > trunc.episode and o.step == 0 for o in probe.obs[mark_obs:]), 10.0 + 20 * p,
        "the next episode")
    nxt = next(o for o in probe.obs[mark_obs:] if o.episode > trunc.episode and o.step == 0)
    rec = {"trial": i, "direction": sign, **twist_latency(probe, mark_tw, t0, wall0),
           "truncation_ms": (trunc.t - t0) * 1e3, "truncation_reason": trunc.reason,
           "next_episode_ms": (nxt.t - t0) * 1e3,
           "hand": [round(float(v), 4) for v in probe.hand()]}
    probe.act = lambda _o: STILL
    probe.resume()
    return rec


# -- 2. e-stop -----------------------------------------------------------------------------------
def estop_trial(probe: Probe, i: int, s: Settings, low: np.ndarray, high: np.ndarray,
                rng: np.random.Generator) -> dict[str, Any]:
    """One trial: still steps, moving steps, e-stop at a random point of a period; the twists over
    ``max(10 periods, 0.2 s)``; e-stop released: no motion over ``hold_s``, still latched;
    ``reset_estop``; the move home and the next episode."""
    p = s.period
    step_timeout = 20.0 + 50 * p
    sign = direction(probe, i, low, high)
    probe.run_steps(lambda _o: STILL, s.warmup_steps, step_timeout)
    probe.run_steps(move_action(sign), s.move_steps, step_timeout)  # and it keeps moving
    delay = float(rng.uniform(0.0, p))
    probe.spin_for(delay)
    mark_obs, mark_tw = len(probe.obs), len(probe.twists)
    moving_speed = max((tw[2] for tw in probe.twists[-5:]), default=0.0)
    t0, wall0 = time.monotonic(), time.time()
    probe.estop(True)

    def truncation() -> Obs | None:
        return next((o for o in probe.obs[mark_obs:] if o.truncated), None)

    probe.spin_until(lambda: truncation() is not None, 10.0 + 20 * p, "the estop truncation")
    trunc = truncation()
    assert trunc is not None
    probe.act = lambda _o: STILL
    t_end = t0 + max(10 * p, 0.2)
    probe.spin_until(lambda: time.monotonic() >= t_end, 60.0, "the e-stop window")
    rec: dict[str, Any] = {"trial": i, "direction": sign, "delay_in_period_ms": delay * 1e3,
                           "speed_before_m_s": moving_speed, **twist_latency(probe, mark_tw, t0, wall0),
                           "truncation_ms": (trunc.t - t0) * 1e3, "truncation_reason": trunc.reason}
    probe.estop(False)  # releasing the button does not restart the arm
    mark_ee = len(probe.ee)
    at = probe.hand().copy()
    mark_tw2 = len(probe.twists)
    probe.spin_for(s.hold_s)
    drift = max((float(np.linalg.norm(q - at)) for _t, q in probe.ee[mark_ee:]), default=0.0)
    rec["released_drift_mm"] = drift * 1e3
    rec["released_nonzero_twists"] = sum(1 for tw in probe.twists[mark_tw2:] if tw[2] > NONZERO_M_S)
    rec["released_no_motion"] = drift < ESTOP_DRIFT_M
    rec["latched"] = bool(probe.status.get("estop_latched"))
    i_trunc = next(j for j in range(mark_obs, len(probe.obs)) if probe.obs[j].truncated)
    rec["obs_while_latched"] = sum(1 for o in probe.obs[i_trunc + 1:] if not o.truncated)
    t_reset = time.monotonic()
    reply = probe.call(probe.reset_estop_client)
    rec["reset_reply"] = reply.message
    mark = len(probe.obs)
    probe.spin_until(lambda: any(o.step > 0 and not o.truncated for o in probe.obs[mark:]),
                     30.0 + 100 * p, "the next episode's steps after reset_estop")
    first = next(o for o in probe.obs[mark:] if o.step == 0)
    rec["next_episode_s"] = first.t - t_reset
    rec["hand"] = [round(float(v), 4) for v in probe.hand()]
    return rec


# -- 3. the workspace box ------------------------------------------------------------------------
class Adversarial:
    """Random, huge (1e6), NaN and face-pushing actions (the face changes every 100 actions), as
    ``adversarial()`` of test/integration/arm/test_arm_bridge.py; ``kinds`` counts them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.k, self.kinds = rng, 0, Counter[str]()
        self.log: list[tuple[float, str]] = []  # (monotonic time, kind) of each action

    def _kind(self, kind: str) -> None:
        self.kinds[kind] += 1
        self.log.append((time.monotonic(), kind))

    def __call__(self, _obs: Obs) -> list[float]:
        """The next action."""
        self.k += 1
        k = self.k
        kind = k % 4
        if kind == 0:
            self._kind("random")
            return [float(v) for v in self.rng.uniform(-1, 1, 4)]
        if kind == 1:
            self._kind("huge")
            return [float(v) for v in self.rng.uniform(-1e6, 1e6, 4)]
        if kind == 2 and k % 20 == 2:
            self._kind("nan")
            return [float("nan"), 0.0, 0.0, 0.0]
        self._kind("face")
        face = np.zeros(3)
        face[(k // 100) % 3] = 1.0 if (k // 300) % 2 == 0 else -1.0
        return [*(float(v) for v in face), 1.0]


def quiesce(probe: Probe, s: Settings) -> float:
    """Let the policy die and the bridge stop (the next episode waits at step 0); returns the
    time.time() after which status.json counters are final."""
    probe.alive, probe.kill_after = False, None
    mark = len(probe.obs)
    probe.spin_until(lambda: any(o.truncated for o in probe.obs[mark:]), 10.0 + 20 * s.period,
                     "the stop of the dead policy")
    probe.spin_until(lambda: any(o.step == 0 for o in probe.obs[mark:]), 10.0 + 20 * s.period,
                     "the next episode")
    probe.spin_for(4 * s.period + 0.05)
    return time.time()


def box_phase(probe: Probe, s: Settings, low: np.ndarray, high: np.ndarray,
              rng: np.random.Generator) -> dict[str, Any]:
    """``actions`` adversarial actions; the measured hand against the box, the bridge's counters."""
    p = s.period
    before = probe.counters(newer_than=quiesce(probe, s))
    adv = Adversarial(rng)
    mark_ee, mark_obs, n0 = len(probe.ee), len(probe.obs), probe.actions_sent
    t_start = time.monotonic()
    probe.act, probe.kill_after = adv, s.actions
    probe.resume()
    tenth = max(1, s.actions // 10)
    while probe.alive:
        done = probe.actions_sent - n0
        target = min(s.actions, (done // tenth + 1) * tenth)
        probe.spin_until(lambda t=target: not probe.alive or probe.actions_sent - n0 >= t,
                         60.0 + 20 * tenth * p, f"{target} adversarial actions")
        progress("box", probe.actions_sent - n0 - 1, s.actions, t_start)
    elapsed = time.monotonic() - t_start
    t_last = probe.last_action_t
    after = probe.counters(newer_than=quiesce(probe, s))
    ee = np.array([q for _t, q in probe.ee[mark_ee:]])
    excess = np.max(np.maximum(low - ee, ee - high), axis=1)  # per sample, > 0 outside
    dist = np.linalg.norm(ee - np.clip(ee, low, high), axis=1)
    worst = int(np.argmax(excess))
    obs = probe.obs[mark_obs:]
    applied = [o.applied for o in obs if o.applied.size]
    bad_applied = sum(1 for a in applied if not (np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0 + 1e-6)))
    diff = {k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in sorted(set(after) | set(before))}
    # Stops while the adversary was still acting (the last one, after its last action, is ours),
    # and how many of them came within two actions of a NaN one (a dropped action is a held step).
    stops = [o for o in obs if o.truncated and o.t <= t_last]
    times = [t for t, _k in adv.log]
    after_nan = 0
    for o in stops:
        j = int(np.searchsorted(times, o.t))
        after_nan += any(k == "nan" for _t, k in adv.log[max(0, j - 2):j])
    # The bridge's control ticks as seen here (one observation per tick): a stalled bridge (a busy
    # machine) shows as gaps well over one period, and stops it for command_timeout on its own.
    ticks = np.array([o.t for o in obs if o.t <= t_last])
    gaps_ms = (np.diff(ticks) * 1e3).tolist() if len(ticks) > 1 else []
    return {
        "actions": probe.actions_sent - n0, "action_kinds": dict(adv.kinds), "seconds": round(elapsed, 2),
        "observation_gap": summary(gaps_ms, p),
        "actions_per_s": round((probe.actions_sent - n0) / elapsed, 2),
        "ee_samples": len(ee), "tolerance_mm": BOX_TOLERANCE_M * 1e3,
        "outside_beyond_tolerance": int(np.sum(excess > BOX_TOLERANCE_M)),
        "outside_beyond_0mm": int(np.sum(excess > 0.0)),
        "worst_excursion_mm": round(max(0.0, float(excess[worst])) * 1e3, 3),
        "worst_excursion_at": [round(float(v), 4) for v in ee[worst]],
        "worst_distance_outside_mm": round(float(dist.max()) * 1e3, 3),
        "bad_actions": diff.get("bad_actions", 0), "limited_box": diff.get("limited_box", 0),
        "expected_bad_actions": adv.kinds["nan"],
        "applied_actions_out_of_range": bad_applied,
        "truncations_while_acting": dict(Counter(o.reason for o in stops)),
        "truncations_within_2_actions_of_nan": after_nan,
        "bridge_counters": diff,
    }


# -- the run -------------------------------------------------------------------------------------
def run_trials(phase: str, n: int, fn: Callable[[int], dict[str, Any]], probe: Probe,
               s: Settings) -> list[dict[str, Any]]:
    """``n`` trials of ``fn``; a trial that times out is recorded as failed and the bridge recovered."""
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    for i in range(n):
        try:
            rows.append(fn(i))
        except TrialTimeoutError as exc:
            print(f"  {phase} trial {i} failed: {exc}", file=sys.stderr, flush=True)
            rows.append({"trial": i, "failed": str(exc), "status": dict(probe.status)})
            recover(probe, s)
        progress(phase, i, n, started)
    return rows


def latency_report(rows: list[dict[str, Any]], period_s: float, keys: tuple[str, ...]) -> dict[str, Any]:
    """Raw values (ms) and summaries of ``keys`` over the successful trials."""
    ok = [r for r in rows if "failed" not in r]
    raw = {k: [round(float(r[k]), 3) for r in ok] for k in keys}
    return {"trials": len(rows), "failed": len(rows) - len(ok),
            "summary": {k: summary(v, period_s) for k, v in raw.items()}, "raw_ms": raw, "records": rows}


def git_commit() -> dict[str, Any]:
    """``git rev-parse HEAD`` of this checkout, and the tracked files that differ from it (the run
    used them: the install is editable)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"commit": git("rev-parse", "HEAD").strip() or None, "dirty": bool(changed), "changed_files": changed}


def host_info() -> dict[str, Any]:
    """Machine, python and rclpy versions."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        rclpy_version = version("rclpy")
    except PackageNotFoundError:
        rclpy_version = None
    return {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "python": platform.python_version(), "rclpy": rclpy_version,
            "numpy": np.__version__}


def load_check(when: str) -> list[float]:
    """The load averages; a warning when the 1-min one is above half the cores."""
    load = [round(v, 2) for v in os.getloadavg()]
    cores = os.cpu_count() or 1
    if load[0] > 0.5 * cores:
        print(f"WARNING ({when}): 1-min load average {load[0]:.2f} > 0.5 x {cores} cores: the latency "
              f"figures are only meaningful on an otherwise idle machine", file=sys.stderr, flush=True)
    return load


def print_report(result: dict[str, Any]) -> None:
    """The numbers, readable."""
    period_ms = 1e3 / result["settings"]["rate_hz"]
    print(f"safety benchmark: control {result['settings']['rate_hz']:g} Hz (period {period_ms:.1f} ms), "
          f"stream {result['settings']['stream_hz']:g} Hz, fake {result['settings']['fake_hz']:g} Hz")
    for phase, title in (("stop", "policy killed"), ("estop", "e-stop")):
        if phase not in result:
            continue
        r = result[phase]
        print(f"{title}: {r['trials']} trials, {r['failed']} failed")
        for k, v in r["summary"].items():
            if v.get("n"):
                print(f"  {k:30s} p50 {v['p50_ms']:7.1f} ms ({v['p50_periods']:.2f} P)  p99 {v['p99_ms']:7.1f} ms "
                      f"({v['p99_periods']:.2f} P)  max {v['max_ms']:7.1f} ms ({v['max_periods']:.2f} P)")
        for k, v in r.get("checks", {}).items():
            print(f"  {k}: {v}")
    if "box" in result:
        b = result["box"]
        print(f"box: {b['actions']} adversarial actions {b['action_kinds']}, {b['ee_samples']} measured poses: "
              f"{b['outside_beyond_tolerance']} outside by > {b['tolerance_mm']:g} mm, "
              f"{b['outside_beyond_0mm']} by > 0 mm, worst {b['worst_excursion_mm']:.2f} mm; "
              f"bad_actions {b['bad_actions']} (NaN sent {b['expected_bad_actions']}), "
              f"limited_box {b['limited_box']}, stops while acting {b['truncations_while_acting']} "
              f"({b['truncations_within_2_actions_of_nan']} within 2 actions of a NaN one)")
        g = b["observation_gap"]
        if g.get("n"):
            print(f"  bridge ticks seen here: gap p50 {g['p50_periods']:.2f} P, p99 {g['p99_periods']:.2f} P, "
                  f"max {g['max_periods']:.2f} P (gaps over 2 P stop the arm for command_timeout)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results file."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=None, help="trials of each latency measurement (200)")
    ap.add_argument("--actions", type=int, default=None, help="adversarial actions (10,000)")
    ap.add_argument("--rate-hz", type=float, default=50.0, help="control rate (a real arm: 10)")
    ap.add_argument("--stream-hz", type=float, default=100.0, help="servo twist stream rate")
    ap.add_argument("--fake-hz", type=float, default=100.0, help="fake arm physics / publishing rate")
    ap.add_argument("--move-steps", type=int, default=10, help="full-speed steps before each stop")
    ap.add_argument("--warmup-steps", type=int, default=3, help="still steps that start each trial")
    ap.add_argument("--hold-s", type=float, default=0.5, help="e-stop released: no motion for this long")
    ap.add_argument("--phases", default="stop,estop,box", help="any of stop,estop,box")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: from the pid)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 5 trials, 300 actions")
    ap.add_argument("--out", type=Path, default=None,
                    help="default bench/results/safety/safety-<rate>hz.json (--quick: safety-<rate>hz-quick.json)")
    args = ap.parse_args(argv)
    phases = tuple(x for x in args.phases.split(",") if x)
    if set(phases) - {"stop", "estop", "box"}:
        ap.error(f"unknown phases in {args.phases!r}")
    s = Settings(trials=args.trials if args.trials is not None else (5 if args.quick else 200),
                 actions=args.actions if args.actions is not None else (300 if args.quick else 10_000),
                 rate_hz=args.rate_hz, stream_hz=args.stream_hz, fake_hz=args.fake_hz,
                 move_steps=args.move_steps, warmup_steps=args.warmup_steps, hold_s=args.hold_s,
                 seed=args.seed, phases=phases, quick=args.quick)
    out = args.out or RESULTS / f"safety-{s.rate_hz:g}hz{'-quick' if args.quick else ''}.json"
    load_start = load_check("start")
    t_run = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="erl-safety-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = ros_environment(tmp, args.domain_id)
        result = run(s, tmp, env)
    result.update({"bench": "safety", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **git_commit(),
                   "host": host_info(), "load_avg_start": load_start, "load_avg_end": load_check("end"),
                   "duration_s": round(time.monotonic() - t_run, 1)})
    result["idle_machine"] = max(result["load_avg_start"][0], result["load_avg_end"][0]) <= 0.5 * (os.cpu_count() or 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print_report(result)
    print(f"wrote {out} ({result['duration_s']:.0f} s)")
    return 0


def run(s: Settings, tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    """Start fake_arm and arm_bridge, run the phases, return the results (settings included)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from ros2_erl_vlm.core.safety.arm_config import load_arm_config

    cfg_path = tmp / "arm.yaml"
    arm = write_arm_config(cfg_path, s)
    arm_cfg = load_arm_config(cfg_path)
    low, high = np.array(arm_cfg.workspace_min), np.array(arm_cfg.workspace_max)
    zero_periods = int(arm_cfg.control.zero_periods)
    namespace = f"safety_bench_{os.getpid()}"
    run_dir = tmp / "run"
    run_dir.mkdir()
    bridge_params = {"status_period_s": 0.2, "action_timeout_s": 0.5}
    fake_params = {"camera.rate_hz": 0, "rate_hz": s.fake_hz}
    result: dict[str, Any] = {
        "settings": {**dataclasses.asdict(s), "period_ms": s.period * 1e3, "box_tolerance_mm": BOX_TOLERANCE_M * 1e3,
                     "nonzero_twist_m_s": NONZERO_M_S, "estop_drift_limit_mm": ESTOP_DRIFT_M * 1e3,
                     "bridge_params": bridge_params, "fake_params": fake_params, "ros_env": env,
                     "arm_config": dataclasses.asdict(arm_cfg)},
    }
    rng = np.random.default_rng(s.seed)
    print(f"starting fake_arm and arm_bridge (ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}, "
          f"/{namespace}, {s.rate_hz:g} Hz control) ...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    with node_process(FAKE, namespace, run_dir, ["-p", f"arm_config:={cfg_path}",
                                                 *(x for k, v in fake_params.items() for x in ("-p", f"{k}:={v}"))]) as fake, \
            node_process(BRIDGE, namespace, run_dir, ["-p", f"arm_config:={cfg_path}",
                                                      *(x for k, v in bridge_params.items() for x in ("-p", f"{k}:={v}"))]) as bridge:
        rclpy.init()
        try:
            node = rclpy.create_node("safety_bench", namespace=f"/{namespace}")
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            probe = Probe(node, executor, arm, run_dir, [fake, bridge])
            try:
                probe.spin_until(lambda: probe.steps_since(0) > 5 and bool(probe.ee), STARTUP_S + 60,
                                 "the first episode's steps")
                result["startup_s"] = round(time.monotonic() - t0, 1)
                print(f"running after {result['startup_s']:.0f} s; hand at {probe.hand().round(3).tolist()}",
                      file=sys.stderr, flush=True)
                measure(probe, s, result, low, high, zero_periods, rng)
            except (TrialTimeoutError, NodeDiedError) as exc:
                raise SystemExit(f"safety bench aborted: {exc}\n--- arm_bridge log ---\n{log_tail(bridge)}\n"
                                 f"--- fake_arm log ---\n{log_tail(fake)}") from exc
            finally:
                executor.shutdown()
                node.destroy_node()
        finally:
            rclpy.shutdown()
    return result


def measure(probe: Probe, s: Settings, result: dict[str, Any], low: np.ndarray, high: np.ndarray,
            zero_periods: int, rng: np.random.Generator) -> None:
    """The phases, into ``result``."""
    whole_mark = len(probe.ee)
    if "stop" in s.phases:
        t = time.monotonic()
        rows = run_trials("stop", s.trials, lambda i: stop_trial(probe, i, s, low, high, zero_periods), probe, s)
        r = latency_report(rows, s.period, ("last_nonzero_twist_ms", "last_nonzero_twist_stamp_ms",
                                            "truncation_ms", "last_twist_ms", "next_episode_ms"))
        ok = [x for x in rows if "failed" not in x]
        r["checks"] = {"truncation_reasons": dict(Counter(x["truncation_reason"] for x in ok))}
        r["seconds"] = round(time.monotonic() - t, 1)
        result["stop"] = r
    if "estop" in s.phases:
        t = time.monotonic()
        rows = run_trials("estop", s.trials, lambda i: estop_trial(probe, i, s, low, high, rng), probe, s)
        r = latency_report(rows, s.period, ("last_nonzero_twist_ms", "last_nonzero_twist_stamp_ms",
                                            "truncation_ms", "last_twist_ms"))
        ok = [x for x in rows if "failed" not in x]
        drift = [x["released_drift_mm"] for x in ok]
        r["checks"] = {
            "truncation_reasons": dict(Counter(x["truncation_reason"] for x in ok)),
            "released_motion_ge_3mm": sum(1 for x in ok if not x["released_no_motion"]),
            "released_drift_max_mm": round(max(drift), 3) if drift else None,
            "released_nonzero_twists": sum(x["released_nonzero_twists"] for x in ok),
            "not_latched": sum(1 for x in ok if not x["latched"]),
            "next_episode_s_max": round(max(x["next_episode_s"] for x in ok), 3) if ok else None,
        }
        r["raw_ms"]["released_drift_mm"] = [round(v, 3) for v in drift]
        r["seconds"] = round(time.monotonic() - t, 1)
        result["estop"] = r
    if "box" in s.phases:
        result["box"] = box_phase(probe, s, low, high, rng)
    ee = np.array([q for _t, q in probe.ee[whole_mark:]])
    if ee.size:
        excess = np.max(np.maximum(low - ee, ee - high), axis=1)
        result["whole_run_box"] = {"ee_samples": len(ee),
                                   "outside_beyond_tolerance": int(np.sum(excess > BOX_TOLERANCE_M)),
                                   "outside_beyond_0mm": int(np.sum(excess > 0.0)),
                                   "worst_excursion_mm": round(max(0.0, float(excess.max())) * 1e3, 3)}


if __name__ == "__main__":
    sys.exit(main())
