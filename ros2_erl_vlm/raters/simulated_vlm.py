"""A simulated rater that errs the way a VLM does: near class boundaries, to the neighbouring class,
the same answer for the same image.

The oracle (:mod:`.oracle`) flips labels at random, independent of the state; a VLM does not.
Asked to rate a frame, it is mostly right where the answer is obvious (drawer shut, ball in the
net) and unsure where the state is close to the line between two classes, and its mistakes there
go to the class on the other side of that line. It also makes a few gross mistakes (a shut drawer
called "Good"). At temperature 0 it gives the same answer to the same (or a practically identical)
image. This backend models that on simulator truth:

* **True class** ``c``: the task's binning of the segment's last step,
  ``bin_truth(progress, success, n)`` (``TaskSpec.bin_truth``, as the oracle does).
* **Distances** from the class's boundaries, in widths of the class: with the task's ``n - 1``
  thresholds ``T`` for ``n`` classes (``TaskSpec.oracle.thresholds(n)``) and the edges
  ``E = (0, *T, 1)``, class ``c`` spans ``[E[c], E[c+1]]`` (width ``W = E[c+1] - E[c]``) and, with
  ``p`` the progress clipped to [0, 1], ``d_lo = |p - E[c]| / W`` (``c > 0``) and
  ``d_hi = |E[c+1] - p| / W`` (``c < n - 1``). A success whose progress lies below the top
  threshold is ``d_lo`` below it. Only these numbers matter, not how the task computes progress;
  measured in class widths they do not change when progress is rescaled along with its thresholds.
* **Near errors**, one class across a boundary, likeliest at the boundary and falling off
  logistically with the distance from it (``w``: ``width``, in class widths)::

      a_down = under_rate * 2 / (1 + exp(d_lo / w))     (0 for c = 0)
      a_up   = over_rate  * 2 / (1 + exp(d_hi / w))     (0 for c = n - 1)

  A state at a boundary is rated across it with probability ``under_rate`` / ``over_rate``; one
  ``w`` away with 0.54 times that, three ``w`` away with 0.09 times. A class with two boundaries
  errs by the nearer one: ``P(near) = max(a_down, a_up)``, shared between down and up in the ratio
  ``a_down : a_up``; an end class has ``P(down) = a_down`` or ``P(up) = a_up``.
* **Far errors** with probability ``far_rate`` anywhere: a class at least two away from ``c`` if
  there is one, else a neighbour (for 2 classes: a flip, whatever the distance), upward or
  downward in the ratio ``over_rate : under_rate`` among the directions that have such a class.
* If ``P(down) + P(up) + far_rate`` exceeds 1 the three are scaled to sum to 1.

**One quality setting** ``quality`` = q in [0, 1] (1 = noiseless) sets the others unless they are
given (:meth:`SimulatedVlmConfig.resolved`): ``width = 1.3 (1 - q)``,
``over_rate = under_rate = 0.5 (1 - q)``, ``far_rate = 0.08 (1 - q)``. At q = 0 a state at a
boundary is a coin toss; the default q = 0.44 (width 0.73, rates 0.28, far 0.045) is calibrated
to agree with the truth on about 80% of ``bench/rater_agreement.py``'s mixed episodes of
drawer-open-v3, sweep-into-v3 and soccer-v3 (``docs/raters.md``).

**Deterministic.** The two uniform numbers that decide a label come from a hash (BLAKE2b) of the
rater's seed, the instruction, the class names and what the rater "sees": the frames if the query
has them (every 4th pixel, 32 levels per channel), else the states rounded to ``state_decimals``
decimals, else the truth rounded the same way. Asking twice, or with states that round to the same
values (e.g. perturbed by 1e-6), gives the same label; no random stream is consumed, so an answer
does not depend on what was asked before. (A perturbation that moves a state value across a
rounding edge is a different "image" and may change the answer, as a changed pixel may change a
VLM's.)

A query without truth (real hardware) is an abstention (``no simulator truth in query``), as is
truth the task cannot bin (``bad_truth: ...``, e.g. NaN progress); never a guess. Each rating's
``extra["error"]`` says which kind of answer it was (``none``, ``near_up``, ``near_down``, ``far``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult, Stopwatch
from ros2_erl_vlm.core.settings import BOUNDS_KEY, setting

BACKEND_ID = "simulated_vlm"

#: ``bin_truth(progress, success, n) -> class``; normally ``TaskSpec.bin_truth``.
BinFn = Callable[[float, bool, int], int]
#: ``thresholds(n) -> the n - 1 increasing class boundaries``; normally ``TaskSpec.oracle.thresholds``.
ThresholdFn = Callable[[int], Sequence[float]]

#: Calibrated default quality (``bench/rater_agreement.py``: ~0.8 agreement on the paper's tasks).
DEFAULT_QUALITY = 0.44
#: Derived settings at ``quality = q``: ``value = SCALE * (1 - q)``.
WIDTH_SCALE = 1.3
RATE_SCALE = 0.5
FAR_SCALE = 0.08
#: Frames are hashed at every ``FRAME_STRIDE``-th pixel, ``256 // FRAME_LEVEL`` levels per channel.
FRAME_STRIDE = 4
FRAME_LEVEL = 8

#: Error kinds, in the result's ``extra["error"]``.
NO_ERROR, NEAR_UP, NEAR_DOWN, FAR = "none", "near_up", "near_down", "far"


@dataclass(frozen=True)
class SimulatedVlmConfig:
    """Settings of the simulated VLM (see the module docstring for the model). ``None`` means:
    derived from ``quality``."""

    #: 1 = noiseless; lower is noisier. Sets every ``None`` setting below.
    quality: float = setting(DEFAULT_QUALITY, low=0.0, high=1.0)
    #: Fall-off distance of near errors, in widths of the state's class (0: no near errors).
    width: float | None = setting(None, low=0.0, high=10.0)
    #: Probability of rating a state at its class's upper boundary one class too high.
    over_rate: float | None = setting(None, low=0.0, high=1.0)
    #: Probability of rating a state at its class's lower boundary one class too low.
    under_rate: float | None = setting(None, low=0.0, high=1.0)
    #: Probability of a far error (>= 2 classes off, or a flip far from the boundary), anywhere.
    far_rate: float | None = setting(None, low=0.0, high=1.0)
    #: States (and truth, without states) are rounded to this many decimals before hashing.
    state_decimals: int = setting(3, low=0, high=8)

    def validate(self) -> SimulatedVlmConfig:
        """Raise ``ValueError`` naming the first bad setting (``simulated_vlm over_rate must be in
        [0, 1], got 2.0``): ``check_declared``, except that ``None`` means "derived"."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            bounds = f.metadata.get(BOUNDS_KEY)
            if bounds is None or (value is None and f.default is None):
                continue
            problem = bounds.problem(value, integer=isinstance(f.default, int))
            if problem:
                raise ValueError(f"simulated_vlm {f.name} {problem}")
        return self

    def resolved(self) -> dict[str, float | int]:
        """Every setting's effective value (the ``None`` ones derived from ``quality``)."""
        lost = 1.0 - float(self.quality)

        def pick(value: float | None, scale: float) -> float:
            return round(float(scale * lost if value is None else value), 9)

        return {"quality": float(self.quality), "width": pick(self.width, WIDTH_SCALE),
                "over_rate": pick(self.over_rate, RATE_SCALE),
                "under_rate": pick(self.under_rate, RATE_SCALE), "far_rate": pick(self.far_rate, FAR_SCALE),
                "state_decimals": int(self.state_decimals)}


