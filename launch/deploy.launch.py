"""Run a trained policy with no learning, in simulation or on an arm, under the same safety.

    ros2 launch erl_vlm deploy.launch.py checkpoint:=runs/<run>/sac_agent/checkpoint.pt [episodes:=10]
    ros2 launch erl_vlm deploy.launch.py checkpoint:=<file> use_sim:=false arm_config:=my_arm.yaml

The robot side is the training graph's (include/sim.launch.py, or include/real_arm.launch.py with
use_sim:=false); in place of the learning side, deploy_agent acts with the checkpoint's policy.
The same arguments as train_sim.launch.py (`--show-args`); checkpoint is required here. Without a
ROS install: `python -m ros2_erl_vlm.runner --checkpoint <file>`.
"""

import os

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from ros2_erl_vlm.launch_support import declare_arguments

HERE = os.path.dirname(os.path.abspath(__file__))


def _require_checkpoint(context):
    if not LaunchConfiguration("checkpoint").perform(context).strip():
        raise RuntimeError("erl_vlm: deploy.launch.py needs checkpoint:=<file> (a training run's "
                           "<run_dir>/sac_agent/checkpoint.pt)")
    return []


def generate_launch_description():
    """The training launch file with checkpoint set: the robot side and deploy_agent."""
    return LaunchDescription([
        *declare_arguments(),
        OpaqueFunction(function=_require_checkpoint),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(HERE, "train_sim.launch.py"))),
    ])
