"""Join observations with the camera frames of their steps, in order, for image reward models.

In the graph the camera frame of a step (``camera/frames``, from camera_capture) arrives on its own
topic, usually just after the step's observation. An image reward model needs both: the agent
rewards each transition from the frame after it, the reward learner stores the frames of the
segments it will have rated. :class:`StepFrameJoin` holds observations until their frame is there
and releases them first in, first out; one whose frame has not come within ``wait_s`` is
released without it (the caller skips that transition and counts it), so a lost frame never stalls
the graph. Frames may also arrive before their observation (they are kept, bounded).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class _Waiting(Generic[T]):
    key: tuple[int, int]
    item: T
    since: float
    needs_frame: bool


class StepFrameJoin(Generic[T]):
    """Observations (any item, keyed by episode and step) released with their step's frame.

    Args:
        wait_s: longest an observation waits for its frame before it is released without one.
        max_frames: frames kept that no observation has claimed yet (the oldest dropped beyond).
        max_waiting: observations held at most (beyond it the oldest is released without frame).
    """

    def __init__(self, wait_s: float, max_frames: int = 256, max_waiting: int = 1000) -> None:
        if not wait_s > 0:
            raise ValueError(f"wait_s must be > 0, got {wait_s}")
        if max_frames < 1 or max_waiting < 1:
            raise ValueError("max_frames and max_waiting must be >= 1")
        self.wait_s, self.max_frames, self.max_waiting = float(wait_s), int(max_frames), int(max_waiting)
        self._frames: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._waiting: deque[_Waiting[T]] = deque()
        self._released: OrderedDict[tuple[int, int], None] = OrderedDict()  # recent keys, for late frames
        #: Observations released without their frame (timed out or pushed out).
        self.missing = 0
        #: Frames that came after their observation had been released without one.
        self.late_frames = 0
        #: Frames dropped unclaimed (no observation of that step within ``max_frames`` frames).
        self.dropped_frames = 0

    def __len__(self) -> int:
        """Observations waiting for a frame."""
        return len(self._waiting)

    def add_observation(self, episode: int, step: int, item: T, now: float,
                        needs_frame: bool = True) -> list[tuple[T, np.ndarray | None]]:
        """Queue an observation; returns what can be released now, in order. ``needs_frame`` false
        (e.g. an episode's first observation, which ends no transition) releases it without a
        frame as soon as everything before it is released."""
        key = (int(episode), int(step))
        # A repeat of an observation already released (a bridge re-publishing a step while it waits
        # for its action) needs no frame: its first copy had it.
        repeat = key in self._released
        self._waiting.append(_Waiting(key, item, float(now), bool(needs_frame) and not repeat))
        out = self._release(now)
        while len(self._waiting) > self.max_waiting:
            out.append(self._pop(with_frame=False))
            out.extend(self._release(now))
        return out

    def add_frame(self, episode: int, step: int, frame: np.ndarray,
                  now: float) -> list[tuple[T, np.ndarray | None]]:
        """Store a step's frame; returns what can be released now, in order."""
        key = (int(episode), int(step))
        if key in self._released:
            self.late_frames += 1
            return self._release(now)
        self._frames[key] = frame
        self._frames.move_to_end(key)
        while len(self._frames) > self.max_frames:
            self._frames.popitem(last=False)
            self.dropped_frames += 1
        return self._release(now)

    def release_due(self, now: float) -> list[tuple[T, np.ndarray | None]]:
        """Release the observations whose frame is there or whose wait is over (call it from a
        timer)."""
        return self._release(now)

    def _release(self, now: float) -> list[tuple[T, np.ndarray | None]]:
        out: list[tuple[T, np.ndarray | None]] = []
        while self._waiting:
            head = self._waiting[0]
            if not head.needs_frame:
                out.append(self._pop(with_frame=False, counted=False))
            elif head.key in self._frames:
                out.append(self._pop(with_frame=True))
            elif now - head.since >= self.wait_s:
                out.append(self._pop(with_frame=False))
            else:
                break
        return out

    def _pop(self, with_frame: bool, counted: bool = True) -> tuple[T, np.ndarray | None]:
        w = self._waiting.popleft()
        frame = self._frames.pop(w.key, None)  # claimed even when not needed (an episode's start)
        if not with_frame:
            frame = None
        if frame is None and counted:
            self.missing += 1
        self._released[w.key] = None
        while len(self._released) > self.max_frames:
            self._released.popitem(last=False)
        return w.item, frame
