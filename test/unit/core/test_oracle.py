"""Oracle rater: truth binning and label-noise rates."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.rater import Rater, RatingQuery, SimTruth
from ros2_erl_vlm.envs.tasks import load_task
from ros2_erl_vlm.raters.oracle import OracleConfig, OracleRater, corrupt_label


def _bin(progress: float, success: bool, n: int) -> int:
    if success:
        return n - 1
    return min(int(progress * (n - 1) * 2), n - 2) if progress > 0.25 else 0


def _query(progress: float, success: bool = False, n: int = 3) -> RatingQuery:
    names = ("Bad", "Average", "Good")[:n] if n == 3 else ("Bad", "Good")
    return RatingQuery(0, (0,), "do it", names, truth=(SimTruth(progress * 10, success, progress),))


def test_noiseless_oracle_is_truth() -> None:
    rater = OracleRater(_bin)
    assert isinstance(rater, Rater)
    out = rater.rate([_query(0.1), _query(0.6), _query(0.9, success=True)])
    assert [r.label for r in out] == [0, 1, 2]


@pytest.mark.parametrize("mode", ["symmetric", "neighbor"])
def test_noise_rate_is_as_configured(mode: str) -> None:
    rater = OracleRater(_bin, OracleConfig(noise=0.2, noise_mode=mode), seed=0)
    qs = [_query(0.6) for _ in range(5000)]  # truth class 1
    labels = np.array([r.label for r in rater.rate(qs)])
    flip_rate = float((labels != 1).mean())
    assert abs(flip_rate - 0.2) < 0.02
    wrong = labels[labels != 1]
    assert set(wrong.tolist()) <= {0, 2}
    assert abs((wrong == 0).mean() - 0.5) < 0.06  # both directions equally likely


@pytest.mark.parametrize(("mode", "allowed_distances"), [
    ("neighbor", {1}),  # neighbour noise moves exactly one class
    ("symmetric", {1, 2, 3, 4}),  # symmetric noise moves to any other class
])
def test_noise_moves_to_another_valid_class(mode: str, allowed_distances: set[int]) -> None:
    rng = np.random.default_rng(0)
    moves = [(n, label, corrupt_label(label, n, mode, rng))
             for n in range(2, 6) for label in range(n) for _ in range(20)]
    assert [m for m in moves if abs(m[2] - m[1]) not in allowed_distances] == []
    assert [m for m in moves if not 0 <= m[2] < m[0]] == []


def test_no_truth_is_abstention_not_a_class() -> None:
    q = RatingQuery(0, (0,), "x", ("Bad", "Good"), frames=np.full((1, 8, 8, 3), 9, np.uint8))
    (res,) = OracleRater(_bin).rate([q])
    assert res.abstained
    assert res.label is None
    assert "truth" in res.abstain_reason


def test_unusable_truth_is_abstention() -> None:
    rater = OracleRater(load_task("drawer-open-v3").bin_truth)
    [res] = rater.rate([RatingQuery(0, (0,), "x", ("Bad", "Good"),
                                    truth=(SimTruth(float("nan"), False, float("nan")),))])
    assert res.abstained
    assert res.abstain_reason.startswith("bad_truth:")


def test_simulated_failures_are_abstentions() -> None:
    rater = OracleRater(_bin, OracleConfig(abstain_rate=0.5), seed=1)
    out = rater.rate([_query(0.6) for _ in range(400)])
    frac = np.mean([r.abstained for r in out])
    assert 0.4 < frac < 0.6
    assert {r.label for r in out if not r.abstained} <= {1}


@pytest.mark.parametrize(("kw", "match"), [
    ({"noise": 1.5}, "noise must be in"),
    ({"noise_mode": "gaussian"}, "noise_mode"),
])
def test_bad_oracle_config(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OracleConfig(**kw).validate()


def test_uniform_is_the_symmetric_mode_under_its_documented_name() -> None:
    qs = [_query(p) for p in np.linspace(0, 0.99, 300)]
    uniform = OracleRater(_bin, OracleConfig(noise=0.3, noise_mode="uniform"), seed=4).rate(qs)
    symmetric = OracleRater(_bin, OracleConfig(noise=0.3, noise_mode="symmetric"), seed=4).rate(qs)
    assert [r.label for r in uniform] == [r.label for r in symmetric]
