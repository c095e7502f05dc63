"""rating_viz on its own, in its own process: requests and ratings in over DDS, markers out (the
latest array also reaches a viewer that subscribes late); malformed input counted, not fatal."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.integration]


def test_ratings_become_coloured_markers(small_params: Any, tmp_path: Path, node_probe: Any) -> None:
    from erl_vlm.msg import Rating, RatingRequest
    from visualization_msgs.msg import Marker, MarkerArray

    from ros2_erl_vlm.ros import qos

    params = small_params("viz.yaml", {"/**/rating_viz": {"publish_period_s": 0.1, "text_labels": 5}})
    with node_probe("ros2_erl_vlm.nodes.rating_viz", "rating_viz_test",
                    ["--params-file", str(params), "-p", f'run_dir:="{tmp_path}"']) as pr:
        node = pr.node
        req_pub = node.create_publisher(RatingRequest, qos.RATING_REQUESTS, qos.RATING_QOS)
        rating_pub = node.create_publisher(Rating, qos.RATINGS, qos.RATING_QOS)
        pr.spin_until(lambda: req_pub.get_subscription_count() > 0 and rating_pub.get_subscription_count() > 0,
                      60, "rating_viz to subscribe")
        names = ["Bad", "Average", "Good"]
        for i in range(3):
            states = [0.0] * (2 * 39)
            states[39:42] = [0.1 * i, 0.6, 0.2]  # the segment's last state: end effector x, y, z
            req_pub.publish(RatingRequest(request_id=f"r{i}", episode=3, steps=[10, 11], states=states,
                                          state_dim=39, class_names=names, has_truth=True,
                                          true_rewards=[1.0, 2.0], successes=[False, False],
                                          progress=[0.1, 0.3 * i]))
        req_pub.publish(RatingRequest(request_id="bad", episode=3, steps=[1], states=[1.0, 2.0],
                                      state_dim=39, class_names=names))  # malformed: counted
        time.sleep(0.5)
        for i, label in enumerate([0, 2, Rating.ABSTAINED]):
            rating_pub.publish(Rating(request_id=f"r{i}", episode=3, steps=[10, 11], label=label,
                                      num_classes=3, abstain_reason="timeout: x" if label < 0 else ""))
        rating_pub.publish(Rating(request_id="never-requested", label=1, num_classes=3))

        # A viewer that subscribes only now still gets the latest picture (transient local).
        got: list[Any] = []
        node.create_subscription(MarkerArray, qos.RATING_MARKERS, got.append, qos.MARKERS_QOS)

        def spheres() -> Any:
            for arr in reversed(got):
                for m in arr.markers:
                    if m.type == Marker.SPHERE_LIST and len(m.points) == 3:
                        return m, arr
            return None

        pr.spin_until(lambda: spheres() is not None, 30, "markers with three rated points")
        m, arr = spheres()
        assert [round(p.x, 3) for p in m.points] == [0.0, 0.1, 0.2]
        assert m.header.frame_id == "world"
        assert (m.colors[0].r, m.colors[0].g) == (1.0, 0.0)
        assert (m.colors[1].r, m.colors[1].g) == (0.0, 1.0)
        assert m.colors[2].r == m.colors[2].g == m.colors[2].b  # grey: abstained
        texts = sorted(x.text for x in arr.markers if x.type == Marker.TEXT_VIEW_FACING)
        assert texts == ["Bad (0.00)", "Good (0.30)", "abstained (0.60)"]
        time.sleep(1.0)  # status file
        status = json.loads((tmp_path / "rating_viz" / "status.json").read_text())
        assert status["points"] == 3
        assert status["counters"]["bad_requests"] == 1
        assert status["counters"]["unmatched_ratings"] == 1
    assert pr.proc.returncode == 0, pr.output[-3000:]
    assert "Traceback" not in pr.output, pr.output[-3000:]
