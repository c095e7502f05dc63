"""Rated points -> MarkerArray: a clean redraw each time, one coloured sphere per point, captions."""

from __future__ import annotations

import pytest

from ros2_erl_vlm.core.rating.rated_points import RatedPoint
from ros2_erl_vlm.ros.markers import NS_POINTS, NS_TEXT, rating_markers

pytestmark = pytest.mark.ros


def _pt(i: int, label: int | None) -> RatedPoint:
    return RatedPoint(f"r{i}", 0, i, (0.1 * i, 0.5, 0.2), label,
                      "abstained" if label is None else ("Bad", "Average", "Good")[label], 3, 0.5)


def test_markers_redraw_spheres_by_class_and_caption_the_newest() -> None:
    from builtin_interfaces.msg import Time
    from visualization_msgs.msg import Marker

    arr = rating_markers([_pt(0, 0), _pt(1, 2), _pt(2, None)], "world", Time(sec=3), 0.02, text_labels=2)
    clear, spheres, *texts = arr.markers
    assert clear.action == Marker.DELETEALL
    assert spheres.ns == NS_POINTS
    assert spheres.type == Marker.SPHERE_LIST
    assert spheres.header.frame_id == "world"
    assert [round(p.x, 3) for p in spheres.points] == [0.0, 0.1, 0.2]
    assert (spheres.colors[0].r, spheres.colors[0].g) == (1.0, 0.0)  # Bad: red
    assert (spheres.colors[1].r, spheres.colors[1].g) == (0.0, 1.0)  # Good: green
    assert spheres.scale.x == pytest.approx(0.02)
    assert [t.text for t in texts] == ["Good (0.50)", "abstained (0.50)"]
    assert [t.ns for t in texts] == [NS_TEXT] * len(texts)
    assert [t.type for t in texts] == [Marker.TEXT_VIEW_FACING] * len(texts)


def test_no_points_is_just_the_clear() -> None:
    from builtin_interfaces.msg import Time

    assert len(rating_markers([], "world", Time(), 0.02, 5).markers) == 1


def test_more_captions_allowed_than_points_gives_every_point_one() -> None:
    from builtin_interfaces.msg import Time

    assert len(rating_markers([_pt(0, 1)], "world", Time(), 0.02, 5).markers) == 3


def test_safety_markers_draw_the_box_target_measured_and_state() -> None:
    from visualization_msgs.msg import Marker

    from ros2_erl_vlm.ros.markers import NS_BOX, NS_MEASURED, NS_SAFETY_TEXT, NS_TARGET, safety_markers

    arr = safety_markers([-0.2, 0.4, 0.05], [0.2, 0.8, 0.3], [0.0, 0.6, 0.2], None, "stopped | STOP: e-stop",
                         True, "base_link", None)
    by_ns = {m.ns: m for m in arr.markers}
    box = by_ns[NS_BOX]
    assert box.type == Marker.LINE_LIST and len(box.points) == 24  # 12 edges
    xs = sorted({round(p.x, 3) for p in box.points})
    assert xs == [-0.2, 0.2] and box.header.frame_id == "base_link"
    assert (by_ns[NS_TARGET].pose.position.x, by_ns[NS_TARGET].pose.position.z) == (0.0, 0.2)
    assert by_ns[NS_MEASURED].action == Marker.DELETE  # no measured pose yet
    text = by_ns[NS_SAFETY_TEXT]
    assert "e-stop" in text.text and text.color.r > text.color.g  # red when stopped
