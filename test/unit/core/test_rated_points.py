"""Rated points for rviz: class colours, the request/rating join, bounds, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.rated_points import ABSTAIN_RGBA, RatedPoints, class_color

NAMES = ("Bad", "Average", "Good")


def test_class_colors_run_red_to_green() -> None:
    assert class_color(0, 3) == (1.0, 0.0, 0.0, 1.0)
    assert class_color(1, 3) == (1.0, 1.0, 0.0, 1.0)
    assert class_color(2, 3) == (0.0, 1.0, 0.0, 1.0)
    assert class_color(1, 2) == (0.0, 1.0, 0.0, 1.0)


def test_abstention_has_its_own_colour() -> None:
    assert class_color(None, 3) == ABSTAIN_RGBA


def test_class_colour_outside_the_classes_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        class_color(3, 3)


STATES = np.arange(2 * 8, dtype=float).reshape(2, 8)


def _with_request() -> RatedPoints:
    pts = RatedPoints(position_indices=(4, 5, 6))
    pts.add_request("r1", 7, [10, 11], STATES, NAMES, progress=[0.1, 0.9])
    return pts


def test_rating_of_an_unknown_request_draws_nothing() -> None:
    assert _with_request().add_rating("unknown", 1) is None


def test_rating_lands_at_the_last_state_of_its_segment() -> None:
    pts = _with_request()
    p = pts.add_rating("r1", 2)
    assert p is not None
    assert p.position == (12.0, 13.0, 14.0)
    assert (p.episode, p.step) == (7, 11)
    assert p.class_name == "Good"
    assert p.text() == "Good (0.90)"
    assert pts.version == 1


def test_each_request_is_drawn_once() -> None:
    pts = _with_request()
    pts.add_rating("r1", 2)
    assert pts.add_rating("r1", 2) is None


def test_abstention_is_drawn_as_abstained_and_counted() -> None:
    pts = _with_request()
    pts.add_rating("r1", 2)
    pts.add_request("r2", 7, [12], STATES[:1], NAMES)
    a = pts.add_rating("r2", None)
    assert a is not None
    assert a.class_name == "abstained"
    assert a.text() == "abstained"
    assert pts.class_counts() == {"Good": 1, "abstained": 1}


def _bounded() -> tuple[RatedPoints, np.ndarray]:
    pts = RatedPoints(max_points=3, max_pending=2)
    s = np.zeros((1, 3))
    for i in range(4):
        pts.add_request(f"r{i}", 0, [i], s, NAMES)
    return pts, s


def test_pending_requests_are_bounded() -> None:
    pts, _ = _bounded()
    assert pts.add_rating("r0", 0) is None
    assert pts.add_rating("r1", 0) is None  # dropped waiting


def test_points_are_bounded() -> None:
    pts, s = _bounded()
    for i in range(2, 4):
        pts.add_rating(f"r{i}", 1)
    for i in range(4, 8):
        pts.add_request(f"r{i}", 0, [i], s, NAMES)
        pts.add_rating(f"r{i}", 0)
    assert [p.request_id for p in pts.points] == ["r5", "r6", "r7"]


def test_bad_input_is_a_clear_error() -> None:
    pts = RatedPoints()
    with pytest.raises(ValueError, match="one state per step"):
        pts.add_request("r", 0, [1, 2], np.zeros((1, 3)), NAMES)
    with pytest.raises(ValueError, match="position_indices need 3"):
        pts.add_request("r", 0, [1], np.zeros((1, 2)), NAMES)
    with pytest.raises(ValueError, match="not finite"):
        pts.add_request("r", 0, [1], np.array([[np.nan, 0, 0]]), NAMES)
    pts.add_request("r", 0, [1], np.zeros((1, 3)), NAMES)
    with pytest.raises(ValueError, match="label 5"):
        pts.add_rating("r", 5)
    with pytest.raises(ValueError, match="three non-negative"):
        RatedPoints(position_indices=(0, 1))
