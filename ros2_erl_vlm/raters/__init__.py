"""raters layer of erl_vlm."""
