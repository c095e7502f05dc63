"""A gamepad's or a space mouse's input as the policy's normalised action (ROS-free).

The action is MetaWorld's 4-D one, as ``sim_bridge`` and ``arm_bridge`` take it: end-effector
``dx, dy, dz`` and the gripper (+1 closes, -1 opens), each in [-1, 1]. The input is a vector of
axes and a vector of buttons: a ``sensor_msgs/Joy`` gives both; a space mouse gives its
``geometry_msgs/Twist`` as six axes (:data:`TWIST_AXES`: linear x, y, z, angular x, y, z) and its
buttons from the driver's companion Joy message (``spacenav/joy``).

Per output axis: ``sign * axes[index]``, then the deadzone (below it 0; above it rescaled so the
output starts at 0 and still reaches 1), times ``scale``, clipped to [-1, 1].

The deadman: the arm moves only while ``deadman_button`` is held on fresh, finite input. Otherwise
:meth:`TeleopMapper.command` returns the *hold* action: ``dx = dy = dz = 0`` and the gripper at
its last command (a gripper value of 0 would move MetaWorld's fingers half-way; the arm bridge's
hysteresis keeps its state either way). Both bridges treat a zero motion as "stay where you are"
(sim: the mocap target does not move; arm: a zero twist / the measured pose), and an action is
still sent for every step, so the arm bridge's command watchdog never ends an operator's episode
while the operator merely lets go. The hold applies when:

* the deadman button is released;
* no input has arrived yet, or the newest axes or buttons are older than ``input_timeout_s``
  (a driver that died, a pad out of range);
* the newest message has NaN/inf in an axis the config uses, or fewer axes/buttons than it uses.

The gripper changes only while engaged: ``buttons`` (one closes, one opens; both: no change),
``toggle`` (each press flips it), ``axis`` (``sign * axes[axis]``, e.g. a trigger) or ``none``.

Time is passed in (seconds on any monotonic clock), so every rule is tested without a clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.settings import apply_overrides, check_declared, read_settings_file, setting

#: The input kinds: a gamepad's Joy messages, or a space mouse's Twist (+ its buttons as Joy).
INPUTS = ("joy", "spacemouse")
#: How the gripper is commanded.
GRIPPER_MODES = ("buttons", "toggle", "axis", "none")
#: A space mouse's Twist as axes, in this order.
TWIST_AXES = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")
#: The action: dx, dy, dz, gripper (MetaWorld's; both bridges take it).
ACTION_DIM = 4
#: An index that maps nothing (an output axis that stays 0, a button that is not used).
UNUSED = -1
#: Highest axis or button index accepted in a config (a Joy message is far shorter).
MAX_INDEX = 63


class TeleopConfigError(ValueError):
    """A missing or inconsistent teleop config (the message names the file and the field)."""


@dataclass
class AxisMap:
    """One motion component: ``sign * axes[index]`` (``index`` -1: always 0)."""

    index: int = setting(UNUSED, low=UNUSED, high=MAX_INDEX)
    sign: float = 1.0


@dataclass
class GripperMap:
    """How the gripper is commanded (see the module docstring) and its value before any input."""

    mode: str = setting("buttons", choices=GRIPPER_MODES)
    close_button: int = setting(UNUSED, low=UNUSED, high=MAX_INDEX)
    open_button: int = setting(UNUSED, low=UNUSED, high=MAX_INDEX)
    toggle_button: int = setting(UNUSED, low=UNUSED, high=MAX_INDEX)
    axis: int = setting(UNUSED, low=UNUSED, high=MAX_INDEX)
    sign: float = 1.0
    #: the gripper command before the operator sets one (MetaWorld: -1, open)
    start: float = setting(-1.0, low=-1.0, high=1.0)


@dataclass
class TeleopConfig:
    """A teleop config: which input, the deadman, the axis map, deadzone, scale, timeout.

    The defaults are a pad on ROS 2's ``game_controller_node`` (``config/teleop/xbox.yaml``).
    """

    name: str = "teleop"
    input: str = setting("joy", choices=INPUTS)
    #: the button that must be held for any motion
    deadman_button: int = setting(9, low=0, high=MAX_INDEX)
    #: the button's name on the device, for the start-up message (e.g. "LB")
    deadman_label: str = ""
    x: AxisMap = field(default_factory=lambda: AxisMap(0, -1.0))
    y: AxisMap = field(default_factory=lambda: AxisMap(1, 1.0))
    z: AxisMap = field(default_factory=lambda: AxisMap(3, 1.0))
    gripper: GripperMap = field(default_factory=lambda: GripperMap(close_button=0, open_button=1))
    #: |axis| at or below this is 0; above it is rescaled to reach 1 at full deflection
    deadzone: float = setting(0.1, low=0.0, high=0.95)
    #: motion multiplier after the deadzone (the result is clipped to [-1, 1])
    scale: float = setting(1.0, low=0.0, high=10.0, low_open=True)
    #: input older than this holds the arm (s)
    input_timeout_s: float = setting(0.5, low=0.01, high=10.0)
    source: str = ""

    @property
    def motion_axes(self) -> dict[str, AxisMap]:
        """``{"x": ..., "y": ..., "z": ...}``."""
        return {"x": self.x, "y": self.y, "z": self.z}

    @property
    def used_axes(self) -> dict[int, str]:
        """``{axis index: what it drives}`` of every axis the config reads."""
        used = {m.index: name for name, m in self.motion_axes.items() if m.index != UNUSED}
        if self.gripper.mode == "axis":
            used[self.gripper.axis] = "gripper"
        return used

    @property
    def used_buttons(self) -> dict[int, str]:
        """``{button index: what it does}`` of every button the config reads."""
        g = self.gripper
        used = {self.deadman_button: "deadman"}
        if g.mode == "buttons":
            used.update({g.close_button: "gripper close", g.open_button: "gripper open"})
        elif g.mode == "toggle":
            used[g.toggle_button] = "gripper toggle"
        return used

    def deadman_text(self) -> str:
        """``button 9 (LB)``: the deadman as the start-up message names it."""
        label = f" ({self.deadman_label})" if self.deadman_label else ""
        return f"button {self.deadman_button}{label}"

    def axis_name(self, index: int) -> str:
        """An axis as the operator knows it: ``axis 3`` (joy) or ``linear.z`` (space mouse)."""
        if self.input == "spacemouse" and 0 <= index < len(TWIST_AXES):
            return f"twist {TWIST_AXES[index]}"
        return f"axis {index}"

    def summary(self) -> str:
        """One line of the mapping (logged at start)."""
        axes = ", ".join(f"{n} = {'-' if m.sign < 0 else '+'}{self.axis_name(m.index)}"
                         for n, m in self.motion_axes.items() if m.index != UNUSED)
        g = self.gripper
        grip = {"buttons": f"buttons {g.close_button} close / {g.open_button} open",
                "toggle": f"button {g.toggle_button} toggles",
                "axis": f"{'-' if g.sign < 0 else '+'}{self.axis_name(g.axis)}",
                "none": "not commanded"}[g.mode]
        return (f"teleop config {self.name} ({self.source or 'built-in'}): input {self.input}, deadman "
                f"{self.deadman_text()}, {axes}, gripper {grip}, deadzone {self.deadzone:g}, scale "
                f"{self.scale:g}, input timeout {self.input_timeout_s:g} s")


def validate(cfg: TeleopConfig) -> TeleopConfig:
    """Every declared range and the cross-field rules; TeleopConfigError names the field."""
    src = cfg.source or "teleop config"
    for name, part in (("x", cfg.x), ("y", cfg.y), ("z", cfg.z), ("gripper", cfg.gripper)):
        if not isinstance(part, (AxisMap, GripperMap)):
            raise TeleopConfigError(f"{src}: teleop.{name} must be a mapping, got {part!r}")
    try:
        check_declared(cfg, "teleop.")
        for name, part in (("x", cfg.x), ("y", cfg.y), ("z", cfg.z), ("gripper", cfg.gripper)):
            check_declared(part, f"teleop.{name}.")
    except ValueError as exc:
        raise TeleopConfigError(f"{src}: {exc}") from exc
    for name, m in cfg.motion_axes.items():
        if m.sign not in (-1.0, 1.0):
            raise TeleopConfigError(f"{src}: teleop.{name}.sign must be 1 or -1, got {m.sign:g}")
    if all(m.index == UNUSED for m in cfg.motion_axes.values()):
        raise TeleopConfigError(f"{src}: teleop.x, y and z are all unmapped (index -1): nothing would move")
    seen: dict[int, str] = {}
    for name, m in cfg.motion_axes.items():
        if m.index == UNUSED:
            continue
        if m.index in seen:
            raise TeleopConfigError(f"{src}: teleop.{name}.index {m.index} is already teleop."
                                    f"{seen[m.index]}.index: one input axis drives one motion axis")
        seen[m.index] = name
    g = cfg.gripper
    if g.mode == "buttons":
        for key in ("close_button", "open_button"):
            if getattr(g, key) == UNUSED:
                raise TeleopConfigError(f"{src}: teleop.gripper.{key} is needed with mode buttons")
        if g.close_button == g.open_button:
            raise TeleopConfigError(f"{src}: teleop.gripper.close_button and open_button are both "
                                    f"{g.close_button}")
    elif g.mode == "toggle" and g.toggle_button == UNUSED:
        raise TeleopConfigError(f"{src}: teleop.gripper.toggle_button is needed with mode toggle")
    elif g.mode == "axis":
        if g.axis == UNUSED:
            raise TeleopConfigError(f"{src}: teleop.gripper.axis is needed with mode axis")
        if g.sign not in (-1.0, 1.0):
            raise TeleopConfigError(f"{src}: teleop.gripper.sign must be 1 or -1, got {g.sign:g}")
        if g.axis in seen:
            raise TeleopConfigError(f"{src}: teleop.gripper.axis {g.axis} is already teleop."
                                    f"{seen[g.axis]}.index")
    gripper_buttons = {"buttons": (("close_button", g.close_button), ("open_button", g.open_button)),
                       "toggle": (("toggle_button", g.toggle_button),)}.get(g.mode, ())
    for key, index in gripper_buttons:
        if index == cfg.deadman_button:
            raise TeleopConfigError(f"{src}: teleop.gripper.{key} is the deadman button "
                                    f"({cfg.deadman_button})")
    if cfg.input == "spacemouse":
        for index, what in cfg.used_axes.items():
            if index >= len(TWIST_AXES):
                raise TeleopConfigError(
                    f"{src}: {what} reads axis {index}, but a space mouse's twist has "
                    f"{len(TWIST_AXES)} axes (0-5: {', '.join(TWIST_AXES)})")
    return cfg


def teleop_config_from_mapping(data: dict[str, Any], source: str = "teleop config") -> TeleopConfig:
    """A validated :class:`TeleopConfig` from the file's ``teleop:`` mapping (or the mapping itself)."""
    body = data.get("teleop", data) if isinstance(data, dict) else data
    if not isinstance(body, dict):
        raise TeleopConfigError(f"{source}: expected a mapping under 'teleop'")
    cfg = TeleopConfig(source=source)
    nested = {f.name for f in fields(cfg) if is_dataclass(getattr(cfg, f.name))}
    for key, value in body.items():
        if key in nested and not isinstance(value, dict):
            raise TeleopConfigError(f"{source}: teleop.{key} must be a mapping (e.g. {{index: 0, "
                                    f"sign: 1}}), got {value!r}")
        if key == "source":
            raise TeleopConfigError(f"{source}: unknown setting 'teleop.source'")
    apply_overrides(cfg, body, source, TeleopConfigError, prefix="teleop.")
    return validate(cfg)


