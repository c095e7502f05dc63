"""The simulated VLM rater: errors near class boundaries, to the neighbouring class, deterministic
per query content, abstentions without truth, checked settings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, Rater, RatingQuery, SimTruth
from ros2_erl_vlm.raters.simulated_vlm import SimulatedVlmConfig, SimulatedVlmRater, boundary_distances

#: Class boundaries of the test task, per class count.
THRESHOLDS = {2: (0.5,), 3: (1 / 3, 2 / 3), 5: (0.2, 0.4, 0.6, 0.8)}
STATE_DIM = 39


def _bin(progress: float, success: bool, n: int) -> int:
    if success:
        return n - 1
    if not np.isfinite(progress):
        raise ValueError(f"progress must be finite, got {progress!r}")
    return sum(1 for t in THRESHOLDS[n] if min(max(progress, 0.0), 1.0) >= t)


def _rater(seed: int = 0, **settings: float) -> SimulatedVlmRater:
    return SimulatedVlmRater(_bin, lambda n: THRESHOLDS[n], SimulatedVlmConfig(**settings), seed=seed)


def _queries(progress: Sequence[float], n: int, seed: int = 0, grid: bool = False) -> list[RatingQuery]:
    """One query per progress value, each with its own random state (on the 1e-3 grid if ``grid``)."""
    rng = np.random.default_rng(seed)
    states = rng.uniform(-1, 1, (len(progress), STATE_DIM))
    if grid:
        states = np.round(states, 3)
    return [RatingQuery(episode=0, steps=(0,), instruction="do the task", class_names=DEFAULT_CLASS_NAMES[n],
                        states=states[i : i + 1], truth=(SimTruth(10 * p, False, float(p)),), query_id=f"q{i}")
            for i, p in enumerate(progress)]


def _labels(rater: SimulatedVlmRater, queries: list[RatingQuery]) -> np.ndarray:
    return np.array([r.label for r in rater.rate(queries)])


def _truth(progress: Sequence[float], n: int) -> np.ndarray:
    return np.array([_bin(p, False, n) for p in progress])


def _spread(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, count)


def test_is_a_rater() -> None:
    assert isinstance(_rater(), Rater)


def test_neighbour_errors_dominate() -> None:
    progress = _spread(4000)
    truth, labels = _truth(progress, 5), _labels(_rater(), _queries(progress, 5))
    off = np.abs(labels - truth)[labels != truth]
    assert np.mean(off == 1) > 0.75


def test_errors_are_likelier_near_a_boundary_than_far_from_it() -> None:
    rng = np.random.default_rng(2)
    near = rng.uniform(0.49, 0.51, 3000)  # within 0.02 class widths of the boundary at 0.5
    far = np.concatenate([rng.uniform(0.0, 0.05, 1500), rng.uniform(0.95, 1.0, 1500)])  # ~1 width away
    rater = _rater()
    near_err = np.mean(_labels(rater, _queries(near, 2, seed=3)) != _truth(near, 2))
    far_err = np.mean(_labels(rater, _queries(far, 2, seed=4)) != _truth(far, 2))
    assert near_err > far_err + 0.1


def test_error_probability_falls_off_with_distance() -> None:
    rater = _rater()
    p_err = [sum(rater.error_probabilities(p, 0, 2)) for p in (0.499, 0.45, 0.35, 0.2, 0.0)]
    assert p_err == sorted(p_err, reverse=True)


def test_far_error_rate_at_default_quality_is_at_least_2_percent_with_3_classes() -> None:
    progress = _spread(4000)
    truth, labels = _truth(progress, 3), _labels(_rater(), _queries(progress, 3))
    assert np.mean(np.abs(labels - truth) >= 2) >= 0.02


def test_far_flips_at_default_quality_are_at_least_2_percent_with_2_classes() -> None:
    progress = _spread(4000)
    truth, labels = _truth(progress, 2), _labels(_rater(), _queries(progress, 2))
    far_from_boundary = np.abs(progress - 0.5) >= 0.25  # half a class width or more
    assert np.mean((labels != truth) & far_from_boundary) >= 0.02


def test_tiny_perturbation_of_the_states_gives_the_same_labels() -> None:
    progress = _spread(1000)
    queries = _queries(progress, 3, grid=True)
    rng = np.random.default_rng(5)
    moved = [RatingQuery(q.episode, q.steps, q.instruction, q.class_names, query_id=q.query_id, truth=q.truth,
                         states=q.states + rng.choice([-1e-6, 1e-6], q.states.shape))
             for q in queries]
    rater = _rater()
    assert _labels(rater, moved).tolist() == _labels(rater, queries).tolist()


def test_asking_twice_gives_the_same_labels() -> None:
    queries = _queries(_spread(500), 3)
    rater = _rater()
    assert _labels(rater, queries).tolist() == _labels(rater, queries).tolist()


def test_an_answer_does_not_depend_on_what_was_asked_before() -> None:
    queries = _queries(_spread(300), 3)
    alone = [_labels(_rater(), [q])[0] for q in queries]
    assert _labels(_rater(), queries[::-1]).tolist()[::-1] == alone


def test_identical_frames_get_the_same_answer_whatever_the_states() -> None:
    frames = np.random.default_rng(6).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    truth = (SimTruth(4.8, False, 0.48),)  # near the boundary: errors are likely
    queries = [RatingQuery(0, (0,), "do the task", ("Bad", "Good"), frames=frames, truth=truth,
                           states=np.full((1, 4), float(i)), query_id=str(i)) for i in range(50)]
    assert len(set(_labels(_rater(), queries).tolist())) == 1


def test_quality_one_is_noiseless() -> None:
    progress = np.concatenate([_spread(2000), [1 / 3, 2 / 3, 0.0, 1.0]])
    assert _labels(_rater(quality=1.0), _queries(progress, 3)).tolist() == _truth(progress, 3).tolist()


def test_default_quality_is_noisy() -> None:
    progress = _spread(1000)
    assert np.mean(_labels(_rater(), _queries(progress, 3)) != _truth(progress, 3)) > 0.1


@pytest.mark.parametrize(("over_rate", "under_rate", "direction"), [(0.5, 0.0, 1), (0.0, 0.5, -1)])
def test_over_and_under_rates_set_the_error_direction(over_rate: float, under_rate: float,
                                                      direction: int) -> None:
    progress = _spread(4000)
    truth = _truth(progress, 5)
    labels = _labels(_rater(over_rate=over_rate, under_rate=under_rate), _queries(progress, 5))
    signed = np.sign(labels - truth) * direction
    assert np.sum(signed > 0) > 5 * np.sum(signed < 0)


def test_success_is_the_top_class_whatever_the_progress() -> None:
    q = RatingQuery(0, (0,), "do the task", ("Bad", "Good"), truth=(SimTruth(2.0, True, 0.2),))
    assert _labels(_rater(quality=1.0), [q]).tolist() == [1]


def test_distances_are_in_widths_of_the_class() -> None:
    assert boundary_distances(0.1, 0, (0.2, 0.6)) == (None, pytest.approx(0.5))


def test_no_truth_is_an_abstention() -> None:
    q = RatingQuery(0, (0,), "x", ("Bad", "Good"), frames=np.zeros((1, 8, 8, 3), np.uint8))
    (res,) = _rater().rate([q])
    assert res.label is None
    assert res.abstain_reason == "no simulator truth in query"


def test_unusable_truth_is_an_abstention() -> None:
    q = RatingQuery(0, (0,), "x", ("Bad", "Good"), truth=(SimTruth(float("nan"), False, float("nan")),))
    (res,) = _rater().rate([q])
    assert res.label is None
    assert res.abstain_reason.startswith("bad_truth:")


def test_derived_settings_follow_quality() -> None:
    assert SimulatedVlmConfig(quality=0.5).resolved() == {
        "quality": 0.5, "width": 0.65, "over_rate": 0.25, "under_rate": 0.25, "far_rate": 0.04, "state_decimals": 3}


def test_a_given_setting_overrides_the_derived_one() -> None:
    assert SimulatedVlmConfig(quality=0.5, far_rate=0.1).resolved()["far_rate"] == 0.1


@pytest.mark.parametrize(("settings", "match"), [
    ({"quality": 1.5}, r"simulated_vlm quality must be in \[0, 1\], got 1.5"),
    ({"width": -0.1}, "simulated_vlm width must be in"),
    ({"over_rate": 2.0}, "simulated_vlm over_rate must be in"),
    ({"under_rate": "high"}, "simulated_vlm under_rate must be a number"),
    ({"far_rate": float("nan")}, "simulated_vlm far_rate must be a finite number"),
    ({"state_decimals": 2.5}, "simulated_vlm state_decimals must be an integer"),
])
def test_bad_settings_name_the_setting(settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimulatedVlmConfig(**settings).validate()


def test_the_rater_records_its_full_settings() -> None:
    assert set(_rater(seed=3).settings) == {"backend", "task", "seed", "quality", "width", "over_rate",
                                            "under_rate", "far_rate", "state_decimals"}
