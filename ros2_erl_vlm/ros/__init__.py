"""ros layer of erl_vlm."""