def load_teleop_config(path: str | Path, input_kind: str | None = None) -> TeleopConfig:
    """Read and validate a teleop config file (TeleopConfigError names the file and field).

    ``input_kind`` (the node's ``input``): the file must be written for that input, since its
    axis indices mean Joy axes for ``joy`` and twist components for ``spacemouse``.
    """
    p = Path(path).expanduser()
    data = read_settings_file(p, "teleop config", TeleopConfigError, empty_ok=False)
    cfg = teleop_config_from_mapping(data, str(p))
    if input_kind is not None and cfg.input != input_kind:
        raise TeleopConfigError(f"{p}: a config for input {cfg.input!r}, but the node's input is "
                                f"{input_kind!r} (its axis indices would mean something else): pick a "
                                f"config for {input_kind!r} or set input:={cfg.input}")
    return cfg


def apply_deadzone(value: float, deadzone: float) -> float:
    """0 for ``|value| <= deadzone``; beyond it rescaled so the output grows from 0 and reaches 1
    where the input does (no jump at the edge of the deadzone)."""
    a = abs(value)
    if a <= deadzone:
        return 0.0
    return math.copysign((a - deadzone) / (1.0 - deadzone), value)


@dataclass(frozen=True)
class TeleopCommand:
    """What to send for one step.

    ``action``: dx, dy, dz, gripper (float32, in [-1, 1]); ``engaged``: the operator drives
    (deadman held on fresh, finite input; the intervention flag); ``reason``: why the arm is held
    when not engaged ("" when engaged).
    """

    action: np.ndarray
    engaged: bool
    reason: str


