"""The robot side on a real arm (layer `bottom_real` of config/graph.yaml): the arm bridge and
camera driver. Not available yet: launching it stops with a message saying so."""

from ros2_erl_vlm.launch_support import layer_launch_description


def generate_launch_description():
    """Nodes of layer `bottom_real`."""
    return layer_launch_description("bottom_real")
