"""Rated states in space, for inspecting what the rater said where (rviz markers; ROS-free).

A rating request carries the segment's states; its rating arrives later. :class:`RatedPoints`
joins the two by request id and keeps, for the newest ``max_points`` ratings, where the segment
ended (a few state entries, by default MetaWorld's end-effector xyz) and which class it got, so a
viewer can draw the rated end points coloured by class. Everything is bounded: requests waiting
for a rating and stored points both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: RGBA of an abstention (no class).
ABSTAIN_RGBA = (0.55, 0.55, 0.55, 0.6)


def class_color(label: int | None, num_classes: int) -> tuple[float, float, float, float]:
    """RGBA for class ``label`` of ``num_classes``: red (worst) through yellow to green (best);
    grey for an abstention (``None``)."""
    if label is None:
        return ABSTAIN_RGBA
    if not 0 <= label < num_classes:
        raise ValueError(f"label {label} outside 0..{num_classes - 1}")
    x = label / (num_classes - 1) if num_classes > 1 else 1.0
    red = 1.0 if x <= 0.5 else 2.0 * (1.0 - x)
    green = 2.0 * x if x <= 0.5 else 1.0
    return (float(red), float(green), 0.0, 1.0)


@dataclass(frozen=True)
class RatedPoint:
    """Where a rated segment ended and what it got."""

    request_id: str
    episode: int
    step: int
    position: tuple[float, float, float]
    label: int | None
    class_name: str  # the class's name, or "abstained"
    num_classes: int
    progress: float | None  # simulator task progress of the last step (sim only)

    def text(self) -> str:
        """A short caption: the class (and the simulator's progress when known)."""
        return self.class_name if self.progress is None else f"{self.class_name} ({self.progress:.2f})"


@dataclass(frozen=True)
class _Request:
    episode: int
    step: int
    position: tuple[float, float, float]
    class_names: tuple[str, ...]
    progress: float | None


class RatedPoints:
    """Bounded join of rating requests and ratings (see module docstring).

    Args:
        position_indices: the three state entries that give the segment's position in the viewer's
            frame (MetaWorld: 0, 1, 2 = end-effector xyz).
        max_points: rated points kept (oldest dropped).
        max_pending: requests kept while waiting for their rating (oldest dropped).
    """

    def __init__(self, position_indices: Sequence[int] = (0, 1, 2), max_points: int = 1000,
                 max_pending: int = 2000) -> None:
        idx = tuple(int(i) for i in position_indices)
        if len(idx) != 3 or any(i < 0 for i in idx):
            raise ValueError(f"position_indices must be three non-negative indices, got {list(idx)}")
        if max_points < 1 or max_pending < 1:
            raise ValueError("max_points and max_pending must be positive")
        self.position_indices = idx
        self.max_points, self.max_pending = int(max_points), int(max_pending)
        self._pending: OrderedDict[str, _Request] = OrderedDict()
        self._points: OrderedDict[str, RatedPoint] = OrderedDict()
        self.version = 0  # bumped whenever the points change

    @property
    def points(self) -> list[RatedPoint]:
        """Rated points, oldest first."""
        return list(self._points.values())

    def __len__(self) -> int:
        return len(self._points)

    def add_request(self, request_id: str, episode: int, steps: Sequence[int], states: np.ndarray,
                    class_names: Sequence[str], progress: Sequence[float | None] | None = None) -> None:
        """Remember a request's end position until its rating arrives.

        Raises:
            ValueError: no states, states too short for ``position_indices``, or non-finite.
        """
        s = np.asarray(states, dtype=np.float64)
        if s.ndim != 2 or s.shape[0] == 0 or s.shape[0] != len(steps):
            raise ValueError(f"request {request_id}: need one state per step, got shape {s.shape} "
                             f"for {len(steps)} steps")
        if s.shape[1] <= max(self.position_indices):
            raise ValueError(f"request {request_id}: states have {s.shape[1]} entries, position_indices "
                             f"need {max(self.position_indices) + 1}")
        pos = s[-1, list(self.position_indices)]
        if not np.all(np.isfinite(pos)):
            raise ValueError(f"request {request_id}: position is not finite")
        last_progress = None
        if progress is not None and len(progress) == len(steps) and progress[-1] is not None:
            p = float(progress[-1])
            last_progress = p if np.isfinite(p) else None
        self._pending[request_id] = _Request(int(episode), int(steps[-1]),
                                             (float(pos[0]), float(pos[1]), float(pos[2])),
                                             tuple(str(c) for c in class_names), last_progress)
        self._pending.move_to_end(request_id)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)

    def add_rating(self, request_id: str, label: int | None) -> RatedPoint | None:
        """Attach a rating (``None``: abstention) to its request; None if the request is unknown
        (never seen, or dropped from the bounded wait list)."""
        req = self._pending.pop(request_id, None)
        if req is None:
            return None
        n = len(req.class_names)
        if label is not None and not 0 <= label < n:
            raise ValueError(f"rating {request_id}: label {label} outside 0..{n - 1}")
        point = RatedPoint(request_id, req.episode, req.step, req.position, label,
                           "abstained" if label is None else req.class_names[label], n, req.progress)
        self._points[request_id] = point
        while len(self._points) > self.max_points:
            self._points.popitem(last=False)
        self.version += 1
        return point

    def class_counts(self) -> dict[str, int]:
        """How many stored points got each class name (and "abstained")."""
        out: dict[str, int] = {}
        for p in self._points.values():
            out[p.class_name] = out.get(p.class_name, 0) + 1
        return out