class TaskBinning(Protocol):
    """What the rater needs of a task (``TaskSpec`` has it)."""

    name: str

    def bin_truth(self, progress: float, success: bool, n: int | None = None) -> int:
        """The true class of a step (``n`` classes, default the task's)."""
        ...

    @property
    def oracle(self) -> Any:
        """The task's class boundaries (``thresholds(n)``)."""
        ...


def near_error_probability(distance: float, rate: float, width: float) -> float:
    """``rate * 2 / (1 + exp(distance / width))``: ``rate`` at the boundary, falling off with
    ``distance`` (0 when ``width`` is 0 and the state is off the boundary)."""
    if rate <= 0.0:
        return 0.0
    if width <= 0.0:
        return rate if distance <= 0.0 else 0.0
    z = distance / width
    return 0.0 if z > 700 else rate * 2.0 / (1.0 + math.exp(z))


def boundary_distances(progress: float, label: int,
                       thresholds: Sequence[float]) -> tuple[float | None, float | None]:
    """``(d_lo, d_hi)``: distances of ``progress`` (clipped to [0, 1]) from the lower and upper
    boundary of class ``label``, in widths of that class (its interval of progress, the end
    classes reaching to 0 and 1); ``None`` where the class has no such boundary."""
    p = min(max(float(progress), 0.0), 1.0)
    edges = (0.0, *(float(t) for t in thresholds), 1.0)
    span = edges[label + 1] - edges[label]
    lo = abs(p - edges[label]) / span if label > 0 else None
    hi = abs(edges[label + 1] - p) / span if label < len(thresholds) else None
    return lo, hi


