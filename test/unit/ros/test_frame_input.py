"""The image reward agent's replay memory check: a replay of frames that cannot fit is refused
with the parameter and a size that fits."""

from __future__ import annotations

import pytest

from ros2_erl_vlm.ros.frame_input import check_frame_replay_memory
from ros2_erl_vlm.ros.params import ParamError


def test_a_frame_replay_that_fits_in_half_the_memory_is_accepted() -> None:
    assert check_frame_replay_memory(1000, (224, 224, 3), total_bytes=2**30) == 1000 * 224 * 224 * 3


def test_the_shipped_capacity_of_224_px_frames_is_refused_with_what_fits() -> None:
    with pytest.raises(ParamError, match=r"'replay_capacity': 1000000 frames .* use at most 35665"):
        check_frame_replay_memory(1_000_000, (224, 224, 3), total_bytes=10 * 2**30)
