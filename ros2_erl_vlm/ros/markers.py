"""Rated points as a ``visualization_msgs/MarkerArray`` for rviz."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ros2_erl_vlm.core.rating.rated_points import RatedPoint, class_color

#: Marker namespaces (rviz lists them and can toggle each).
NS_POINTS = "rated_points"
NS_TEXT = "rating_text"


def rating_markers(points: Sequence[RatedPoint], frame_id: str, stamp: Any, point_size: float,
                   text_labels: int) -> Any:
    """A MarkerArray that replaces whatever was drawn before: a DELETEALL, one sphere per point
    (coloured by class, grey for abstentions), and a caption over the newest ``text_labels``."""
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.header.frame_id = frame_id
    clear.header.stamp = stamp
    out.markers.append(clear)
    if not points:
        return out
    spheres = Marker(ns=NS_POINTS, id=0, type=Marker.SPHERE_LIST, action=Marker.ADD)
    spheres.header.frame_id = frame_id
    spheres.header.stamp = stamp
    spheres.pose.orientation.w = 1.0
    spheres.scale.x = spheres.scale.y = spheres.scale.z = float(point_size)
    for p in points:
        spheres.points.append(Point(x=p.position[0], y=p.position[1], z=p.position[2]))
        r, g, b, a = class_color(p.label, p.num_classes)
        spheres.colors.append(ColorRGBA(r=r, g=g, b=b, a=a))
    spheres.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    out.markers.append(spheres)
    for i, p in enumerate(points[max(0, len(points) - text_labels):] if text_labels > 0 else []):
        text = Marker(ns=NS_TEXT, id=i, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, text=p.text())
        text.header.frame_id = frame_id
        text.header.stamp = stamp
        text.pose.position.x, text.pose.position.y = p.position[0], p.position[1]
        text.pose.position.z = p.position[2] + 2.0 * float(point_size)
        text.pose.orientation.w = 1.0
        text.scale.z = 1.5 * float(point_size)
        r, g, b, a = class_color(p.label, p.num_classes)
        text.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        out.markers.append(text)
    return out
