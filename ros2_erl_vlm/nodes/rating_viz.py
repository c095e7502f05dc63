"""``rating_viz``: the rater's answers drawn where they were given, for rviz.

Subscribes to ``rating_requests`` (the learner's requests, with each segment's states) and
``ratings``; joins them by request id and publishes ``rating_markers``
(visualization_msgs/MarkerArray, reliable, transient-local: a viewer that joins later gets the
current picture): one sphere per rated segment at its last state's position (``position_indices``
of the state, MetaWorld's end-effector xyz by default), red (worst class) to green (best), grey for
abstentions, with the class (and, in simulation, the true task progress) written over the newest
``text_labels``. ``rviz/erl_vlm.rviz`` shows them next to the camera images.

It only listens: a malformed request or rating is counted and dropped, and everything it keeps is
bounded (``max_points``; requests waiting for their rating).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from erl_vlm.msg import Rating, RatingRequest
from visualization_msgs.msg import MarkerArray

from ros2_erl_vlm.core.rating.rated_points import RatedPoints
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.markers import rating_markers
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.params import ParamError


class RatingViz(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("requests", "bad_requests", "ratings", "bad_ratings", "unmatched_ratings",
                "markers_published")

    def __init__(self) -> None:
        super().__init__("rating_viz")
        p = self.p
        try:
            self.points = RatedPoints([int(i) for i in p["position_indices"]], int(p["max_points"]))
        except ValueError as exc:
            raise ParamError(f"parameter 'position_indices': {exc}") from exc
        self.published_version = -1
        self.pub = self.create_publisher(MarkerArray, qos.RATING_MARKERS, qos.MARKERS_QOS)
        self.create_subscription(RatingRequest, qos.RATING_REQUESTS, self.on_request, qos.RATING_QOS)
        self.create_subscription(Rating, qos.RATINGS, self.on_rating, qos.RATING_QOS)
        self.wall_timer(float(p["publish_period_s"]), self.publish)
        self.publish(force=True)  # an empty picture at once: rviz shows the display as OK

    def on_request(self, msg: RatingRequest) -> None:
        """Remember where the segment ended."""
        t, dim = len(msg.steps), int(msg.state_dim)
        try:
            if t == 0 or dim <= 0 or len(msg.states) != t * dim:
                raise ValueError(f"{len(msg.states)} state values for {t} steps of state_dim {dim}")
            progress = list(msg.progress) if msg.has_truth and len(msg.progress) == t else None
            self.points.add_request(str(msg.request_id), int(msg.episode), list(msg.steps),
                                    np.asarray(msg.states, dtype=np.float64).reshape(t, dim),
                                    list(msg.class_names), progress)
        except ValueError as exc:
            self.count("bad_requests", f"dropped request {msg.request_id}: {exc}")
            return
        self.counters["requests"] += 1

    def on_rating(self, msg: Rating) -> None:
        """Place the rating at its request's position."""
        label = None if int(msg.label) == Rating.ABSTAINED else int(msg.label)
        try:
            point = self.points.add_rating(str(msg.request_id), label)
        except ValueError as exc:
            self.count("bad_ratings", f"dropped rating {msg.request_id}: {exc}")
            return
        if point is None:  # answered from a log for a request sent before this node started, ...
            self.counters["unmatched_ratings"] += 1
            return
        self.counters["ratings"] += 1

    def publish(self, force: bool = False) -> None:
        """Republish the markers when the points changed."""
        if not force and self.points.version == self.published_version:
            return
        self.published_version = self.points.version
        self.pub.publish(rating_markers(self.points.points, str(self.p["frame_id"]),
                                        self.get_clock().now().to_msg(), float(self.p["point_size"]),
                                        int(self.p["text_labels"])))
        self.counters["markers_published"] += 1

    def status(self) -> dict[str, Any]:
        """Points drawn, by class."""
        return {"points": len(self.points), "classes": self.points.class_counts()}


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``rating_viz`` executable."""
    return run_node(RatingViz, args)


if __name__ == "__main__":
    sys.exit(main())
