"""Train ERL-VLM in simulation: the node graph of config/graph.yaml over ROS 2.

    ros2 launch erl_vlm train_sim.launch.py task:=drawer-open-v3 rater:=oracle seed:=0 \
        total_steps:=30000 params_file:=/path/to/params.yaml namespace:=robot1 log_level:=info

`ros2 launch erl_vlm train_sim.launch.py --show-args` lists every argument. The robot side is a
separate include (include/sim.launch.py, or include/real_arm.launch.py with use_sim:=false), the
learning side (camera_capture, vlm_rater, reward_learner, sac_agent, rating_viz) is
include/learning.launch.py; rviz:=true adds rviz2 (include/rviz.launch.py).
Without a ROS install the same graph runs with `python -m ros2_erl_vlm.runner`.
"""

import os

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, LaunchConfiguration

from ros2_erl_vlm.launch_support import declare_arguments, resolve_action

HERE = os.path.dirname(os.path.abspath(__file__))


def _include(name, **kwargs):
    path = os.path.join(HERE, "include", name)
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(path), **kwargs)


def generate_launch_description():
    """Arguments, then the learning side and the robot side chosen by use_sim."""
    use_sim = LaunchConfiguration("use_sim")
    return LaunchDescription([
        *declare_arguments(),
        SetEnvironmentVariable("MUJOCO_GL", EnvironmentVariable("MUJOCO_GL", default_value="egl")),
        # On an arm, anything on the DDS domain can publish `action`: this host only, unless set.
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE",
                               EnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE",
                                                   default_value="LOCALHOST"),
                               condition=UnlessCondition(use_sim)),
        resolve_action(),
        _include("learning.launch.py"),
        _include("sim.launch.py", condition=IfCondition(use_sim)),
        _include("real_arm.launch.py", condition=UnlessCondition(use_sim)),
        _include("rviz.launch.py"),
    ])
