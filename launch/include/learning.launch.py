"""The learning side of the graph (layer `top` of config/graph.yaml): camera_capture, vlm_rater,
reward_learner, sac_agent, rating_viz. Shared by simulation and a real arm."""

from ros2_erl_vlm.launch_support import layer_launch_description


def generate_launch_description():
    """Nodes of layer `top`."""
    return layer_launch_description("top")
