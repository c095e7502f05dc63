"""Teleoperation without ROS: a gamepad's or a space mouse's input turned into the policy's
normalised action (``mapping.py``: the teleop config file, the deadman, deadzone, scaling, the
gripper, stale and NaN input). The ``teleop`` node runs it; the bridge's own safety still applies."""
