"""The MuJoCo state through the graph: sim_bridge's observations carry each step's ``sim_state``, which
re-renders the camera frame it published pixel for pixel. (That a camera-off oracle run keeps it in
the learner's requests and its report re-renders them: ``test_graph_progress.py``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.integration, pytest.mark.render]

SEED = 5
SIZE = 48


def test_observation_states_rerender_the_published_frames(small_params: Any, tmp_path: Path,
                                                          node_probe: Any) -> None:
    from erl_vlm.msg import Action, Observation
    from sensor_msgs.msg import Image

    from ros2_erl_vlm.core import seeds
    from ros2_erl_vlm.envs import make_env
    from ros2_erl_vlm.ros import qos
    from ros2_erl_vlm.ros.images import image_to_rgb

    params = small_params("sim_state.yaml", {"/**": {"max_episode_steps": 6}, "/**/sim_bridge": {
        "mode": "lockstep", "camera.image_size": SIZE, "start.observation_subscribers": 1,
        "start.image_subscribers": 1}})
    obs: list[Any] = []
    imgs: dict[int, Any] = {}
    with node_probe("ros2_erl_vlm.nodes.sim_bridge", "sim_state_test",
                    ["--params-file", str(params), "-p", 'task:="reach-v3"', "-p", f"seed:={SEED}",
                     "-p", f'run_dir:="{tmp_path}"']) as pr:
        node = pr.node
        node.create_subscription(Observation, qos.OBSERVATION, obs.append, qos.OBSERVATION_QOS)
        node.create_subscription(Image, qos.CAMERA_IMAGE,
                                 lambda m: imgs.setdefault(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, m),
                                 qos.IMAGE_QOS)
        act = node.create_publisher(Action, qos.ACTION, qos.ACTION_QOS)
        rng = np.random.default_rng(0)
        answered: set[tuple[int, int]] = set()

        def drive() -> bool:
            """Answer the newest observation with a random action (lock-step)."""
            if obs and (obs[-1].episode, obs[-1].step) not in answered and not obs[-1].truncated:
                answered.add((obs[-1].episode, obs[-1].step))
                act.publish(Action(episode=obs[-1].episode, step=obs[-1].step,
                                   action=rng.uniform(-1, 1, 4).astype(np.float32).tolist()))
            return len({(o.episode, o.step) for o in obs}) >= 15

        pr.spin_until(drive, 90, "15 lock-step observations")
        pr.spin_until(lambda: len(imgs) >= 12, 10, "their images")
    env = make_env("reach-v3", seed=SEED, render=True, image_size=SIZE)
    checked = 0
    for o in obs:
        img = imgs.get(o.header.stamp.sec * 10**9 + o.header.stamp.nanosec)
        if img is None:
            continue
        assert len(o.sim_state) == env.sim_state_size == 38
        env.reset(seed=seeds.episode_seed(SEED, o.episode))
        env.set_sim_state(np.array(o.sim_state))
        assert np.array_equal(env.render(), image_to_rgb(img)), (o.episode, o.step)
        checked += 1
    env.close()
    assert checked >= 12 and len({o.episode for o in obs}) >= 2
