"""Offline learning commands (ROS-free): ``python -m ros2_erl_vlm.offline.train`` trains IQL,
IQL-sparse or BC on an exported dataset (:mod:`ros2_erl_vlm.core.offline`; ``docs/offline.md``)."""
