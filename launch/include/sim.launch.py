"""The robot side in simulation (layer `bottom_sim` of config/graph.yaml): sim_bridge, a MetaWorld
task publishing observations, camera images and /clock."""

from ros2_erl_vlm.launch_support import layer_launch_description


def generate_launch_description():
    """Nodes of layer `bottom_sim`."""
    return layer_launch_description("bottom_sim")
