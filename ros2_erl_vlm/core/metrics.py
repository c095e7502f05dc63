"""Run metrics: one CSV file per stream (``train``, ``eval``, ``reward``, ...) plus TensorBoard."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.atomic_write import atomic_open

#: "Success at N": the mean of this many last evaluations up to N (the benchmarks, the run report).
SUCCESS_WINDOW = 3


def success_at(steps: Sequence[int], rates: Sequence[float],
               window: int = SUCCESS_WINDOW) -> dict[int, float]:
    """Per evaluation step N (in order), the mean success rate of the last ``window`` evaluations
    up to N."""
    out: dict[int, float] = {}
    rates = [float(r) for r in rates]
    for i, step in enumerate(steps):
        last = rates[max(0, i - window + 1):i + 1]
        out[int(step)] = sum(last) / len(last)
    return out


class MetricsLogger:
    """CSV files per stream (``train.csv``, ``eval.csv``, ``reward.csv``) plus optional TensorBoard.

    The logger owns every ``*.csv`` in its directory (:meth:`row_counts`, :meth:`truncate`)."""

    def __init__(self, log_dir: Path | None, tensorboard: bool = True,
                 purge_step: int | None = None) -> None:
        """``purge_step``: a resumed run's step; TensorBoard hides the events of earlier sittings
        logged at or after it (the CSVs are truncated with :meth:`truncate`)."""
        self.log_dir = log_dir
        self._files: dict[str, Any] = {}
        self._writers: dict[str, csv.DictWriter] = {}
        self.tb = None
        if log_dir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(log_dir / "tb"), purge_step=purge_step)
            except ImportError:  # tensorboard is optional
                self.tb = None

    def log(self, stream: str, step: int, values: dict[str, float]) -> None:
        """Append one row to ``<stream>.csv`` and TensorBoard.

        A row with keys the file has no column for widens the file (rewritten atomically with the
        union of the columns, earlier rows blank there): e.g. the SAC losses that first appear
        after the seed phase, or keys added by a newer version of a resumed run.
        """
        if self.log_dir is None:
            return
        row = {"step": step, **values}
        writer = self._writers.get(stream)
        if writer is None or not set(row) <= set(writer.fieldnames):
            writer = self._open(stream, row)
        writer.writerow(row)
        self._files[stream].flush()
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(f"{stream}/{k}", v, step)

    def _open(self, stream: str, row: dict[str, Any]) -> csv.DictWriter:
        """(Re)open ``<stream>.csv`` for appending with every column of the file and of ``row``."""
        assert self.log_dir is not None
        if stream in self._files:
            self._files.pop(stream).close()
        path = self.log_dir / f"{stream}.csv"
        rows: list[dict[str, str]] = []
        fields: list[str] = []
        if path.exists() and path.stat().st_size > 0:
            fields, rows = self._read(path)
        missing = [k for k in row if k not in fields]
        if missing or not fields:
            self._rewrite(path, fields + missing, rows)
            fields += missing
        fh = open(path, "a", newline="")  # noqa: SIM115 - kept open for the run
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        self._files[stream], self._writers[stream] = fh, writer
        return writer

    def _csv_files(self) -> list[Path]:
        return [] if self.log_dir is None else sorted(self.log_dir.glob("*.csv"))

    @staticmethod
    def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)

    @staticmethod
    def _rewrite(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
        """Replace ``path`` atomically with ``rows`` under the header ``fields``."""
        with atomic_open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, restval="")
            w.writeheader()
            w.writerows(rows)

    def row_counts(self) -> dict[str, int]:
        """Rows written so far per stream (every ``*.csv`` in the log directory): stored with a
        checkpoint so a resumed run can drop what was logged after it (:meth:`truncate`)."""
        return {p.stem: len(self._read(p)[1]) for p in self._csv_files()}

    def truncate(self, counts: dict[str, int]) -> None:
        """Keep the first ``counts[stream]`` rows of every stream (none for a stream not in
        ``counts``): on resume, rows logged after the checkpoint would otherwise appear twice."""
        for path in self._csv_files():
            if path.stem in self._files:
                self._files.pop(path.stem).close()
                self._writers.pop(path.stem)
            fields, rows = self._read(path)
            keep = int(counts.get(path.stem, 0))
            if len(rows) > keep:
                self._rewrite(path, fields, rows[:keep])

    def close(self) -> None:
        """Flush and close everything."""
        for fh in self._files.values():
            fh.close()
        if self.tb is not None:
            self.tb.close()
