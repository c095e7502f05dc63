"""Where a run's report goes and the line a training command prints about it at its end.

Kept free of heavy imports: the graph runner and the in-process trainer import it to print
:func:`report_hint` when they finish.
"""

from __future__ import annotations

from pathlib import Path

#: The report's folder inside a run directory (when ``--out`` is not given).
REPORT_DIR = "report"


def report_dir(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Where the report of ``run_dir`` goes: ``out``, else ``<run_dir>/report``."""
    return Path(out) if out is not None else Path(run_dir) / REPORT_DIR


def report_hint(run_dir: str | Path) -> str:
    """One line for the end of a training command: how to make the run's report and where it lands."""
    out = report_dir(run_dir)
    return (f"run report: python -m ros2_erl_vlm.report {run_dir} (or ./erl report {run_dir}) writes "
            f"{out}/report.png, contact_sheet.png and summary.txt; it also works while a run is going")
