"""Every reason an arm must stop, watched in one place with an injected clock (ROS-free).

The bridge feeds the supervisor what arrives (actions, measured states, enable heartbeats, e-stop
messages) and asks it once per control period what the arm may do:

* ``run``: command the target;
* ``zero``: a stop is in force and the zero command is still being sent (``zero_periods`` control
  periods after the stop began, so a controller that latches the last command stops);
* ``silent``: the stop has been announced; nothing is sent.

Stops, each with its reason (the episode is truncated with it):

* ``command_timeout``: no fresh action for ``command_timeout_periods`` control periods (the
  policy died or stalls); cleared by the next fresh action;
* ``stale_state``: no measured state for ``state_timeout_s``, or a bad one (NaN pose, a stamp
  going backwards), or a part of the state (gripper, an object) not fresh (:meth:`parts_stale`);
  cleared by a good state;
* ``deadman``: the enable heartbeat (``std_msgs/Bool`` True) is older than its timeout or False;
  cleared by a fresh True;
* ``estop``: an e-stop message with True; **latched** until :meth:`reset_estop` (the
  ``reset_estop`` service), whatever arrives meanwhile;
* ``external``: a named stop from the arm itself (Servo halted, program not running), cleared by
  :meth:`clear_external`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

#: The order in which simultaneous stops are reported (the most severe first).
STOP_ORDER = ("estop", "deadman", "external", "stale_state", "command_timeout")


@dataclass(frozen=True)
class Verdict:
    """What the arm may do this control period."""

    mode: str  # "run" | "zero" | "silent"
    #: the active stop reasons, most severe first (empty when running)
    reasons: tuple[str, ...] = ()
    #: True on the first period of a stop (the episode is truncated then)
    new_stop: bool = False

    @property
    def reason(self) -> str:
        """The most severe active reason ("" when running)."""
        return self.reasons[0] if self.reasons else ""


class SafetySupervisor:
    """See the module docstring.

    Args:
        period_s: one control period (s).
        command_timeout_periods: periods without a fresh action before ``command_timeout``.
        state_timeout_s: age of the newest measured state before ``stale_state``.
        enable_timeout_s: age of the newest enable heartbeat before ``deadman``; None: no
            heartbeat required.
        zero_periods: control periods the zero command is sent after a stop begins.
        clock: seconds, monotonic (injected in tests).
    """

    def __init__(self, period_s: float, command_timeout_periods: float, state_timeout_s: float,
                 enable_timeout_s: float | None, zero_periods: int = 2,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        if not (period_s > 0 and command_timeout_periods > 0 and state_timeout_s > 0):
            raise ValueError("the supervisor's period and timeouts must be positive")
        if enable_timeout_s is not None and not enable_timeout_s > 0:
            raise ValueError("the enable timeout must be positive")
        self.period_s = period_s
        self.command_timeout_s = command_timeout_periods * period_s
        self.state_timeout_s = state_timeout_s
        self.enable_timeout_s = enable_timeout_s
        self.zero_periods = zero_periods
        self.clock = clock or time.monotonic
        self.last_action: float | None = None
        self.last_state: float | None = None
        self.last_state_stamp: float | None = None
        self.bad_state: str = ""
        self.last_enable: float | None = None
        self.enabled = False
        self.estop_latched = False
        self.external: str = ""
        self.stale_parts: tuple[str, ...] = ()
        self._stopped_since: float | None = None
        self._zero_sent = 0
        self._was_running = False

    # -- inputs ---------------------------------------------------------------------------------
    def action_received(self) -> None:
        """A fresh, valid action arrived."""
        self.last_action = self.clock()

    def state_received(self, finite: bool, stamp_s: float | None = None) -> str:
        """A measured state arrived (``finite``: no NaN/inf in it; ``stamp_s``: its header stamp).
        Returns the problem ("" when good); a bad state counts as no state."""
        if not finite:
            self.bad_state = "a measured state with NaN/inf"
            return self.bad_state
        if stamp_s is not None:
            if self.last_state_stamp is not None and stamp_s < self.last_state_stamp:
                self.bad_state = (f"a measured state stamped {self.last_state_stamp - stamp_s:.3f} s "
                                  f"before the previous one")
                return self.bad_state
            self.last_state_stamp = stamp_s
        self.bad_state = ""
        self.last_state = self.clock()
        return ""

    def state_refused(self, reason: str) -> None:
        """A measured state the bridge will not use (e.g. a zero stamp): counts as no state."""
        self.bad_state = reason

    def parts_stale(self, names: list[str] | tuple[str, ...]) -> None:
        """The parts of the state (topics) that are not fresh now (empty: all fresh)."""
        self.stale_parts = tuple(names)

    def enable_received(self, value: bool) -> None:
        """An enable heartbeat (True: keep going; False: stop now)."""
        self.enabled = bool(value)
        self.last_enable = self.clock() if value else None

    def estop_received(self, value: bool) -> None:
        """An e-stop message; True latches the stop."""
        if value:
            self.estop_latched = True

    def reset_estop(self) -> bool:
        """Release the e-stop latch (the ``reset_estop`` service); True if it was latched."""
        was, self.estop_latched = self.estop_latched, False
        return was

    def external_stop(self, reason: str) -> None:
        """A stop reported by the arm itself (e.g. ``servo halted: collision``)."""
        self.external = reason

    def clear_external(self) -> None:
        """The arm reports it is fine again."""
        self.external = ""

    # -- verdict --------------------------------------------------------------------------------
    def reasons(self, now: float | None = None) -> tuple[str, ...]:
        """The stops in force now (most severe first)."""
        t = self.clock() if now is None else now
        active = set()
        if self.estop_latched:
            active.add("estop")
        if self.enable_timeout_s is not None and (
                not self.enabled or self.last_enable is None
                or t - self.last_enable > self.enable_timeout_s):
            active.add("deadman")
        if self.external:
            active.add("external")
        if (self.bad_state or self.stale_parts or self.last_state is None
                or t - self.last_state > self.state_timeout_s):
            active.add("stale_state")
        if self.last_action is None or t - self.last_action > self.command_timeout_s:
            active.add("command_timeout")
        return tuple(r for r in STOP_ORDER if r in active)

    def verdict(self) -> Verdict:
        """Call once per control period: run, zero or silent (see the module docstring)."""
        now = self.clock()
        reasons = self.reasons(now)
        if not reasons:
            self._stopped_since, self._zero_sent = None, 0
            self._was_running = True
            return Verdict("run")
        new_stop = self._stopped_since is None and self._was_running
        if self._stopped_since is None:
            self._stopped_since = now
        self._was_running = False
        if self._zero_sent < self.zero_periods:
            self._zero_sent += 1
            return Verdict("zero", reasons, new_stop)
        return Verdict("silent", reasons, new_stop)

    def describe(self, reasons: tuple[str, ...]) -> str:
        """Readable text of stop reasons (for logs and the safety status)."""
        words = {"estop": "e-stop latched (call reset_estop)",
                 "deadman": "enable heartbeat missing or false",
                 "external": f"the arm reports: {self.external}",
                 "stale_state": self.bad_state or (
                     f"no fresh message on {', '.join(self.stale_parts)}" if self.stale_parts
                     else "no fresh measured state"),
                 "command_timeout": "no fresh action"}
        return "; ".join(words[r] for r in reasons)


def finite(*values: float) -> bool:
    """Whether every value is a finite number."""
    return all(math.isfinite(v) for v in values)
