"""The end-effector target a normalised action moves, kept safe (MetaWorld's mocap semantics).

Each control period the target moves by ``action[:3] * step_m`` (as MetaWorld moves its mocap by
``action * 0.01`` per step), then three limits apply, in this order:

1. the per-step clamp: the motion is at most ``max_speed_m_s / rate_hz`` (the speed cap; the
   direction is kept, the length shortened);
2. the leash: the target stays within ``leash_m`` of the measured end effector on each axis, so a
   blocked or slowed arm never has a target running away from it (the target waits for the arm);
3. the workspace box: the target is clipped to it (no default: required on a real arm).

:meth:`WorkspaceTarget.step` returns what was really commanded (LeRobot's ``send_action``
contract): the new target, the motion, and the normalised action that motion corresponds to,
which the bridge reports as ``action_taken``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The servo twist approaches a face of the box no faster than its distance per this time (s):
#: an arm that lags its command by tens of milliseconds stops at the face instead of overshooting.
FACE_APPROACH_S = 0.1


@dataclass(frozen=True)
class Box:
    """An axis-aligned box (metres)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, low: object, high: object) -> Box:
        """A box from two corners; ValueError unless low < high on every axis."""
        lo, hi = np.asarray(low, np.float64).reshape(3), np.asarray(high, np.float64).reshape(3)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
            raise ValueError(f"a box needs finite corners with min < max on every axis, got {lo} .. {hi}")
        return cls(lo, hi)

    def clip(self, p: np.ndarray) -> np.ndarray:
        """The nearest point of the box."""
        return np.clip(p, self.low, self.high)

    def contains(self, p: np.ndarray, tolerance: float = 0.0) -> bool:
        """Whether ``p`` lies in the box grown by ``tolerance``."""
        return bool(np.all(p >= self.low - tolerance) and np.all(p <= self.high + tolerance))

    def distance_outside(self, p: np.ndarray) -> float:
        """How far ``p`` lies outside the box (0 inside)."""
        return float(np.linalg.norm(p - self.clip(p)))


@dataclass(frozen=True)
class TargetStep:
    """What one control period commanded."""

    target: np.ndarray
    #: the target's motion this period (m)
    delta: np.ndarray
    #: ``delta / step_m`` (within [-1, 1]): the normalised xyz action really applied
    applied: np.ndarray
    #: which limits acted: any of "speed", "leash", "box"
    limited: tuple[str, ...]


class WorkspaceTarget:
    """The integrated end-effector target (see the module docstring).

    Args:
        step_m: target motion of a full action per control period (m).
        max_step_m: the per-period clamp (``max_speed_m_s / rate_hz``).
        leash_m: largest per-axis distance of the target ahead of the measured pose.
        box: the workspace box, or None (simulation: MetaWorld clips its mocap itself).
    """

    def __init__(self, step_m: float, max_step_m: float, leash_m: float, box: Box | None) -> None:
        if not (step_m > 0 and max_step_m > 0 and leash_m > 0):
            raise ValueError("step_m, max_step_m and leash_m must be positive")
        self.step_m, self.max_step_m, self.leash_m, self.box = step_m, max_step_m, leash_m, box
        self.target: np.ndarray | None = None
        self.last_delta = np.zeros(3)

    def reset(self, measured: np.ndarray) -> np.ndarray:
        """Start from the measured pose (clipped into the box): no jump at the first step."""
        p = np.asarray(measured, np.float64).reshape(3)
        self.target = self.box.clip(p) if self.box is not None else p.copy()
        self.last_delta = np.zeros(3)
        return self.target.copy()

    def step(self, action_xyz: np.ndarray, measured: np.ndarray) -> TargetStep:
        """Move the target by a (checked, [-1, 1]) xyz action against the measured pose."""
        m = np.asarray(measured, np.float64).reshape(3)
        if self.target is None:
            self.reset(m)
        assert self.target is not None
        limited = []
        d = np.asarray(action_xyz, np.float64).reshape(3) * self.step_m
        n = float(np.linalg.norm(d))
        if n > self.max_step_m:
            d *= self.max_step_m / n
            limited.append("speed")
        t = self.target + d
        leashed = np.clip(t, m - self.leash_m, m + self.leash_m)
        if not np.allclose(leashed, t):
            limited.append("leash")
            t = leashed
        if self.box is not None:
            boxed = self.box.clip(t)
            if not np.allclose(boxed, t):
                limited.append("box")
                t = boxed
        delta = t - self.target
        self.target, self.last_delta = t, delta
        applied = np.clip(delta / self.step_m, -1.0, 1.0).astype(np.float32)
        return TargetStep(t.copy(), delta, applied, tuple(limited))

    def hold(self, measured: np.ndarray) -> TargetStep:
        """Hold still where the hand is: the target is the measured pose (in the box), so no lead
        is left for the controller to chase (a zero action on an arm: an operator who let go of the
        deadman, a held step)."""
        m = np.asarray(measured, np.float64).reshape(3)
        t = self.box.clip(m) if self.box is not None else m.copy()
        delta = t - (self.target if self.target is not None else t)
        self.target, self.last_delta = t, np.zeros(3)
        return TargetStep(t.copy(), delta, np.zeros(3, np.float32), ())

    def move_to(self, point: np.ndarray) -> None:
        """Set the target directly (the scripted move home; clipped to the box)."""
        p = np.asarray(point, np.float64).reshape(3)
        p = self.box.clip(p) if self.box is not None else p
        self.last_delta = p - (self.target if self.target is not None else p)
        self.target = p

    def velocity(self, measured: np.ndarray, period_s: float, max_speed: float,
                 gain: float = 2.0) -> np.ndarray:
        """The servo dialect's twist (m/s): the target's own motion this period (feed-forward)
        plus ``gain`` (1/s) times the distance the arm was behind the previous target, capped at
        ``max_speed``. Near a face of the box the outward part slows down: at most the distance
        to the face per :data:`FACE_APPROACH_S` (or per period, if longer), zero at the face, so an
        arm whose controller lags the command does not coast through it."""
        assert self.target is not None, "reset() first"
        m = np.asarray(measured, np.float64).reshape(3)
        v = self.last_delta / period_s + gain * (self.target - self.last_delta - m)
        n = float(np.linalg.norm(v))
        if n > max_speed:
            v *= max_speed / n
        if self.box is not None:
            tau = max(period_s, FACE_APPROACH_S)
            v = np.minimum(v, np.maximum(0.0, (self.box.high - m) / tau))
            v = np.maximum(v, np.minimum(0.0, (self.box.low - m) / tau))
        return v
