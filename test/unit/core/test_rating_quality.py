"""Scoring ratings against simulator truth: hand-computed confusion matrices and truth records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.quality import (
    agreement,
    describe_round_quality,
    ratings_agreement,
    record_truth_class,
    round_quality,
    truth_meta,
)
from ros2_erl_vlm.core.rating.rater import SimTruth


def _bin(progress: float, success: bool, n: int) -> int:
    """Two thresholds at 0.3 and 0.7 (n = 3), success is the top class."""
    return n - 1 if success else int(progress >= 0.3) + int(progress >= 0.7)


def test_truth_meta_of_no_segment_is_empty() -> None:
    assert truth_meta(None) == {}
    assert truth_meta(()) == {}


def test_truth_meta_takes_the_segments_last_step() -> None:
    seg = (SimTruth(1.0, False, 0.1), SimTruth(4.5, True, 0.9))
    assert truth_meta(seg) == {"truth_progress": 0.9, "truth_success": True, "truth_reward": 4.5}


def test_truth_meta_drops_non_finite_values() -> None:
    odd = truth_meta((SimTruth(math.nan, False, None),))
    assert odd == {"truth_progress": None, "truth_success": False, "truth_reward": None}


def test_record_truth_class_from_stored_truth() -> None:
    assert record_truth_class({"truth_success": True, "truth_progress": 0.0}, _bin, 3) == 2
    assert record_truth_class({"truth_success": False, "truth_progress": 0.5}, _bin, 3) == 1
    assert record_truth_class({"truth_success": False, "truth_progress": None}, _bin, 3) is None


def test_record_truth_class_from_the_oracles_rationale() -> None:
    # Older logs: the oracle's rationale names its noiseless class; other backends' text is not truth.
    assert record_truth_class({"backend": "oracle", "rationale": "truth class 1"}, _bin, 3) == 1
    assert record_truth_class({"backend": "oracle", "rationale": "truth class 7"}, _bin, 3) is None
    assert record_truth_class({"backend": "openai", "rationale": "truth class 1"}, _bin, 3) is None


def test_agreement_by_hand() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    rated = np.array([0, 0, 1, -1, 1, 0, 2, 2])  # one abstention on a class-0 state
    success = np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=bool)
    out = agreement(truth, rated, success, 3)
    assert out["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert out["abstentions_by_truth"] == [1, 0, 0]
    assert out["answered"] == 7
    assert out["abstained"] == 1
    assert out["accuracy"] == pytest.approx(5 / 7, abs=1e-4)
    # kappa: p_e = (3*3 + 2*2 + 2*2) / 49 = 17/49
    assert out["cohen_kappa"] == pytest.approx((5 / 7 - 17 / 49) / (1 - 17 / 49), abs=1e-4)
    assert out["recall_per_class"] == [pytest.approx(2 / 3, abs=1e-4), 0.5, 1.0]
    assert out["truth_class_counts"] == [4, 2, 2]
    assert out["truly_above_bottom"] == 0.5
    assert out["top_class_vs_success"] == {"precision": 1.0, "recall": 1.0}


def test_ratings_agreement_over_log_records_skips_records_without_truth() -> None:
    records = [
        {"label": 0, "truth_success": False, "truth_progress": 0.1},
        {"label": 2, "truth_success": False, "truth_progress": 0.1},   # a flipped label
        {"label": 1, "truth_success": False, "truth_progress": 0.5},
        {"label": None, "truth_success": True, "truth_progress": 0.95},  # an abstention
        {"label": 1, "backend": "openai", "rationale": "looks average"},  # real robot: no truth
    ]
    out = ratings_agreement(records, _bin, 3)
    assert out["confusion"] == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert out["abstentions_by_truth"] == [0, 0, 1]
    assert out["without_truth"] == 1
    assert out["truly_above_bottom"] == 0.5
    assert out["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["top_class_vs_success"] == {"precision": 0.0, "recall": None}


def _segment(progress: float, success: bool = False) -> tuple[SimTruth, ...]:
    """A two-step segment; its last step is what counts."""
    return SimTruth(0.0, False, 0.0), SimTruth(1.0, success, progress)


def test_round_quality_by_hand() -> None:
    seg = _segment
    answers = [
        (seg(0.1), 0),          # bottom, right
        (seg(0.2), 2),          # bottom, flipped
        (seg(0.5), 1),          # middle, right
        (seg(0.1), None),       # bottom, abstained: counts for above-bottom, not for agreement
        (seg(0.2, True), 2),    # success, right
        (None, 1),              # no truth (real robot): ignored
        ((SimTruth(1.0, False, None),), 0),  # no progress: ignored
    ]
    q = round_quality(answers, _bin, 3)
    assert q == {"truth_above_bottom": pytest.approx(2 / 5), "truth_agreement": pytest.approx(3 / 4)}
    assert describe_round_quality(q) == ("rater agreed with simulator truth on 75%, "
                                         "40% truly above the bottom class")


def test_round_quality_when_all_abstained_is_above_bottom_only() -> None:
    assert round_quality([(_segment(0.9), None)], _bin, 3) == {"truth_above_bottom": 1.0}


def test_round_quality_without_truth_is_empty() -> None:
    assert round_quality([(None, 1)], _bin, 3) == {}
    assert describe_round_quality({}) == ""
