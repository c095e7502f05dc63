"""envs layer of erl_vlm."""
