"""The recorder node over real DDS: synthetic episodes published by a probe (marks by service and
by the success topic, an unmarked episode, a re-published observation, intervention flags and
safety statuses, raw and compressed cameras, arm-like stamps paired by the auto tolerance), a
lock-step sim_bridge episode driven by the probe (its MuJoCo states recorded), and a shutdown
with a bag that cannot be closed (the others close, exit 2); the bags are read back, exported and
compared with what was published."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.recording.mcap_episode import find_bags, read_episode

pytestmark = [pytest.mark.ros, pytest.mark.integration]

STARTUP_S = 120.0  # a busy 2-core machine: imports, DDS discovery (MetaWorld and EGL for sim_bridge)
DT_NS = 100_000_000  # the synthetic episodes are an arm's: 10 Hz observations


class Probe:
    """An in-test rclpy node beside the processes under test."""

    def __init__(self, procs: dict[str, subprocess.Popen[str]], node: Any, executor: Any) -> None:
        self.procs, self.node, self.executor = procs, node, executor
        #: Each process's output, once the ``running`` block exited.
        self.outputs: dict[str, str] = {}

    def spin_until(self, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Spin until ``cond()``; fail (with the output) if a process dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while not cond() and time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited ({proc.returncode}) while waiting for {what}:\n"
                                f"{proc.communicate()[0][-3000:]}")
            self.executor.spin_once(timeout_sec=0.01)
        assert cond(), f"timed out after {timeout_s:g} s waiting for {what}"

    def spin_for(self, seconds: float) -> None:
        """Spin for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def call(self, client: Any, request: Any) -> Any:
        """Call a service and return its response."""
        self.spin_until(client.service_is_ready, STARTUP_S, f"service {client.srv_name}")
        future = client.call_async(request)
        self.spin_until(future.done, 10, f"the reply of {client.srv_name}")
        return future.result()


