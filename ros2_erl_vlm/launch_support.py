"""Building blocks of the launch files (``launch/*.launch.py``) from ``config/graph.yaml``.

Only the launch files import this module; it needs ``launch`` and ``launch_ros`` (a ROS 2 install),
which the pip-mode runner (:mod:`ros2_erl_vlm.runner`) does without. Both read the graph through
:mod:`ros2_erl_vlm.graph`, so they start the same nodes with the same parameters.
"""

from __future__ import annotations

from typing import Any

from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    LogInfo,
    OpaqueFunction,
    SetEnvironmentVariable,
    SetLaunchConfiguration,
)
from launch.substitutions import EnvironmentVariable, LaunchConfiguration

from ros2_erl_vlm.graph import GraphError, check_params, load_graph

PACKAGE = "erl_vlm"
ERROR_KEY = "_erl_vlm_error"
RESOLVED_KEY = "_erl_vlm_resolved"
#: Seconds a node gets after SIGINT before launch escalates to SIGTERM (as the runner's stop_all).
SIGTERM_TIMEOUT_S = 15


def declare_arguments() -> list[Any]:
    """One ``DeclareLaunchArgument`` per graph argument (a no-op for arguments already set)."""
    return [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
            for a in load_graph().arguments.values()]


def _values(context: LaunchContext) -> dict[str, str]:
    graph = load_graph()
    return {name: LaunchConfiguration(name).perform(context) for name in graph.arguments}


def _resolve(context: LaunchContext) -> list[Any]:
    """Fill in ``run_dir`` / ``params_file`` once and check the parameters before any node starts;
    a problem ends the launch with its message (exit code 1)."""
    if context.launch_configurations.get(ERROR_KEY) or context.launch_configurations.get(RESOLVED_KEY):
        return []  # already reported / resolved by the including launch file
    graph = load_graph()
    try:
        values = graph.resolve(_values(context))
        check_params(graph, values)
    except GraphError as exc:
        # Raising ends the launch with exit code 1 and the message (no node has started yet).
        context.launch_configurations[ERROR_KEY] = str(exc)
        raise RuntimeError(f"erl_vlm: {exc}") from None
    return [SetLaunchConfiguration(RESOLVED_KEY, "1"),
            SetLaunchConfiguration("run_dir", values["run_dir"]),
            SetLaunchConfiguration("params_file", values["params_file"]),
            LogInfo(msg=f"erl_vlm run directory: {values['run_dir']}")]


def _nodes(context: LaunchContext, layer: str) -> list[Any]:
    from launch.actions import Shutdown
    from launch_ros.actions import Node

    if context.launch_configurations.get(ERROR_KEY):
        return []
    graph = load_graph()
    values = graph.resolve(_values(context))
    overrides = graph.node_overrides(values)
    nodes = [n for n in graph.started(values) if n.layer == layer]
    ns = values.get("namespace", "").strip("/")
    out = []
    for node in nodes:
        why = "finished" if node.ends_graph else "exited"
        out.append(Node(
            package=PACKAGE, executable=node.name, name=node.name, namespace=f"/{ns}" if ns else "",
            parameters=[values["params_file"], overrides[node.name]],
            ros_arguments=["--log-level", values.get("log_level") or "info"],
            output="screen", additional_env={"PYTHONUNBUFFERED": "1"},
            # Closing logs and leaving DDS can take several seconds per node when the whole graph
            # stops at once on a loaded machine: launch's default 5 s before SIGTERM is too short.
            sigterm_timeout=str(SIGTERM_TIMEOUT_S),
            # As the runner: the graph stops when the agent is done or any node dies.
            on_exit=Shutdown(reason=f"{node.name} {why}")))
    return out


def layer_launch_description(layer: str) -> LaunchDescription:
    """The nodes of one graph layer, with every graph argument declared (so the file also works
    on its own)."""
    return LaunchDescription([
        *declare_arguments(),
        SetEnvironmentVariable("MUJOCO_GL", EnvironmentVariable("MUJOCO_GL", default_value="egl")),
        OpaqueFunction(function=_resolve),
        OpaqueFunction(function=_nodes, args=[layer]),
    ])


def resolve_action() -> Any:
    """The action that resolves ``run_dir``/``params_file`` and checks the parameters."""
    return OpaqueFunction(function=_resolve)


def rviz_config() -> str:
    """Path of the installed ``rviz/erl_vlm.rviz``."""
    from ros2_erl_vlm.paths import share_dir

    return str(share_dir() / "rviz" / "erl_vlm.rviz")
