"""MoveIt Servo's side of the contract, ROS-free: what its status codes mean for the arm, and the
activation sequence (``pause_servo(false)`` then ``switch_command_type(TWIST)``, as lerobot-ros
does) through an injected client, so it is tested without ``moveit_msgs`` (not on PyPI)."""

from __future__ import annotations

from typing import Protocol

#: moveit_msgs/ServoStatus codes (Jazzy).
SERVO_STATUS = {-1: "invalid", 0: "no warning", 1: "decelerate for approaching singularity",
                2: "halt for singularity", 3: "decelerate for leaving singularity",
                4: "decelerate for collision", 5: "halt for collision", 6: "joint bound"}
#: The codes at which Servo stops moving: the bridge stops and truncates the episode.
HALT_CODES = frozenset({2, 5, 6})


def servo_stop_reason(code: int) -> str:
    """The stop reason for a Servo status code ("" when Servo keeps moving)."""
    if code in HALT_CODES:
        return f"servo halted: {SERVO_STATUS[code]} (status {code})"
    if code not in SERVO_STATUS:
        return f"servo reports unknown status {code}"
    return ""


class ServoClient(Protocol):
    """The two Servo services the bridge calls (implemented over ROS in ros/servo_client.py)."""

    def pause(self, paused: bool) -> tuple[bool, str]:
        """``~/pause_servo`` (std_srvs/SetBool): (success, message)."""
        ...

    def switch_to_twist(self) -> tuple[bool, str]:
        """``~/switch_command_type`` with TWIST: (success, message)."""
        ...


class ServoActivationError(ValueError):
    """Servo refused to start taking twists (the message says which call and why)."""


def activate_servo(client: ServoClient) -> None:
    """Unpause Servo and switch it to twist commands; ServoActivationError when either fails."""
    ok, msg = client.pause(False)
    if not ok:
        raise ServoActivationError(f"pause_servo(false) failed: {msg or 'no reason given'}")
    ok, msg = client.switch_to_twist()
    if not ok:
        raise ServoActivationError(f"switch_command_type(TWIST) failed: {msg or 'no reason given'}")
