"""The oracle rater: ratings from simulator truth, with label noise of a known rate.

It bins the simulator's truth into ``n`` classes exactly as the task definition says
(``TaskSpec.bin_truth``: success is the top class, otherwise task progress is binned by the
task's thresholds) and then corrupts the label with probability ``noise``:

* ``uniform`` (also accepted under its older name ``symmetric``): replaced by a uniformly random
  *other* class;
* ``neighbor``: moved one class up or down (inward at the ends).

So experiments can emulate a rater of known accuracy (for errors shaped like a VLM's, near class
boundaries, see :mod:`.simulated_vlm`). A segment of several steps is rated by its
last step (its outcome). A query without truth (real hardware) is an abstention, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult, Stopwatch
from ros2_erl_vlm.core.settings import check_declared, setting

#: ``uniform`` is the documented name; ``symmetric`` is kept as an alias of it (same behaviour).
NOISE_MODES = ("uniform", "symmetric", "neighbor")
UNIFORM_MODES = ("uniform", "symmetric")

#: ``bin_truth(progress, success, n) -> class``; normally ``TaskSpec.bin_truth``.
BinFn = Callable[[float, bool, int], int]


@dataclass(frozen=True)
class OracleConfig:
    """Noise model of the oracle, each field with its valid values
    (:func:`~ros2_erl_vlm.core.settings.setting`; the ``rater.*`` node parameters use the same
    declaration)."""

    noise: float = setting(0.0, low=0.0, high=1.0)
    noise_mode: str = setting("symmetric", choices=NOISE_MODES)
    abstain_rate: float = setting(0.0, low=0.0, high=1.0, high_open=True)

    def validate(self) -> OracleConfig:
        """Raise ``ValueError`` naming the first bad field."""
        check_declared(self, "oracle ")
        return self


def corrupt_label(label: int, n: int, mode: str, rng: np.random.Generator) -> int:
    """A wrong label for ``label`` under the noise ``mode`` (always differs from ``label``)."""
    if mode in UNIFORM_MODES:
        other = int(rng.integers(0, n - 1))
        return other if other < label else other + 1
    if label == 0:
        return 1
    if label == n - 1:
        return n - 2
    return label + (1 if rng.random() < 0.5 else -1)


class OracleRater:
    """Rates queries from their simulator truth (see module docstring)."""

    def __init__(self, bin_truth: BinFn, config: OracleConfig | None = None, seed: int | None = None,
                 backend_id: str = "oracle") -> None:
        self.bin_truth = bin_truth
        self.config = (config or OracleConfig()).validate()
        self.rng = np.random.default_rng(seed)
        self.backend_id = backend_id
        self.flipped = 0
        self.rated = 0

    def true_label(self, query: RatingQuery) -> int | None:
        """The noiseless class of a query (None without truth)."""
        if query.truth is None:
            return None
        last = query.truth[-1]
        progress = last.progress if last.progress is not None else float("nan")
        return int(self.bin_truth(progress, bool(last.success), query.num_classes))

    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """One result per query: a (possibly corrupted) class, or an abstention."""
        out = []
        for q in queries:
            try:
                with Stopwatch() as sw:
                    label = self.true_label(q)
            except ValueError as exc:  # e.g. NaN progress on a step that is not a success
                out.append(RatingResult.abstain(q, self.backend_id, f"bad_truth: {exc}"))
                continue
            if label is None:
                out.append(RatingResult.abstain(q, self.backend_id, "no simulator truth in query"))
                continue
            if self.config.abstain_rate and self.rng.random() < self.config.abstain_rate:
                out.append(RatingResult.abstain(q, self.backend_id, "simulated rater failure"))
                continue
            rated = label
            if self.config.noise and self.rng.random() < self.config.noise:
                rated = corrupt_label(label, q.num_classes, self.config.noise_mode, self.rng)
                self.flipped += 1
            self.rated += 1
            out.append(RatingResult(query_id=q.query_id, label=rated, num_classes=q.num_classes,
                                    backend=self.backend_id, latency_s=sw.elapsed,
                                    rationale=f"truth class {label}"))
        return out