@dataclass
class _Source:
    """The newest message of one input (axes or buttons): values, arrival time, problem."""

    what: str
    values: tuple[float, ...] | None = None
    time_s: float | None = None
    problem: str = ""


class TeleopMapper:
    """The input's latest state and the action it commands (see the module docstring).

    Feed it with :meth:`joy` (a gamepad: axes and buttons in one message) or :meth:`twist` and
    :meth:`buttons` (a space mouse); ask :meth:`command` once per step. Each feed returns the
    problem with that message ("" when it is fine), so a node can log it.
    """

    def __init__(self, config: TeleopConfig) -> None:
        self.cfg = config
        self.gripper = float(config.gripper.start)
        self._axes = _Source("axes")
        self._buttons = _Source("buttons")
        self._toggle_was_down = False
        # The deadman engages only after it was seen released on good, fresh input: a button
        # stuck or held at start-up, or held while input was lost (a pad driver that comes back
        # reports its old button state), never moves the arm.
        self._armed = False

    # -- input ----------------------------------------------------------------------------------
    def joy(self, axes: Sequence[float], buttons: Sequence[int], now: float) -> str:
        """A gamepad's Joy message (its axes and buttons) arriving at ``now``."""
        problems = [self._set_axes(axes, now), self.buttons(buttons, now)]
        return "; ".join(p for p in problems if p)

    def twist(self, linear: Sequence[float], angular: Sequence[float], now: float) -> str:
        """A space mouse's Twist (linear x, y, z and angular x, y, z) arriving at ``now``."""
        return self._set_axes([*linear, *angular], now)

    def buttons(self, buttons: Sequence[int], now: float) -> str:
        """The device's buttons (nonzero: pressed) arriving at ``now``; gripper buttons act here."""
        src = self._buttons
        src.time_s = now
        values = tuple(float(b) for b in buttons)
        if not all(math.isfinite(v) for v in values):
            src.values, src.problem = None, "NaN/inf in the buttons"
            self._armed = False
            return src.problem
        # A button beyond the message is not pressed (spacenav grows its list as buttons are first
        # pressed; some drivers send none): safe for the deadman, and said once.
        short = [f"button {i} ({what})" for i, what in self.cfg.used_buttons.items() if i >= len(values)]
        src.values, src.problem = values, ""
        if not self._pressed(self.cfg.deadman_button):
            self._armed = True
        self._gripper_buttons(now)
        return (f"the input has {len(values)} buttons; {', '.join(short)} read as not pressed"
                if short else "")

    def _set_axes(self, axes: Sequence[float], now: float) -> str:
        src = self._axes
        src.time_s = now
        values = tuple(float(a) for a in axes)
        used = self.cfg.used_axes
        short = [f"{self.cfg.axis_name(i)} ({what})" for i, what in used.items() if i >= len(values)]
        bad = [f"{self.cfg.axis_name(i)} ({what})" for i, what in used.items()
               if i < len(values) and not math.isfinite(values[i])]
        if short:
            src.values, src.problem = None, (f"the input has {len(values)} axes, the config reads "
                                             f"{', '.join(short)}")
        elif bad:
            src.values, src.problem = None, f"NaN/inf in {', '.join(bad)}"
        else:
            src.values, src.problem = values, ""
        return src.problem

    def _pressed(self, index: int) -> bool:
        v = self._buttons.values
        return v is not None and 0 <= index < len(v) and v[index] != 0.0

    def _gripper_buttons(self, now: float) -> None:
        g = self.cfg.gripper
        engaged = self.hold_reason(now) == ""
        if g.mode == "toggle":
            down = self._pressed(g.toggle_button)
            if down and not self._toggle_was_down and engaged:
                self.gripper = -1.0 if self.gripper > 0.0 else 1.0
            self._toggle_was_down = down
        elif g.mode == "buttons" and engaged:
            close, open_ = self._pressed(g.close_button), self._pressed(g.open_button)
            if close != open_:
                self.gripper = 1.0 if close else -1.0

    # -- output ---------------------------------------------------------------------------------
    def hold_reason(self, now: float) -> str:
        """Why the arm is held at ``now`` ("" when the operator drives)."""
        timeout = self.cfg.input_timeout_s
        for src in (self._axes, self._buttons):
            reason = ""
            if src.time_s is None:
                reason = f"no input yet ({src.what})"
            elif src.problem:
                reason = src.problem
            elif now - src.time_s > timeout:
                reason = f"input is {now - src.time_s:.2f} s old ({src.what}; timeout {timeout:g} s)"
            if reason:
                if src.time_s is not None:  # input lost or bad: to move again the deadman must
                    self._armed = False     # be seen released first
                return reason
        if not self._pressed(self.cfg.deadman_button):
            return f"deadman released (hold {self.cfg.deadman_text()} to move)"
        if not self._armed:
            return (f"release {self.cfg.deadman_text()} and press it again (it was already held "
                    "when the input started or came back)")
        return ""

    def hold_action(self) -> np.ndarray:
        """No motion, the gripper at its last command."""
        return np.array([0.0, 0.0, 0.0, self.gripper], dtype=np.float32)

    def command(self, now: float) -> TeleopCommand:
        """The action for a step taken at ``now``."""
        reason = self.hold_reason(now)
        if reason:
            return TeleopCommand(self.hold_action(), False, reason)
        axes = self._axes.values
        assert axes is not None
        cfg = self.cfg
        motion = [0.0 if m.index == UNUSED else
                  float(np.clip(apply_deadzone(m.sign * axes[m.index], cfg.deadzone) * cfg.scale, -1.0, 1.0))
                  for m in cfg.motion_axes.values()]
        g = cfg.gripper
        if g.mode == "axis":
            self.gripper = float(np.clip(g.sign * axes[g.axis], -1.0, 1.0))
        return TeleopCommand(np.array([*motion, self.gripper], dtype=np.float32), True, "")
