"""core layer of erl_vlm."""
