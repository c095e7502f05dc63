"""Observations joined with their step's camera frame (``camera/frames``) for a node whose reward
model reads images: a thin ROS wrapper around :class:`ros2_erl_vlm.core.step_frames.StepFrameJoin`.

The node hands every observation to :meth:`StepFrameInput.add_observation` instead of handling it
at once; the handler it gave is called, in order, with each observation and its frame (resized to
the reward model's input), or with ``None`` once ``frame_wait_s`` has passed without the frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from erl_vlm.msg import Observation, StepFrame

from ros2_erl_vlm.core.frames import crop_resize
from ros2_erl_vlm.core.step_frames import StepFrameJoin
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.images import image_to_rgb
from ros2_erl_vlm.ros.params import ParamError

Handler = Callable[[Observation, "np.ndarray | None"], None]

#: Share of the machine's memory a replay buffer of frames may take.
MAX_FRAME_REPLAY_SHARE = 0.5


def check_frame_replay_memory(capacity: int, frame_shape: tuple[int, ...],
                              total_bytes: int | None = None) -> int:
    """The bytes a replay of ``capacity`` frames takes; ParamError naming ``replay_capacity`` when
    that is more than half the machine's memory (an image reward model stores every frame)."""
    need = int(capacity) * int(np.prod(frame_shape))
    if total_bytes is None:
        import os

        total_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > MAX_FRAME_REPLAY_SHARE * total_bytes:
        fit = int(MAX_FRAME_REPLAY_SHARE * total_bytes // int(np.prod(frame_shape)))
        raise ParamError(f"parameter 'replay_capacity': {capacity} frames of {frame_shape} for the image "
                         f"reward model take {need / 2**30:.1f} GiB, more than half of this machine's "
                         f"{total_bytes / 2**30:.1f} GiB; use at most {fit} (or a smaller "
                         "reward.image_size)")
    return need


class StepFrameInput:
    """Subscribes ``camera/frames`` on ``node`` and releases observations with their frames.

    Args:
        node: the ErlNode (its ``count`` and ``wall_timer`` are used).
        handler: called with ``(observation message, frame or None)`` in arrival order.
        image_size: side of the square frames handed out (others are resized).
        wait_s: longest an observation waits for its frame.
    """

    def __init__(self, node: Any, handler: Handler, image_size: int, wait_s: float) -> None:
        self.node, self.handler, self.size = node, handler, int(image_size)
        self.join: StepFrameJoin[Observation] = StepFrameJoin(wait_s)
        node.create_subscription(StepFrame, qos.FRAMES, self.on_frame, qos.FRAMES_QOS)
        node.wall_timer(min(0.1, wait_s / 2), self.on_timer)
        self._missing_seen = 0

    def add_observation(self, msg: Observation) -> None:
        """Queue an observation; an episode's first one (step 0) needs no frame."""
        self._deliver(self.join.add_observation(int(msg.episode), int(msg.step), msg, time.monotonic(),
                                                needs_frame=int(msg.step) > 0))

    def on_frame(self, msg: StepFrame) -> None:
        """A step's frame: decoded, resized to the model's input, joined with its observation."""
        try:
            frame = crop_resize(image_to_rgb(msg.image), self.size)
        except ValueError as exc:
            self.node.count("bad_frames", f"dropped a camera/frames frame: {exc}")
            return
        self._deliver(self.join.add_frame(int(msg.episode), int(msg.step), frame, time.monotonic()))

    def on_timer(self) -> None:
        """Release observations whose frame did not come in time."""
        self._deliver(self.join.release_due(time.monotonic()))

    def status(self) -> dict[str, int]:
        """Counts for status.json."""
        return {"frames_missing": self.join.missing, "frames_late": self.join.late_frames,
                "frames_unclaimed": self.join.dropped_frames, "waiting_for_frames": len(self.join)}

    def _deliver(self, released: list[tuple[Observation, np.ndarray | None]]) -> None:
        if self.join.missing > self._missing_seen:
            self._missing_seen = self.join.missing
            self.node.count("frames_missing", "an observation's camera frame did not come within "
                            "frame_wait_s: that step is not stored")
        for msg, frame in released:
            self.handler(msg, frame)
