"""The gripper command with hysteresis: a gripper value above ``close_above`` closes, below
``open_below`` opens, in between keeps the last command (no chattering on a noisy policy); the
measured opening normalised to MetaWorld's convention (1 open, 0 closed)."""

from __future__ import annotations


class GripperHysteresis:
    """Open/closed state from the action's gripper value (MetaWorld: +1 closes)."""

    def __init__(self, close_above: float = 0.25, open_below: float = -0.25, closed: bool = False) -> None:
        if not open_below < close_above:
            raise ValueError(f"open_below ({open_below}) must be below close_above ({close_above})")
        self.close_above, self.open_below, self.closed = close_above, open_below, closed

    def update(self, value: float) -> bool:
        """The new state (True: closed) after the action's gripper value."""
        if value > self.close_above:
            self.closed = True
        elif value < self.open_below:
            self.closed = False
        return self.closed

    @property
    def applied(self) -> float:
        """The gripper value really commanded, in the action's units (+1 closed, -1 open)."""
        return 1.0 if self.closed else -1.0


def opening(position: float, open_position: float, closed_position: float) -> float:
    """A measured gripper joint position as an opening in [0, 1] (1 open)."""
    x = (position - closed_position) / (open_position - closed_position)
    return min(1.0, max(0.0, x))
