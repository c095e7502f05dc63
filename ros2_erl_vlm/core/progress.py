"""Live progress of a training run: the ``[progress]`` line the ``sac_agent`` node logs, and the
recent env-step rate behind its steps/s and ETA. ROS-free and pure (no clock is read here).

Example::

    [progress] step 12000/30000 (40%) | 41.3 steps/s | ETA 7m16s | episodes 24 | eval success 0.30 |
    ratings 150 (+3 abstained), truth agreement 81% | reward model v3

(one line). A value not known yet is shown as ``-``.
"""

from __future__ import annotations

import math
from collections import deque

#: The token every progress line starts with (what to grep for).
TOKEN = "[progress]"


def format_duration(seconds: float | None) -> str:
    """``seconds`` as ``45s``, ``12m30s`` or ``3h05m`` (``-`` when None, negative or not finite)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def eta_seconds(step: int, total_steps: int, steps_per_s: float | None) -> float | None:
    """Seconds until ``total_steps`` at ``steps_per_s`` (0 when done, None when the rate is unknown)."""
    if step >= total_steps:
        return 0.0
    if steps_per_s is None or not math.isfinite(steps_per_s) or steps_per_s <= 0:
        return None
    return (total_steps - step) / steps_per_s


def _known(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def progress_line(*, step: int, total_steps: int, steps_per_s: float | None, episodes: int,
                  success_rate: float | None, ratings: int | None, abstentions: int = 0,
                  agreement: float | None = None, show_agreement: bool = True,
                  model_version: int = 0) -> str:
    """The one-line progress report of a training run (module docstring has an example).

    Args:
        step: env steps done.
        total_steps: env steps of the run.
        steps_per_s: recent env-step rate (None / NaN: not known yet); the ETA follows from it.
        episodes: episodes finished.
        success_rate: the last evaluation's success rate (None: no evaluation yet, or none at all).
        ratings: ratings (answers) received so far; None when the run rates nothing (true reward).
        abstentions: rater abstentions so far (shown only when there are some).
        agreement: the newest round's share of ratings equal to the simulator's truth class.
        show_agreement: include the agreement field (False on a real arm, where no truth exists).
        model_version: the reward model in use (0: none yet, shown as ``-``).
    """
    pct = f" ({100.0 * step / total_steps:.0f}%)" if total_steps > 0 else ""
    parts = [f"{TOKEN} step {step}/{total_steps}{pct}",
             f"{steps_per_s:.1f} steps/s" if _known(steps_per_s) else "- steps/s",
             f"ETA {format_duration(eta_seconds(step, total_steps, steps_per_s))}",
             f"episodes {episodes}",
             f"eval success {success_rate:.2f}" if _known(success_rate) else "eval success -"]
    if ratings is None:
        rated = "ratings -"
    else:
        rated = f"ratings {ratings}" + (f" (+{abstentions} abstained)" if abstentions else "")
    if show_agreement:
        rated += f", truth agreement {agreement:.0%}" if _known(agreement) else ", truth agreement -"
    parts.append(rated)
    parts.append(f"reward model v{model_version}" if model_version > 0 else "reward model -")
    return " | ".join(parts)


class RecentRate:
    """Steps per second over a sliding time window, from ``(time, step)`` samples.

    Args:
        window_s: samples older than this (relative to the newest) are dropped; the one just before
            the window is kept, so the rate always spans at least ``window_s`` once the run is older.
    """

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = float(window_s)
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, t: float, step: int) -> None:
        """Record that ``step`` env steps were done at time ``t`` (seconds, monotonic)."""
        self.samples.append((float(t), int(step)))
        while len(self.samples) > 2 and t - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Steps per second between the oldest kept and the newest sample (None: fewer than two
        samples, or no time between them)."""
        if len(self.samples) < 2:
            return None
        (t0, s0), (t1, s1) = self.samples[0], self.samples[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None
