"""``teleop``: a person drives the robot side (``sim_bridge`` or ``arm_bridge``) with a gamepad or a
space mouse, through the same ``action`` topic a policy uses.

Subscribes to the input (``input``): ``joy`` (sensor_msgs/Joy, a gamepad, e.g. from
``ros2 run joy game_controller_node``) or, with ``input:=spacemouse``, ``spacenav/twist``
(geometry_msgs/Twist) and ``spacenav/joy`` (sensor_msgs/Joy: the space mouse's buttons), as the
spacenav driver publishes them; every name is relative and remappable (``-r joy:=/my_pad``). The
teleop config file (``config``; ``config/teleop/xbox.yaml`` / ``spacemouse.yaml`` by default)
maps axes and buttons to the action (``core.teleop.mapping``).

Like the agents, it answers every ``observation`` (erl_vlm/Observation) with an ``action``
(erl_vlm/Action) for the same episode and step, at most ``rate_hz`` times a second: in lock-step
simulation that is the simulation's pace (80 Hz: MetaWorld's real time), an arm bridge paces
itself (10 Hz). While the deadman button is held on fresh input the action is the operator's;
otherwise it is the hold action (no motion, the gripper as it was), which both bridges apply as
"stay where you are" without ending the episode. With every action it publishes
``intervention`` (std_msgs/Bool): true while the operator drives (deadman held, input fresh).

At start it says loudly which button must be held, then waits up to ``input_wait_s`` for a first
message on every input topic; when one stays silent it exits 1 naming it (no device, driver not
running, wrong topic). Observations are answered only after that. The arm's own safety
(``arm_bridge``: box, clamp, leash, watchdogs, e-stop) stays in charge: teleop only publishes
actions, as a policy does. Optionally (``enable_topic``) the deadman also feeds the arm's enable
heartbeat, so that on an arm with ``enable.required`` releasing it stops the arm (and ends the
episode with ``deadman``) instead of holding it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from erl_vlm.msg import Action, Observation
from geometry_msgs.msg import Twist
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool

from ros2_erl_vlm.core.teleop.mapping import (
    INPUTS,
    TeleopConfigError,
    TeleopMapper,
    load_teleop_config,
)
from ros2_erl_vlm.paths import config_dir
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.node_params import RUN_DIR, STATUS_PERIOD
from ros2_erl_vlm.ros.params import ParamError, ParamSpec
from ros2_erl_vlm.ros.servo_client import spin_briefly

#: Input topics (relative, remappable): a gamepad; a space mouse's puck and its buttons.
JOY = "joy"
SPACENAV_TWIST = "spacenav/twist"
SPACENAV_JOY = "spacenav/joy"
#: True while the operator drives (published with every action).
INTERVENTION = "intervention"
#: Input devices' messages: best effort takes both reliable (joy) and best-effort publishers.
INPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
#: The intervention flag: reliable, volatile (it describes steps; a late joiner needs no old ones).
INTERVENTION_QOS = qos.SAFETY_INPUT_QOS
#: The shipped config of each input (config/teleop/).
DEFAULT_CONFIGS = {"joy": "xbox.yaml", "spacemouse": "spacemouse.yaml"}
#: How to start each input's driver (said when it stays silent).
DRIVERS = {"joy": "is a gamepad connected and `ros2 run joy game_controller_node` (or joy_node) running?",
           "spacemouse": "is the space mouse connected and `ros2 run spacenav spacenav_node` running?"}

P = ParamSpec
TELEOP_PARAMS = (
    RUN_DIR, STATUS_PERIOD,
    P("input", "joy", "joy: a gamepad's sensor_msgs/Joy on joy; spacemouse: geometry_msgs/Twist on "
      "spacenav/twist and the buttons' sensor_msgs/Joy on spacenav/joy", choices=INPUTS),
    P("config", "", "teleop config YAML (axes, signs, gripper, deadman button, deadzone, scale, input "
      "timeout; docs/teleop.md); empty: config/teleop/xbox.yaml (joy) or spacemouse.yaml (spacemouse)"),
    P("input_wait_s", 10.0, "exit 1 naming the topic when an input topic sends nothing for this long "
      "after start (s)", 0.1, 3600.0),
    P("rate_hz", 80.0, "answer observations at most this often (Hz): the pace of a lock-step "
      "simulation (80: MetaWorld's real time); an arm bridge paces itself", 1.0, 1000.0),
    P("enable_topic", "", "also publish the deadman as the arm's enable heartbeat on this topic "
      "(std_msgs/Bool, arm_bridge's enable.topic, e.g. enable): true while the operator drives, "
      "false otherwise, at enable_rate_hz; empty: not published"),
    P("enable_rate_hz", 10.0, "rate of the enable heartbeat (Hz; arm_bridge's default timeout is "
      "0.5 s)", 2.0, 100.0),
)


class Teleop(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("inputs", "bad_inputs", "actions", "engaged_steps", "held_steps")

    def __init__(self) -> None:
        super().__init__("teleop", TELEOP_PARAMS)
        p = self.p
        self.input = str(p["input"])
        path = p["config"] or str(config_dir() / "teleop" / DEFAULT_CONFIGS[self.input])
        try:
            self.cfg = load_teleop_config(path, self.input)
        except TeleopConfigError as exc:
            raise ParamError(f"parameter 'config': {exc}") from exc
        self.mapper = TeleopMapper(self.cfg)
        self.seen: dict[str, bool] = {}
        if self.input == "joy":
            self._input(Joy, JOY, self.on_joy)
        else:
            self._input(Twist, SPACENAV_TWIST, self.on_twist)
            self._input(Joy, SPACENAV_JOY, self.on_buttons)
        self.pub_action = self.create_publisher(Action, qos.ACTION, qos.ACTION_QOS)
        self.pub_intervention = self.create_publisher(Bool, INTERVENTION, INTERVENTION_QOS)
        self.pending: tuple[int, int, Any] | None = None  # the observation to answer
        self.engaged = False
        self.get_logger().info(self.cfg.summary())
        self._announce_deadman()
        self._wait_for_input()
        self.create_subscription(Observation, qos.OBSERVATION, self.on_observation, qos.OBSERVATION_QOS)
        self.wall_timer(1.0 / float(p["rate_hz"]), self.tick)
        self.pub_enable = None
        if p["enable_topic"]:
            self.pub_enable = self.create_publisher(Bool, str(p["enable_topic"]), qos.SAFETY_INPUT_QOS)
            self.get_logger().info(f"the deadman is also the arm's enable heartbeat on "
                                   f"{self.resolve_topic_name(str(p['enable_topic']))} "
                                   f"({float(p['enable_rate_hz']):g} Hz)")
            self.wall_timer(1.0 / float(p["enable_rate_hz"]), self.heartbeat)

    # -- start-up ---------------------------------------------------------------------------------
    def _input(self, kind: Any, topic: str, callback: Any) -> None:
        self.create_subscription(kind, topic, callback, INPUT_QOS)
        self.seen[topic] = False

    def _announce_deadman(self) -> None:
        line = f"HOLD {self.cfg.deadman_text()} TO MOVE. Released, the robot holds still."
        bar = "*" * (len(line) + 8)
        self.get_logger().warning(f"\n{bar}\n*** {line} ***\n{bar}")

    def _wait_for_input(self) -> None:
        """Spin until every input topic delivered a message, at most ``input_wait_s``."""
        wait = float(self.p["input_wait_s"])
        names = ", ".join(self.resolve_topic_name(t) for t in self.seen)
        self.get_logger().info(f"waiting up to {wait:g} s for input on {names}")
        end = time.monotonic() + wait
        while not all(self.seen.values()) and time.monotonic() < end:
            spin_briefly(self, 0.1)
        missing = [self.resolve_topic_name(t) for t, ok in self.seen.items() if not ok]
        if missing:
            raise ValueError(f"teleop: no input message on {', '.join(missing)} after {wait:g} s: "
                             f"{DRIVERS[self.input]} (another topic: remap it, e.g. "
                             f"-r {next(t for t, ok in self.seen.items() if not ok)}:=/my_device)")
        self.get_logger().info(f"input arrived on {names}; answering observations")

    # -- input ------------------------------------------------------------------------------------
    def _note(self, topic: str, problem: str) -> None:
        self.seen[topic] = True
        self.counters["inputs"] += 1
        if problem:
            self.count("bad_inputs", f"{self.resolve_topic_name(topic)}: {problem}")

    def on_joy(self, msg: Joy) -> None:
        """A gamepad's axes and buttons."""
        self._note(JOY, self.mapper.joy(msg.axes, msg.buttons, time.monotonic()))

    def on_twist(self, msg: Twist) -> None:
        """A space mouse's puck."""
        lin, ang = msg.linear, msg.angular
        self._note(SPACENAV_TWIST, self.mapper.twist((lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z),
                                                     time.monotonic()))

    def on_buttons(self, msg: Joy) -> None:
        """A space mouse's buttons."""
        self._note(SPACENAV_JOY, self.mapper.buttons(msg.buttons, time.monotonic()))

    # -- stepping ---------------------------------------------------------------------------------
    def on_observation(self, msg: Observation) -> None:
        """Remember the step to answer (an ended episode needs no action)."""
        if msg.terminated or msg.truncated:
            self.pending = None
            return
        self.pending = (int(msg.episode), int(msg.step), msg.header.stamp)

    def tick(self) -> None:
        """At ``rate_hz``: answer the newest observation with the operator's (or the hold) action."""
        if self.pending is None:
            return
        episode, step, stamp = self.pending
        self.pending = None
        cmd = self.mapper.command(time.monotonic())
        out = Action(episode=episode, step=step, action=cmd.action)
        out.header.stamp = stamp
        self.pub_action.publish(out)
        self.pub_intervention.publish(Bool(data=cmd.engaged))
        self.counters["actions"] += 1
        self.counters["engaged_steps" if cmd.engaged else "held_steps"] += 1
        if cmd.engaged != self.engaged:
            self.get_logger().info("engaged: the operator drives" if cmd.engaged
                                   else f"holding: {cmd.reason}")
            self.engaged = cmd.engaged
        elif not cmd.engaged and not cmd.reason.startswith("deadman"):
            self.warn(f"holding: {cmd.reason}", "held_input")

    def heartbeat(self) -> None:
        """With ``enable_topic``: true while the operator drives (deadman held, input fresh), else
        false (arm_bridge stops at once on false, and after its timeout without a message)."""
        assert self.pub_enable is not None
        self.pub_enable.publish(Bool(data=self.mapper.hold_reason(time.monotonic()) == ""))

    def status(self) -> dict[str, Any]:
        """Input, config, whether the operator drives, the gripper command."""
        return {"input": self.input, "config": self.cfg.source, "engaged": self.engaged,
                "gripper": self.mapper.gripper}


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``teleop`` executable."""
    return run_node(Teleop, args)


if __name__ == "__main__":
    sys.exit(main())
