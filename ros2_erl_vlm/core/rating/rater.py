"""The rater interface shared by every rating backend (oracle, transformers, OpenAI-compatible HTTP).

A *query* is one segment of an episode (one frame in the paper's MetaWorld runs, several allowed)
with what a rater may need to rate it: the frames, the policy's states, the task's instruction and
class names and, in simulation only, the simulator's truth. A *result* is either a class in
``0..n-1`` (0 the worst) or an abstention with a reason; a backend never invents a class.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

MIN_CLASSES = 2
MAX_CLASSES = 5

#: Class names by number of classes (the paper's ``Choice`` enum), worst first.
DEFAULT_CLASS_NAMES: dict[int, tuple[str, ...]] = {
    2: ("Bad", "Good"),
    3: ("Bad", "Average", "Good"),
    4: ("Very Bad", "Bad", "Good", "Very Good"),
    5: ("Very Bad", "Bad", "Average", "Good", "Very Good"),
}


def check_num_classes(n: int) -> int:
    """Return ``n`` if it is a supported class count (2..5), else raise ``ValueError``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"num_classes must be an integer in [{MIN_CLASSES}, {MAX_CLASSES}], got {n!r}")
    if not MIN_CLASSES <= int(n) <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [{MIN_CLASSES}, {MAX_CLASSES}], got {n}")
    return int(n)


@dataclass(frozen=True)
class SimTruth:
    """Simulator ground truth for one step (absent on a real robot).

    ``sim_state`` is the simulator's state after the step (MetaWorld: ``MetaWorldTaskEnv.sim_state``,
    float64 qpos/qvel/mocap), kept so a rated step can be re-rendered exactly; None when the
    simulator gave none. It is not a rating input and takes no part in comparisons.
    """

    reward: float
    success: bool
    progress: float | None = None
    sim_state: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass
class RatingQuery:
    """One segment to be rated.

    Attributes:
        episode: episode id the segment comes from.
        steps: step indices (within the episode) of the segment's frames/states.
        instruction: the task in words ("open the drawer").
        class_names: names of the classes, worst first; ``len(class_names)`` is n.
        frames: ``(T, H, W, 3)`` uint8 RGB frames, upright; may be ``None`` for state-only raters.
        states: ``(T, obs_dim)`` float32 policy observations (after each step).
        truth: per-step simulator truth (oracle only); ``None`` on real hardware.
        query_id: caller's id, echoed in the result.
    """

    episode: int
    steps: tuple[int, ...]
    instruction: str
    class_names: tuple[str, ...]
    frames: np.ndarray | None = None
    states: np.ndarray | None = None
    truth: tuple[SimTruth, ...] | None = None
    query_id: str = ""

    def __post_init__(self) -> None:
        check_num_classes(len(self.class_names))
        self.class_names = tuple(str(c) for c in self.class_names)
        folded = [" ".join(c.split()).casefold() for c in self.class_names]
        if any(not c for c in folded):
            raise ValueError(f"class names must not be empty, got {list(self.class_names)}")
        if len(set(folded)) != len(folded):
            raise ValueError(f"class names must be distinct (ignoring case), got {list(self.class_names)}")
        self.steps = tuple(int(s) for s in self.steps)
        if not self.steps:
            raise ValueError("a rating query needs at least one step")
        if self.frames is not None:
            f = np.asarray(self.frames)
            if f.ndim == 3:
                f = f[None]
            if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
                raise ValueError(
                    f"frames must be (T, H, W, 3) uint8 RGB, got shape {f.shape} dtype {f.dtype}"
                )
            if f.shape[0] != len(self.steps):
                raise ValueError(f"{f.shape[0]} frames for {len(self.steps)} steps")
            self.frames = f
        if self.states is not None:
            s = np.asarray(self.states, dtype=np.float32)
            if s.ndim == 1:
                s = s[None]
            if s.shape[0] != len(self.steps):
                raise ValueError(f"{s.shape[0]} states for {len(self.steps)} steps")
            if not np.all(np.isfinite(s)):
                raise ValueError("states contain NaN or inf")
            self.states = s
        if self.truth is not None and len(self.truth) != len(self.steps):
            raise ValueError(f"{len(self.truth)} truth entries for {len(self.steps)} steps")

    @property
    def num_classes(self) -> int:
        """Number of rating classes n."""
        return len(self.class_names)


@dataclass
class RatingResult:
    """A rater's answer to one query: a class, or an abstention with its reason.

    ``label`` is ``None`` exactly when the rater abstained; ``abstain_reason`` then says why.
    ``probabilities`` (length n) are kept when the backend has them (constrained choice, logprobs).
    """

    query_id: str
    label: int | None
    num_classes: int
    backend: str
    probabilities: tuple[float, ...] | None = None
    rationale: str = ""
    abstain_reason: str = ""
    latency_s: float = 0.0
    attempts: int = 1
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_num_classes(self.num_classes)
        if self.label is None:
            if not self.abstain_reason:
                raise ValueError("an abstention must carry a reason")
        else:
            if isinstance(self.label, bool) or not 0 <= int(self.label) < self.num_classes:
                raise ValueError(f"label {self.label} outside [0, {self.num_classes})")
            self.label = int(self.label)
        if self.probabilities is not None:
            p = tuple(float(x) for x in self.probabilities)
            if len(p) != self.num_classes or not all(np.isfinite(p)):
                raise ValueError(f"probabilities must be {self.num_classes} finite numbers, got {p}")
            self.probabilities = p

    @property
    def abstained(self) -> bool:
        """True when the rater gave no class."""
        return self.label is None

    @classmethod
    def abstain(
        cls, query: RatingQuery, backend: str, reason: str, *, latency_s: float = 0.0,
        attempts: int = 1, rationale: str = "",
    ) -> RatingResult:
        """Build an abstention for ``query``."""
        return cls(
            query_id=query.query_id, label=None, num_classes=query.num_classes, backend=backend,
            abstain_reason=reason, latency_s=latency_s, attempts=attempts, rationale=rationale,
        )


@runtime_checkable
class Rater(Protocol):
    """Anything that rates segments. Implementations must never raise for a bad model answer:
    they return an abstention instead. They may raise for programming errors (bad arguments)."""

    backend_id: str

    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """Rate a batch of queries; one result per query, in order."""
        ...


class Stopwatch:
    """Tiny helper for latency measurement: ``with Stopwatch() as sw: ...; sw.elapsed``."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self._t0
