"""The robot side on a real arm (layer `bottom_real` of config/graph.yaml): arm_bridge, and fake_arm
in place of the robot with fake:=true. The arm's own drivers and camera driver are started by the
user (docs/real_arm.md)."""

from ros2_erl_vlm.launch_support import layer_launch_description


def generate_launch_description():
    """Nodes of layer `bottom_real`."""
    return layer_launch_description("bottom_real")