@contextlib.contextmanager
def running(namespace: str, nodes: dict[str, list[str]], exit_codes: dict[str, int] | None = None
            ) -> Iterator[Probe]:
    """Start ``python -m ros2_erl_vlm.nodes.<name> --ros-args -r __ns:=/<namespace> <args>`` for each
    node and a probe node in the namespace; on exit SIGINT them and check they exit 0 (or their
    ``exit_codes``); their output is then in ``probe.outputs``."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    procs = {name: subprocess.Popen([sys.executable, "-m", f"ros2_erl_vlm.nodes.{name}", "--ros-args",
                                     "-r", f"__ns:=/{namespace}", *args],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name, args in nodes.items()}
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    outputs: dict[str, str] = {}
    try:
        node = rclpy.create_node("probe", namespace=f"/{namespace}", context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        probe = Probe(procs, node, ex)
        probe.outputs = outputs
        yield probe
        ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for name, proc in procs.items():
            try:
                outputs[name] = proc.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                outputs[name] = proc.communicate()[0]
    for name, proc in procs.items():
        want = (exit_codes or {}).get(name, 0)
        assert proc.returncode == want, f"{name} exited {proc.returncode}, not {want}:\n{outputs[name][-3000:]}"


def _status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "recorder" / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _counters(run_dir: Path) -> dict[str, int]:
    return _status(run_dir).get("counters", {})


def _stamp(ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_synthetic_episodes_marks_and_side_channels(tmp_path: Path, transport: str) -> None:
    import cv2
    from erl_vlm.msg import Observation
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Bool, String
    from std_srvs.srv import Trigger

    from ros2_erl_vlm.nodes.recorder import OPERATOR_QOS
    from ros2_erl_vlm.ros import qos
    from ros2_erl_vlm.ros.images import rgb_to_image

    run_dir = tmp_path / "run"
    args = ["-p", f"run_dir:={run_dir}", "-p", "task:=reach-v3", "-p", "close_delay_s:=0.5",
            "-p", "mark_timeout_s:=1.5", "-p", "status_period_s:=0.2", "-p", f"camera.transport:={transport}"]
    rng = np.random.default_rng(0)
    published: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    with running(f"rec_{transport}", {"recorder": args}) as pr:
        n = pr.node
        pub_obs = n.create_publisher(Observation, qos.OBSERVATION, qos.OBSERVATION_QOS)
        if transport == "raw":
            pub_img = n.create_publisher(Image, qos.CAMERA_IMAGE, qos.IMAGE_QOS)
        else:
            pub_img = n.create_publisher(CompressedImage, qos.CAMERA_IMAGE_COMPRESSED, qos.IMAGE_QOS)
        pub_int = n.create_publisher(Bool, "intervention", OPERATOR_QOS)
        pub_ok = n.create_publisher(Bool, "success", OPERATOR_QOS)
        pub_safety = n.create_publisher(String, qos.SAFETY_STATUS, qos.SAFETY_STATUS_QOS)
        mark_success = n.create_client(Trigger, "mark_success")
        pr.spin_until(lambda: all(p.get_subscription_count() > 0 for p in
                                  (pub_obs, pub_img, pub_int, pub_ok, pub_safety)), STARTUP_S,
                      "the recorder's subscriptions")

        def warm_up() -> bool:  # best effort: the first images can be lost until both sides matched
            image = rgb_to_image(np.zeros((4, 4, 3), np.uint8), _stamp(1), "cam")
            if transport == "compressed":
                image = CompressedImage(header=image.header, format="jpeg",
                                        data=cv2.imencode(".jpg", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
            pub_img.publish(image)
            pr.spin_for(0.05)
            return _counters(run_dir).get("images", 0) > 0

        pr.spin_until(warm_up, STARTUP_S, "the first camera image at the recorder")

        def step(episode: int, t: int, last: bool) -> None:
            ns = 10**9 + (episode * 100 + t) * DT_NS
            state = rng.normal(size=39).astype(np.float32)
            action = rng.uniform(-1, 1, 4).astype(np.float32) if t else np.zeros(0, np.float32)
            rgb = np.full((16, 16, 3), (10 * t + 40 * episode) % 256, np.uint8)
            published.setdefault(episode, []).append((state, action, rgb))
            msg = Observation(episode=episode, step=t, state=state, action_taken=action, truncated=last,
                              truncation_reason="time_limit" if last else "", has_truth=False,
                              true_reward=float("nan"), progress=float("nan"))
            msg.header.stamp = _stamp(ns)
            pub_obs.publish(msg)
            if transport == "raw":
                pub_img.publish(rgb_to_image(rgb, _stamp(ns), "cam"))
            else:
                _, buf = cv2.imencode(".jpg", rgb[..., ::-1])
                img = CompressedImage(format="jpeg", data=buf.tobytes())
                img.header.stamp, img.header.frame_id = _stamp(ns), "cam"
                pub_img.publish(img)
            if t == 1:
                pub_obs.publish(msg)  # re-published, as a waiting bridge does
            pr.spin_for(0.03)

        def episode(e: int, steps: int) -> None:
            for t in range(steps + 1):
                step(e, t, t == steps)
                if t == 2:  # once the recorder has step 2 (topics are not ordered with each other)
                    total = sum(len(v) for v in published.values())
                    pr.spin_until(lambda total=total: _counters(run_dir).get("observations") == total, 30,
                                  f"{total} observations recorded")
                    pub_int.publish(Bool(data=True))
                    pub_safety.publish(String(data=json.dumps({"phase": "episode", "step": t})))
                    pr.spin_for(0.1)

        episode(0, 4)
        assert pr.call(mark_success, Trigger.Request()).message == "episode 0 marked success"
        pr.spin_until(lambda: _counters(run_dir).get("episodes_recorded") == 1, 30, "episode 0's bag")
        refused = pr.call(mark_success, Trigger.Request())  # between episodes, after the bag closed
        assert not refused.success and "no episode is being recorded" in refused.message
        episode(1, 3)
        pub_ok.publish(Bool(data=False))  # the gamepad's failure button, before the next episode
        pr.spin_until(lambda: _counters(run_dir).get("marks") == 2, 30, "the button's mark")
        episode(2, 2)  # nobody marks it: closed unmarked after mark_timeout_s
        pr.spin_until(lambda: _counters(run_dir).get("episodes_recorded") == 3, 30, "three bags")
        counters = _counters(run_dir)
        # no simulator truth: the auto tolerance pairs each observation with the nearest image
        assert _status(run_dir)["sync_tolerance_s"] == 0.05
    assert counters["duplicate_observations"] == 3 and counters["marks_refused"] == 1
    assert counters["frame_sync_alarms"] == 0

    bags = find_bags(run_dir / "recorder" / "episodes")
    assert [b.name for b in bags] == ["episode_000000", "episode_000001", "episode_000002"]
    recs = [read_episode(b) for b in bags]
    assert [(r.success, r.marked, r.meta["mark_source"]) for r in recs] == [
        (True, True, "service:mark_success"), (False, True, "topic:success"), (False, False, "")]
    for r in recs:
        sent = published[r.episode]
        assert [s.step for s in r.steps] == list(range(len(sent)))
        assert r.meta["namespace"] == f"/rec_{transport}" and r.task == "reach-v3"
        for got, (state, action, _) in zip(r.steps, sent, strict=True):
            np.testing.assert_array_equal(got.state, state)
            np.testing.assert_array_equal(got.action_taken, action)
        assert sorted(r.frames) == list(range(len(sent)))  # best effort, but on localhost all arrive
        for t, frame in r.frames.items():
            assert np.abs(frame.rgb().astype(int) - sent[t][2]).max() <= 3  # JPEG of what was sent
        assert r.interventions == [(2, True)]
        assert [json.loads(text)["step"] for _, text in r.safety_status] == [2]

    from ros2_erl_vlm.recording.export import export

    summary = export(run_dir / "recorder" / "episodes", tmp_path / "demo.npz")
    assert summary["transitions"] == 4 + 3 + 2 and summary["successes"] == 1 and summary["unmarked"] == 1
    with np.load(tmp_path / "demo.npz") as z:
        assert np.isnan(z["rewards"]).all()


@pytest.mark.render
def test_sim_bridge_episodes_are_recorded(tmp_path: Path) -> None:
    from erl_vlm.msg import Action, Observation
    from std_srvs.srv import Trigger

    from ros2_erl_vlm.ros import qos

    run_dir = tmp_path / "run"
    common = ["-p", f"run_dir:={run_dir}", "-p", "task:=reach-v3"]
    nodes = {"sim_bridge": [*common, "-p", "max_episode_steps:=6", "-p", "camera.image_size:=32",
                            "-p", "start.observation_subscribers:=2", "-p", "start.image_subscribers:=1",
                            "-p", "auto_reset:=false", "-p", "publish_clock:=false"],
             "recorder": [*common, "-p", "close_delay_s:=0.5", "-p", "status_period_s:=0.2"]}
    seen: list[Any] = []
    with running("rec_sim", nodes) as pr:
        n = pr.node
        act = n.create_publisher(Action, qos.ACTION, qos.ACTION_QOS)
        mark_failure = n.create_client(Trigger, "mark_failure")
        mark_success = n.create_client(Trigger, "mark_success")
        reset = n.create_client(Trigger, qos.RESET_SERVICE)

        def on_obs(msg: Any) -> None:
            seen.append(msg)
            if not msg.truncated:
                act.publish(Action(episode=msg.episode, step=msg.step, action=[0.5, -0.2, 0.1, 2.0]))

        n.create_subscription(Observation, qos.OBSERVATION, on_obs, qos.OBSERVATION_QOS)
        for episode, mark in ((0, mark_failure), (1, mark_success)):
            if episode:
                assert pr.call(reset, Trigger.Request()).message == "episode 1"
            pr.spin_until(lambda e=episode: any(m.truncated and m.episode == e for m in seen), STARTUP_S,
                          f"the end of episode {episode}")
            assert pr.call(mark, Trigger.Request()).success
            pr.spin_until(lambda e=episode: _counters(run_dir).get("episodes_recorded") == e + 1, 30,
                          f"the bag of episode {episode}")
    recs = [read_episode(b) for b in find_bags(run_dir / "recorder" / "episodes")]
    assert [(r.episode, r.success, r.marked, r.meta["end_reason"]) for r in recs] == [
        (0, False, True, "time_limit"), (1, True, True, "time_limit")]
    for rec in recs:
        steps = {m.step: m for m in seen if m.episode == rec.episode}
        assert [s.step for s in rec.steps] == list(range(7)) == sorted(steps)
        for got in rec.steps:
            np.testing.assert_array_equal(got.state, np.asarray(steps[got.step].state, np.float32))
            # the MuJoCo state the bridge published, float64 bit for bit (re-renders the step)
            assert got.sim_state.size > 0
            np.testing.assert_array_equal(got.sim_state, np.asarray(steps[got.step].sim_state, np.float64))
            assert got.has_truth and got.true_reward == np.float32(steps[got.step].true_reward)
            assert got.stamp_ns == steps[got.step].header.stamp.sec * 10**9 + steps[got.step].header.stamp.nanosec
        for a in rec.actions:  # the bridge reports the clipped action it applied
            np.testing.assert_array_equal(a, np.float32([0.5, -0.2, 0.1, 1.0]))
    # Lock-step: each image carries its observation's stamp. The first images of the run may be lost
    # while best-effort discovery completes; once connected, every step's frame is recorded.
    assert sorted(recs[1].frames) == list(range(7))
    assert recs[1].frames[0].rgb().shape == (32, 32, 3)
    assert set(recs[0].frames) <= set(range(7)) and 6 in recs[0].frames


def test_a_bag_that_cannot_be_closed_at_shutdown_exits_2_after_closing_the_others(tmp_path: Path) -> None:
    from erl_vlm.msg import Observation

    from ros2_erl_vlm.ros import qos

    run_dir = tmp_path / "run"
    args = ["-p", f"run_dir:={run_dir}", "-p", "camera.enabled:=false", "-p", "close_delay_s:=60.0",
            "-p", "status_period_s:=0.2"]
    with running("rec_shutdown", {"recorder": args}, exit_codes={"recorder": 2}) as pr:
        pub = pr.node.create_publisher(Observation, qos.OBSERVATION, qos.OBSERVATION_QOS)
        pr.spin_until(lambda: pub.get_subscription_count() > 0, STARTUP_S, "the recorder's subscription")
        sent = 0
        for episode, steps in ((0, 2), (1, 1)):  # episode 0 ended, episode 1 running: both bags open
            for t in range(steps + 1):
                msg = Observation(episode=episode, step=t, state=[float(t)] * 3,
                                  action_taken=[0.1] * 2 if t else [], truncated=episode == 0 and t == steps)
                msg.header.stamp = _stamp(10**9 + (episode * 100 + t) * DT_NS)
                pub.publish(msg)
                sent += 1
        pr.spin_until(lambda: _counters(run_dir).get("observations") == sent, 30, f"{sent} observations")
        shutil.rmtree(run_dir / "recorder" / "episodes" / "episode_000000")  # its metadata cannot be written
    out = pr.outputs["recorder"]
    assert "closing" in out and "episode_000000 at shutdown" in out and "RecorderShutdownError" in out
    rec = read_episode(run_dir / "recorder" / "episodes" / "episode_000001")  # closed all the same
    assert rec.meta["end_reason"] == "shutdown" and [s.step for s in rec.steps] == [0, 1]
    status = _status(run_dir)
    assert list(status["not_closed"]) == [str(run_dir / "recorder" / "episodes" / "episode_000000")]
    assert status["counters"]["close_failures"] == 1


def test_every_recorder_parameter_is_documented() -> None:
    from ros2_erl_vlm.nodes.recorder import RECORDER

    text = (Path(__file__).resolve().parents[3] / "docs" / "recording.md").read_text()
    for spec in RECORDER:
        assert f"`{spec.name}`" in text, spec.name


def test_a_bad_parameter_exits_1_naming_it(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ros2_erl_vlm.nodes.recorder", "--ros-args", "-p",
                           f"run_dir:={tmp_path}", "-p", "camera.transport:=mjpeg"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert "parameter 'camera.transport'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ros2_erl_vlm.nodes.recorder"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "parameter 'run_dir': must be set" in proc.stderr
