"""A run's report: curves (``report.png``), rated frames (``contact_sheet.png``) and numbers
(``summary.txt``/``summary.json``) from any run directory, finished or still running.

``python -m ros2_erl_vlm.report <run_dir>`` (:mod:`ros2_erl_vlm.report.cli`); :func:`make_report`
from Python; :func:`report_hint` is the line a training command prints at its end (importing this
package stays light: the report's own modules load when a report is made).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ros2_erl_vlm.report.hint import REPORT_DIR, report_dir, report_hint

__all__ = ["REPORT_DIR", "make_report", "report_dir", "report_hint"]


def make_report(run_dir: str | Path, out: str | Path | None = None, **kwargs: Any) -> Any:
    """Write ``run_dir``'s report (:func:`ros2_erl_vlm.report.cli.make_report`); returns its files."""
    from ros2_erl_vlm.report.cli import make_report as make

    return make(run_dir, out, **kwargs)
