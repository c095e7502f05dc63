"""What stands between a policy's action and a moving arm (ROS-free, unit-tested with an injected
clock): the arm config (``arm_config.py``), action checks (``actions.py``), the workspace target
with its box, per-step clamp and leash (``target.py``), the gripper's hysteresis
(``gripper.py``) and the supervisor of every stop (``supervisor.py``: command watchdog, stale
state, enable heartbeat, latched e-stop). ``arm_bridge`` runs all of it; ``sim_bridge`` the action
checks (and, when one is configured, the workspace box)."""
