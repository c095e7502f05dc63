"""nodes layer of erl_vlm."""
