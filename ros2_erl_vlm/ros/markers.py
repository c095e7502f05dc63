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


#: Namespaces of the arm bridge's safety markers.
NS_BOX = "workspace_box"
NS_TARGET = "target"
NS_MEASURED = "measured"
NS_SAFETY_TEXT = "safety_state"

#: The 12 edges of a box as pairs of corner indices (corner i: bit 0 x, bit 1 y, bit 2 z = high).
_BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def safety_markers(low: Sequence[float], high: Sequence[float], target: Sequence[float] | None,
                   measured: Sequence[float] | None, text: str, stopped: bool, frame_id: str,
                   stamp: Any) -> Any:
    """The arm bridge's picture for rviz: the workspace box (lines), the commanded target (blue
    sphere) and the measured end effector (white sphere), and the safety state as text over the
    box (green running, red stopped)."""
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    def marker(ns: str, kind: int, color: tuple[float, float, float, float], scale: float) -> Any:
        m = Marker(ns=ns, id=0, type=kind, action=Marker.ADD)
        m.header.frame_id, m.header.stamp = frame_id, stamp
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = scale
        m.color = ColorRGBA(r=color[0], g=color[1], b=color[2], a=color[3])
        return m

    out = MarkerArray()
    box = marker(NS_BOX, Marker.LINE_LIST, (1.0, 0.8, 0.0, 1.0), 0.004)
    corners = [[(high if (i >> axis) & 1 else low)[axis] for axis in range(3)] for i in range(8)]
    for a, b in _BOX_EDGES:
        box.points += [Point(x=float(corners[a][0]), y=float(corners[a][1]), z=float(corners[a][2])),
                       Point(x=float(corners[b][0]), y=float(corners[b][1]), z=float(corners[b][2]))]
    out.markers.append(box)
    for ns, pos, color in ((NS_TARGET, target, (0.2, 0.4, 1.0, 0.9)),
                           (NS_MEASURED, measured, (1.0, 1.0, 1.0, 0.9))):
        m = marker(ns, Marker.SPHERE, color, 0.02)
        if pos is None:
            m.action = Marker.DELETE
        else:
            m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in pos)
        out.markers.append(m)
    label = marker(NS_SAFETY_TEXT, Marker.TEXT_VIEW_FACING,
                   (1.0, 0.2, 0.2, 1.0) if stopped else (0.3, 1.0, 0.3, 1.0), 0.03)
    label.text = text
    label.pose.position.x = float((low[0] + high[0]) / 2)
    label.pose.position.y = float((low[1] + high[1]) / 2)
    label.pose.position.z = float(high[2]) + 0.05
    out.markers.append(label)
    return out
