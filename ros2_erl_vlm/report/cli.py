"""``python -m ros2_erl_vlm.report <run_dir> [--out DIR]`` (``erl_vlm_report``, ``./erl report``).

Turns any run directory (a graph run, an in-process run, a benchmark run; finished or still
running) into ``report.png`` (curves), ``contact_sheet.png`` (rated frames) and ``summary.txt`` /
``summary.json`` (the numbers), written to ``<run_dir>/report/`` unless ``--out`` says otherwise,
and prints where they are. A missing directory or one that holds no run exits 1 with ``error: ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ros2_erl_vlm.report.hint import REPORT_DIR, report_dir
from ros2_erl_vlm.report.read_run import RunDirError, find_run


@dataclass
class ReportFiles:
    """What :func:`make_report` wrote."""

    report_png: Path
    contact_sheet_png: Path
    summary_txt: Path
    summary_json: Path
    frames: str  # where the sheet's frames came from, in words


def make_report(run_dir: str | Path, out: str | Path | None = None, *, task: str | None = None,
                max_cells: int = 48) -> ReportFiles:
    """Read ``run_dir`` and write the report's four files (see module docstring).

    Raises:
        RunDirError: ``run_dir`` is missing or not a run directory.
    """
    from ros2_erl_vlm.report.contact_sheet import describe_frames, draw_sheet
    from ros2_erl_vlm.report.figures import draw_report
    from ros2_erl_vlm.report.learned_reward import reward_fit
    from ros2_erl_vlm.report.read_run import read_run
    from ros2_erl_vlm.report.summary import compute_summary, write_summary

    root, _ = find_run(run_dir)
    run = read_run(root, task=task)
    target = report_dir(root, out)
    target.mkdir(parents=True, exist_ok=True)
    fit = reward_fit(run)
    png = draw_report(run, fit, target / "report.png")
    sheet = draw_sheet(run, target / "contact_sheet.png", max_cells=max_cells)
    txt, js = write_summary(compute_summary(run, fit), target)
    return ReportFiles(png, sheet.path, txt, js, describe_frames(sheet))


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(prog="python -m ros2_erl_vlm.report", description=__doc__.split("\n\n")[1])
    p.add_argument("run_dir", type=Path, help="a run directory (graph, in-process or benchmark)")
    p.add_argument("--out", type=Path, help=f"where the files go (default <run_dir>/{REPORT_DIR})")
    p.add_argument("--task", help="the task, when the run does not name it (a graph run started "
                   "without --task)")
    p.add_argument("--max-frames", type=int, default=48, help="cells on the contact sheet")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (scoring the reward "
                   "models; one leaves the cores to a run that is still going)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (1: not a run directory or unreadable)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.max_frames < 1:
        print("error: --max-frames must be at least 1", file=sys.stderr)
        return 1
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        files = make_report(args.run_dir, args.out, task=args.task, max_cells=args.max_frames)
    except (RunDirError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"report:        {files.report_png}")
    print(f"contact sheet: {files.contact_sheet_png} ({files.frames})")
    print(f"summary:       {files.summary_txt} ({files.summary_json.name} beside it)")
    print(files.summary_txt.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
