"""Graceful stop on SIGINT / SIGTERM, shared by the nodes (``ros.node_base.run_node``) and the
in-process training command (``train.py``).

The first signal only asks for a stop (the owner finishes what it is doing, saves and exits); a
later one, at least :attr:`StopSignals.REPEAT_S` after it, raises ``KeyboardInterrupt`` at once
(Ctrl-C again, or ``ros2 launch`` escalating to SIGTERM). Repeats within that window are the same
request: on one Ctrl-C the terminal signals the process and a wrapper such as ``ros2 launch``
forwards another SIGINT milliseconds later. Once the owner is tearing down, no signal cuts it short.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


class StopSignals:
    """Installs the handlers for ``signals`` (restored by :meth:`restore` or on leaving a ``with``).

    Args:
        signals: the signals handled (default SIGINT and SIGTERM).
        on_first: called with the signal's name when the first one arrives (inside the handler).
    """

    REPEAT_S = 1.0

    def __init__(self, signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
                 on_first: Callable[[str], None] | None = None) -> None:
        self.received: list[str] = []
        #: Set by the owner when it starts tearing down: later signals are recorded, not raised.
        self.tearing_down = False
        self._on_first = on_first
        self._first = 0.0
        self._previous = {s: signal.signal(s, self._on_signal) for s in signals}

    def _on_signal(self, signum: int, _frame: Any) -> None:
        now = time.monotonic()
        self.received.append(signal.Signals(signum).name)
        if len(self.received) == 1:
            self._first = now
            if self._on_first is not None:
                self._on_first(self.received[0])
        elif now - self._first >= self.REPEAT_S and not self.tearing_down:
            raise KeyboardInterrupt

    def restore(self) -> None:
        """Put back the handlers that were installed before."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def stop_on_ctrl_c(trainer: Any) -> contextlib.AbstractContextManager[Any]:
    """For the training commands (in-process and offline): the first Ctrl-C sets
    ``trainer.stop_requested`` (the trainer stops at its next step boundary and checkpoints, never
    inside an update); another one a second or more later stops at once (:class:`StopSignals`).
    Only in the main thread (elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()

    def request_stop(_name: str) -> None:
        trainer.stop_requested = True
        print("\nstopping after the current step (Ctrl-C again to stop at once)", file=sys.stderr)

    return StopSignals((signal.SIGINT,), on_first=request_stop)
