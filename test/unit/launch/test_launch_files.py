"""The launch files: valid Python everywhere; with ROS 2 `launch` installed, they declare every
graph argument and include the learning side and the two robot sides (skipped without `launch`)."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest

from ros2_erl_vlm.graph import load_graph

LAUNCH = Path(__file__).resolve().parents[3] / "launch"
FILES = ("train_sim.launch.py", "include/learning.launch.py", "include/sim.launch.py",
         "include/real_arm.launch.py", "include/rviz.launch.py")


@pytest.mark.parametrize("name", FILES)
def test_launch_files_compile(name: str) -> None:
    py_compile.compile(str(LAUNCH / name), doraise=True)


def test_train_sim_declares_every_graph_argument() -> None:
    pytest.importorskip("launch_ros")  # first: the repository's launch/ folder shadows `launch`
    pytest.importorskip("launch.actions")
    from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    ld = get_launch_description_from_python_launch_file(str(LAUNCH / "train_sim.launch.py"))
    declared = {e.name: e for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    graph = load_graph()
    assert set(declared) == set(graph.arguments)
    for name, arg in graph.arguments.items():
        assert declared[name].description == arg.description
    includes = [e for e in ld.entities if isinstance(e, IncludeLaunchDescription)]
    assert len(includes) == 4
    for name in FILES[1:]:
        sub = get_launch_description_from_python_launch_file(str(LAUNCH / name))
        assert {e.name for e in sub.entities if isinstance(e, DeclareLaunchArgument)} == set(graph.arguments)


def test_rviz_view_shows_the_graph_topics() -> None:
    """The shipped rviz view subscribes to rating_viz's markers (with its QoS) and the camera."""
    import yaml

    from ros2_erl_vlm.ros import qos
    from ros2_erl_vlm.ros.markers import NS_BOX, NS_MEASURED, NS_POINTS, NS_SAFETY_TEXT, NS_TARGET, NS_TEXT

    view = yaml.safe_load((LAUNCH.parent / "rviz" / "erl_vlm.rviz").read_text())
    manager = view["Visualization Manager"]
    displays = {d["Class"]: d for d in manager["Displays"]}
    arrays = {d["Topic"]["Value"]: d for d in manager["Displays"]
              if d["Class"] == "rviz_default_plugins/MarkerArray"}
    markers = arrays["/rating_markers"]
    assert markers["Topic"]["Durability Policy"] == "Transient Local"
    assert set(markers["Namespaces"]) == {NS_POINTS, NS_TEXT}
    safety = arrays["/" + qos.SAFETY_MARKERS]  # the arm bridge's
    assert safety["Topic"]["Durability Policy"] == "Transient Local"
    assert set(safety["Namespaces"]) == {NS_BOX, NS_TARGET, NS_MEASURED, NS_SAFETY_TEXT}
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "/camera/image_raw"
    assert manager["Global Options"]["Fixed Frame"] == "world"
