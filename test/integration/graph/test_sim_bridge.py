"""sim_bridge on its own: real-time mode at a fixed rate, images stamped like their observations,
the reset service, actions applied (clipped) or held when stale."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.integration]


def test_realtime_mode_reset_service_and_actions(small_params: Any, tmp_path: Path, node_probe: Any) -> None:
    from erl_vlm.msg import Action, Observation
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger

    from ros2_erl_vlm.ros import qos

    params = small_params("realtime.yaml", {"/**/sim_bridge": {
        "mode": "realtime", "control_rate_hz": 50.0, "action_timeout_s": 0.5, "camera.image_size": 32}})
    with node_probe("ros2_erl_vlm.nodes.sim_bridge", "sim_bridge_test",
                    ["--params-file", str(params), "-p", 'task:="reach-v3"', "-p", f'run_dir:="{tmp_path}"']) as pr:
        node, ex = pr.node, pr.executor
        obs: list[Any] = []
        imgs: dict[int, Any] = {}
        node.create_subscription(Observation, qos.OBSERVATION, obs.append, qos.OBSERVATION_QOS)
        node.create_subscription(Image, qos.CAMERA_IMAGE,
                                 lambda m: imgs.setdefault(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, m),
                                 qos.IMAGE_QOS)
        act = node.create_publisher(Action, qos.ACTION, qos.ACTION_QOS)
        reset = node.create_client(Trigger, qos.RESET_SERVICE)

        pr.spin_until(lambda: len(obs) >= 30, 90, "30 observations")
        t0, n0 = time.monotonic(), len(obs)
        pr.spin_until(lambda: len(obs) >= n0 + 50, 30, "50 more observations")
        rate = (len(obs) - n0) / (time.monotonic() - t0)
        assert 25 < rate < 75, rate  # 50 Hz, give or take a loaded machine
        steps = [o.step for o in obs if o.episode == obs[-1].episode]
        assert steps == list(range(steps[0], steps[0] + len(steps)))
        stamped = [o for o in obs[-20:] if o.header.stamp.sec * 10**9 + o.header.stamp.nanosec in imgs]
        assert len(stamped) >= 10  # images carry their observation's stamp (best effort: most arrive)
        moved = [(o.episode, o.step) for o in obs[n0:] if not np.allclose(o.action_taken, 0.0)]
        assert moved == []  # no agent: actions held at zero

        # An action for the current episode is applied (clipped to [-1, 1]).
        ep = obs[-1].episode
        pr.spin_until(lambda: act.get_subscription_count() > 0, 10, "the action subscriber")
        for _ in range(10):
            act.publish(Action(episode=ep, step=obs[-1].step, action=[0.5, -3.0, 0.0, 0.2]))
            ex.spin_once(timeout_sec=0.02)
        pr.spin_until(lambda: any(np.allclose(o.action_taken, [0.5, -1.0, 0.0, 0.2]) for o in obs[-15:]), 10,
                      "the clipped action applied")

        # The reset service starts the next episode at step 0.
        pr.spin_until(lambda: reset.service_is_ready(), 10, "the reset service")
        before = obs[-1].episode
        future = reset.call_async(Trigger.Request())
        pr.spin_until(lambda: future.done(), 10, "the reset reply")
        assert future.result().success
        assert future.result().message == f"episode {before + 1}"
        pr.spin_until(lambda: any(o.episode == before + 1 and o.step == 0 for o in obs), 10, "step 0")
    assert pr.proc.returncode == 0, pr.output[-3000:]

    # Started again on the same run: episode ids and sim time continue (no id names two episodes).
    # Lock-step this time, holding the first episode until the probe subscribes, so it sees step 0.
    last, last_ns = obs[-1].episode, max(o.header.stamp.sec * 10**9 + o.header.stamp.nanosec for o in obs)
    lockstep = small_params("lockstep.yaml", {"/**/sim_bridge": {
        "mode": "lockstep", "camera.enabled": False, "start.observation_subscribers": 1}})
    with node_probe("ros2_erl_vlm.nodes.sim_bridge", "sim_bridge_test",
                    ["--params-file", str(lockstep), "-p", 'task:="reach-v3"', "-p", f'run_dir:="{tmp_path}"']) as pr:
        again: list[Any] = []
        pr.node.create_subscription(Observation, qos.OBSERVATION, again.append, qos.OBSERVATION_QOS)
        pr.spin_until(lambda: len(again) >= 3, 90, "observations after the restart")
        assert again[0].episode == last + 1
        assert again[0].step == 0
        assert again[0].header.stamp.sec * 10**9 + again[0].header.stamp.nanosec > last_ns
    assert "continuing the run: next episode" in pr.output, pr.output[-2000:]


def test_an_unreadable_run_position_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "sim_bridge").mkdir()
    (tmp_path / "sim_bridge" / "position.json").write_text('{"episode": "x"')
    out = subprocess.run([sys.executable, "-m", "ros2_erl_vlm.nodes.sim_bridge", "--ros-args", "-p",
                          'task:="reach-v3"', "-p", f'run_dir:="{tmp_path}"'], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "position.json: unreadable run position" in out.stderr
    assert "delete it" in out.stderr
