"""rviz2 with rviz/erl_vlm.rviz (rated states from rating_viz, the task camera), when rviz:=true."""

from launch import LaunchDescription
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration

from ros2_erl_vlm.launch_support import declare_arguments, rviz_config


def generate_launch_description():
    """The rviz2 node (not part of the graph: closing it does not stop training)."""
    from launch_ros.actions import Node

    return LaunchDescription([
        *declare_arguments(),
        Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", rviz_config()],
             output="log", condition=IfCondition(LaunchConfiguration("rviz"))),
    ])
