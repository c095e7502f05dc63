"""A run's report: curves (``report.png``), rated frames (``contact_sheet.png``) and numbers
(``summary.txt``/``summary.json``) from any run directory, finished or still running.

``python -m ros2_erl_vlm.report <run_dir>``; :func:`make_report` from Python; :func:`report_hint`
is the line a training command prints at its end.
"""

from ros2_erl_vlm.report.cli import ReportFiles, make_report, report_hint

__all__ = ["ReportFiles", "make_report", "report_hint"]
