"""Observation messages -> core steps: bad states are rejected, unusable truth is dropped, not the step."""

from __future__ import annotations

import math

import pytest

from ros2_erl_vlm.ros.convert import read_observation

pytestmark = pytest.mark.ros


def _obs(state, reward=1.0, progress=0.5, has_truth=True):
    from erl_vlm.msg import Observation

    return Observation(episode=3, step=7, state=state, action_taken=[0.0, 0.1, 0.0, -1.0],
                       has_truth=has_truth, true_reward=reward, progress=progress, success=False)


def test_valid_observation() -> None:
    step = read_observation(_obs([0.0, 1.0, 2.0]))
    assert (step.episode, step.step) == (3, 7)
    assert step.state.tolist() == [0.0, 1.0, 2.0]
    assert step.truth is not None
    assert step.truth.progress == 0.5


@pytest.mark.parametrize("state", [[], [0.0, math.nan], [math.inf, 1.0]])
def test_bad_state_is_rejected(state) -> None:
    with pytest.raises(ValueError, match="state"):
        read_observation(_obs(state))


def test_unknown_progress_keeps_the_step() -> None:
    step = read_observation(_obs([0.0, 1.0], progress=math.nan))
    assert step.truth is not None
    assert step.truth.progress is None
    assert step.truth.reward == 1.0


def test_non_finite_reward_drops_only_the_truth() -> None:
    step = read_observation(_obs([0.0, 1.0], reward=math.inf))
    assert step.truth is None
    assert step.state.tolist() == [0.0, 1.0]


def test_observation_flagged_without_truth_has_none() -> None:
    assert read_observation(_obs([0.0, 1.0], has_truth=False)).truth is None
