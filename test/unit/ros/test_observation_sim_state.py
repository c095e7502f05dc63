"""The Observation's ``sim_state`` (the simulator's MuJoCo state, float64): sim_bridge's field in,
the truth's ``sim_state`` out, empty on an arm; and what it costs a message."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from ros2_erl_vlm.ros.convert import read_observation, sim_state_field

pytestmark = pytest.mark.ros


def _obs(sim_state=None, has_truth=True):
    from erl_vlm.msg import Observation

    msg = Observation(episode=3, step=7, state=np.linspace(-1, 1, 39).astype(np.float32),
                      action_taken=[0.0, 0.1, 0.0, -1.0], has_truth=has_truth, true_reward=1.0,
                      progress=0.5, success=False)
    if sim_state is not None:
        msg.sim_state = sim_state_field(sim_state)
    return msg


def test_sim_state_reaches_the_truth_bit_for_bit() -> None:
    state = np.array([math.pi, 1e-300, -0.1, *np.linspace(0, 1, 35)], dtype=np.float64)
    truth = read_observation(_obs(state)).truth
    assert truth is not None and truth.sim_state is not None
    assert truth.sim_state.dtype == np.float64 and np.array_equal(truth.sim_state, state)


def test_no_sim_state_on_an_arm_or_a_bad_one() -> None:
    assert read_observation(_obs()).truth.sim_state is None  # the default: empty
    assert sim_state_field(None).size == 0
    assert read_observation(_obs(np.array([1.0, math.nan]))).truth.sim_state is None  # the step stays
    assert read_observation(_obs(np.ones(27), has_truth=False)).truth is None


def test_the_field_costs_the_graph_little() -> None:
    """38 doubles add 304 bytes to a ~270-byte message; (de)serialising it stays within tens of
    microseconds, against the graph's milliseconds per step."""
    from erl_vlm.msg import Observation
    from rclpy.serialization import deserialize_message, serialize_message

    plain, full = _obs(), _obs(np.linspace(0, 1, 38))
    grown = len(serialize_message(full)) - len(serialize_message(plain))
    assert grown == 38 * 8 or grown == 38 * 8 + 4  # the values (+ alignment to 8 bytes)

    def per_message_s(msg: object) -> float:
        t0, n = time.perf_counter(), 2000
        for _ in range(n):
            read_observation(deserialize_message(serialize_message(msg), Observation))
        return (time.perf_counter() - t0) / n

    per_message_s(full)  # warm up
    extra = min(per_message_s(full) for _ in range(3)) - min(per_message_s(plain) for _ in range(3))
    assert extra < 50e-6, f"the sim_state field costs {extra * 1e6:.1f} us per observation"
