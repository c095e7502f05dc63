"""The :class:`~ros2_erl_vlm.core.safety.servo.ServoClient` over ROS: MoveIt Servo's services
(``moveit_msgs`` is imported only here and only for a real Servo; it is not on PyPI) or the fake
arm's stand-ins (std_srvs only). Calls block with a timeout; use them before the node spins."""

from __future__ import annotations

from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import SetBool, Trigger

MOVEIT_MISSING = ("the servo dialect with a real MoveIt Servo needs moveit_msgs (ServoCommandType, "
                  "ServoStatus), which is not on PyPI: source a ROS 2 install with MoveIt "
                  "(e.g. `source /opt/ros/jazzy/setup.bash`), or use dialect: pose")


def moveit_types() -> tuple[Any, Any]:
    """``(ServoCommandType, ServoStatus)`` from moveit_msgs; ValueError with the fix when missing."""
    try:
        from moveit_msgs.msg import ServoStatus  # type: ignore[import-not-found]
        from moveit_msgs.srv import ServoCommandType  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ValueError(MOVEIT_MISSING) from exc
    return ServoCommandType, ServoStatus


class RosServoClient:
    """Servo's ``pause_servo`` and ``switch_command_type`` called from ``node`` (blocking).

    Args:
        node: the calling node (not yet spinning in another executor).
        pause_service, switch_service: the service names (arm config ``servo.*``).
        fake: the fake arm's stand-in (``switch_command_type`` as std_srvs/Trigger).
        timeout_s: how long to wait for each service and each answer.
    """

    def __init__(self, node: Any, pause_service: str, switch_service: str, fake: bool,
                 timeout_s: float = 10.0) -> None:
        self.node, self.fake, self.timeout_s = node, fake, timeout_s
        self.pause_client = node.create_client(SetBool, pause_service)
        if fake:
            self.switch_client = node.create_client(Trigger, switch_service)
            self.switch_type = None
        else:
            command_type, _status = moveit_types()
            self.switch_type = command_type
            self.switch_client = node.create_client(command_type, switch_service)

    def _call(self, client: Any, request: Any) -> tuple[bool, str]:
        if not client.wait_for_service(timeout_sec=self.timeout_s):
            return False, f"service {client.srv_name} not available after {self.timeout_s:g} s"
        future = client.call_async(request)
        executor = SingleThreadedExecutor(context=self.node.context)
        executor.add_node(self.node)
        try:
            executor.spin_until_future_complete(future, timeout_sec=self.timeout_s)
        finally:
            executor.remove_node(self.node)
            executor.shutdown(timeout_sec=1.0)
        if not future.done() or future.result() is None:
            return False, f"no answer from {client.srv_name} within {self.timeout_s:g} s"
        result = future.result()
        return bool(result.success), str(getattr(result, "message", ""))

    def pause(self, paused: bool) -> tuple[bool, str]:
        """``pause_servo`` (std_srvs/SetBool)."""
        return self._call(self.pause_client, SetBool.Request(data=paused))

    def switch_to_twist(self) -> tuple[bool, str]:
        """``switch_command_type`` to TWIST (the fake: a Trigger)."""
        if self.switch_type is None:
            return self._call(self.switch_client, Trigger.Request())
        req = self.switch_type.Request()
        req.command_type = 1  # ServoCommandType.Request.TWIST
        return self._call(self.switch_client, req)


def spin_briefly(node: Any, seconds: float) -> None:
    """Process ``node``'s callbacks for ``seconds`` in a private executor (start-up waits)."""
    import time

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        end = time.monotonic() + seconds
        while rclpy.ok(context=node.context) and time.monotonic() < end:
            executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=1.0)
