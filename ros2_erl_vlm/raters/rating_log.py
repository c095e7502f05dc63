"""``RatingLogRater``: persists every result of any rater before anyone can use it.

Each result (rating or abstention, with its reason) becomes one record of a crash-safe
:class:`~ros2_erl_vlm.core.record_log.RecordLog` (see :func:`records.result_record` for the
fields), written and fsynced before ``rate`` returns. A :class:`~.replay.ReplayRater` answers from
such a log.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.rating import Rater, RatingQuery, RatingResult
from ros2_erl_vlm.core.record_log import RecordLog
from ros2_erl_vlm.raters.records import RESULT_KIND, rater_fingerprint, result_record
from ros2_erl_vlm.raters.stats import RaterStats


class RatingLogRater:
    """Wraps ``inner``; appends every result to the log at ``path`` before returning it.

    Args:
        inner: any rater.
        path: the log file (created if missing; appended to otherwise).
        store_frames: also store each query's frames (what the VLM saw) in its record.
        fsync: fsync every record (the durability guarantee; switch off only in benchmarks).
    """

    def __init__(self, inner: Rater, path: str | Path, *, store_frames: bool = False,
                 fsync: bool = True) -> None:
        self.inner = inner
        self.backend_id = inner.backend_id
        self.fingerprint = rater_fingerprint(inner)
        self.store_frames = store_frames
        self.log = RecordLog(path, fsync=fsync)
        self.stats = getattr(inner, "stats", None) or RaterStats()

    @property
    def path(self) -> Path:
        """The log file."""
        return self.log.path

    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """Rate with the inner rater, log every result, return them."""
        results = self.inner.rate(queries)
        if len(results) != len(queries):
            raise RuntimeError(f"{self.backend_id} gave {len(results)} results for {len(queries)} queries")
        for q, r in zip(queries, results, strict=True):
            meta, arrays = result_record(q, r, self.fingerprint, store_frames=self.store_frames)
            self.log.append(meta, arrays)
        return results

    def logged(self) -> list[dict[str, Any]]:
        """Metadata of every result record in the log, oldest first."""
        return [m for m in self.log.iter_meta() if m.get("kind") == RESULT_KIND]

    def close(self) -> None:
        """Close the log and the inner rater."""
        self.log.close()
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> RatingLogRater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