def far_error_label(label: int, n: int, over: float, under: float, u: float) -> int:
    """The class a far error gives for true class ``label``, chosen by the uniform ``u``: one at
    least two classes away if any (else a neighbour), up or down in the ratio ``over : under``."""
    up, down = list(range(label + 2, n)), list(range(0, label - 1))
    if not up and not down:  # no class two away (2 classes, or the middle of 3): a neighbour
        up, down = ([label + 1] if label + 1 < n else []), ([label - 1] if label > 0 else [])
    w_up, w_down = (over, under) if over + under > 0 else (1.0, 1.0)
    w_up, w_down = (w_up if up else 0.0), (w_down if down else 0.0)
    if w_up + w_down <= 0:  # the only direction there is has weight 0: take it anyway
        w_up, w_down = float(bool(up)), float(bool(down))
    p_up = w_up / (w_up + w_down)
    if u < p_up:
        return up[min(int(u / p_up * len(up)), len(up) - 1)]
    v = (u - p_up) / (1.0 - p_up)
    return down[min(int(v * len(down)), len(down) - 1)]


def content_digest(query: RatingQuery, seed: int, decimals: int) -> bytes:
    """BLAKE2b digest of what the rater sees (frames, else rounded states, else rounded truth),
    with the seed, instruction and class names."""
    h = hashlib.blake2b(digest_size=24)
    h.update(f"{seed}|{query.instruction}|{'|'.join(query.class_names)}|".encode())
    scale = 10.0 ** decimals
    if query.frames is not None:
        small = np.ascontiguousarray(query.frames[:, ::FRAME_STRIDE, ::FRAME_STRIDE] // FRAME_LEVEL)
        h.update(b"frames" + str(small.shape).encode() + small.tobytes())
    elif query.states is not None:
        q = np.rint(np.asarray(query.states, dtype=np.float64) * scale).astype(np.int64)
        h.update(b"states" + str(q.shape).encode() + q.tobytes())
    elif query.truth is not None:
        for t in query.truth:
            p = t.progress if t.progress is not None and math.isfinite(t.progress) else 0.0
            r = t.reward if math.isfinite(t.reward) else 0.0
            h.update(f"truth {round(p * scale)} {round(r * scale)} {bool(t.success)};".encode())
    return h.digest()


def uniforms(digest: bytes, k: int = 2) -> list[float]:
    """``k`` numbers in [0, 1) from the digest's consecutive 8-byte words."""
    return [int.from_bytes(digest[8 * i : 8 * i + 8], "little") / 2.0**64 for i in range(k)]


class SimulatedVlmRater:
    """Rates queries from simulator truth with VLM-like errors (see the module docstring).

    Args:
        bin_truth: the task's binning (``TaskSpec.bin_truth``).
        thresholds: the task's class boundaries per class count (``TaskSpec.oracle.thresholds``).
        config: the error model's settings.
        seed: part of every hash: another seed is another (equally good) rater.
        task_name: recorded in the fingerprint and settings.
    """

    def __init__(self, bin_truth: BinFn, thresholds: ThresholdFn, config: SimulatedVlmConfig | None = None,
                 seed: int | None = None, task_name: str = "", backend_id: str = BACKEND_ID) -> None:
        self.bin_truth = bin_truth
        self.thresholds = thresholds
        self.config = (config or SimulatedVlmConfig()).validate()
        self.seed = 0 if seed is None else int(seed)
        self.task_name = task_name
        self.backend_id = backend_id
        self.params = self.config.resolved()
        self.settings: dict[str, Any] = {"backend": BACKEND_ID, "task": task_name, "seed": self.seed,
                                         **self.params}
        self.fingerprint = json.dumps(self.settings, sort_keys=True)
        self.rated = 0
        self.errors = {NEAR_UP: 0, NEAR_DOWN: 0, FAR: 0}

    @classmethod
    def for_task(cls, task: TaskBinning, config: SimulatedVlmConfig | None = None,
                 seed: int | None = None, backend_id: str = BACKEND_ID) -> SimulatedVlmRater:
        """The rater for a ``TaskSpec``: its binning and its thresholds."""
        return cls(task.bin_truth, task.oracle.thresholds, config, seed=seed, task_name=task.name,
                   backend_id=backend_id)

    def error_probabilities(self, progress: float, label: int, n: int) -> tuple[float, float, float]:
        """``(P(down), P(up), P(far))`` for a state of true class ``label`` at ``progress``."""
        d_lo, d_hi = boundary_distances(progress, label, tuple(self.thresholds(n)))
        w = self.params["width"]
        down = 0.0 if d_lo is None else near_error_probability(d_lo, self.params["under_rate"], w)
        up = 0.0 if d_hi is None else near_error_probability(d_hi, self.params["over_rate"], w)
        if down > 0.0 and up > 0.0:  # a middle class: the nearer boundary sets the total, shared out
            near = max(down, up)
            down, up = near * down / (down + up), near * up / (down + up)
        far = self.params["far_rate"]
        total = down + up + far
        if total > 1.0:
            down, up, far = down / total, up / total, far / total
        return down, up, far

    def _label(self, query: RatingQuery) -> tuple[int, int, str]:
        """``(true class, rated class, error kind)``; ``ValueError`` for truth that cannot be binned."""
        assert query.truth is not None
        last = query.truth[-1]
        n = query.num_classes
        progress = last.progress if last.progress is not None else float("nan")
        label = int(self.bin_truth(progress, bool(last.success), n))
        if not math.isfinite(progress):  # a success without progress: no distance to go by
            progress = 1.0
        down, up, far = self.error_probabilities(progress, label, n)
        u, v = uniforms(content_digest(query, self.seed, self.params["state_decimals"]))
        if u < far:
            wrong = far_error_label(label, n, self.params["over_rate"], self.params["under_rate"], v)
            return label, wrong, FAR
        if u < far + down:
            return label, label - 1, NEAR_DOWN
        if u < far + down + up:
            return label, label + 1, NEAR_UP
        return label, label, NO_ERROR

    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """One result per query: a class (possibly wrong, as a VLM's), or an abstention."""
        out = []
        for q in queries:
            if q.truth is None:
                out.append(RatingResult.abstain(q, self.backend_id, "no simulator truth in query"))
                continue
            try:
                with Stopwatch() as sw:
                    truth, rated, kind = self._label(q)
            except ValueError as exc:  # NaN progress on a step that is not a success, no thresholds
                out.append(RatingResult.abstain(q, self.backend_id, f"bad_truth: {exc}"))
                continue
            self.rated += 1
            if kind != NO_ERROR:
                self.errors[kind] += 1
            out.append(RatingResult(query_id=q.query_id, label=rated, num_classes=q.num_classes,
                                    backend=self.backend_id, latency_s=sw.elapsed,
                                    rationale=f"simulated VLM; truth class {truth}",
                                    extra={"error": kind}))
        return out
