"""``RatingLogRater``: persists every result of any rater before anyone can use it.

Each result (rating or abstention, with its reason) becomes one record of a crash-safe
:class:`~ros2_erl_vlm.core.record_log.RecordLog` (see :func:`records.result_record` for the
fields), written and fsynced before ``rate`` returns. A :class:`~.replay.ReplayRater` answers from
such a log.

With ``reuse_logged``, a query whose ``query_id`` already has a logged *rating* (a request re-sent
after a restart of the asking side) is answered from the log, without asking the backend again
and without a second record.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.rating.rater import Rater, RatingQuery, RatingResult
from ros2_erl_vlm.core.record_log import RecordLog
from ros2_erl_vlm.raters.records import RESULT_KIND, rater_fingerprint, result_from_meta, result_record
from ros2_erl_vlm.raters.stats import RaterStats


class RatingLogRater:
    """Wraps ``inner``; appends every result to the log at ``path`` before returning it.

    Args:
        inner: any rater.
        path: the log file (created if missing; appended to otherwise).
        store_frames: also store each query's frames (what the VLM saw) in its record.
        fsync: fsync every record (the durability guarantee; switch off only in benchmarks).
        reuse_logged: answer re-sent query ids from the log (see module docstring).
    """

    def __init__(self, inner: Rater, path: str | Path, *, store_frames: bool = False,
                 fsync: bool = True, reuse_logged: bool = False) -> None:
        self.inner = inner
        self.backend_id = inner.backend_id
        self.fingerprint = rater_fingerprint(inner)
        self.store_frames = store_frames
        self.reuse_logged = reuse_logged
        self.log = RecordLog(path, fsync=fsync)
        self.stats = getattr(inner, "stats", None) or RaterStats()
        self._rated: dict[str, dict[str, Any]] = {}
        if reuse_logged:
            for meta in self.logged():
                self._remember(meta)

    def _remember(self, meta: dict[str, Any]) -> None:
        if self.reuse_logged and meta.get("query_id") and meta.get("label") is not None:
            self._rated[meta["query_id"]] = meta

    @property
    def path(self) -> Path:
        """The log file."""
        return self.log.path

    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """Rate with the inner rater, log every result, return them."""
        out: list[RatingResult | None] = [None] * len(queries)
        if self.reuse_logged:
            for i, q in enumerate(queries):
                meta = self._rated.get(q.query_id) if q.query_id else None
                if meta is not None and int(meta["num_classes"]) == q.num_classes:
                    extra = {**(meta.get("extra") or {}), "from_log": "1"}
                    out[i] = result_from_meta(meta, latency_s=0.0, attempts=0, extra=extra)
        todo = [i for i, r in enumerate(out) if r is None]
        results = self._inner_rate([queries[i] for i in todo]) if todo else []
        for i, r in zip(todo, results, strict=True):
            meta, arrays = result_record(queries[i], r, self.fingerprint, store_frames=self.store_frames)
            self.log.append(meta, arrays)
            self._remember(meta)
            out[i] = r
        return [r for r in out if r is not None]

    def _inner_rate(self, queries: list[RatingQuery]) -> list[RatingResult]:
        """The inner rater's results; any failure of it is an abstention of every query, never a
        lost query or a crash of the caller."""
        try:
            results = list(self.inner.rate(queries))
            if len(results) != len(queries):
                raise RuntimeError(f"gave {len(results)} results for {len(queries)} queries")
            if any(r.query_id != q.query_id for r, q in zip(results, queries, strict=True)):
                raise RuntimeError("results out of order (query ids differ)")
        except Exception as exc:
            self.stats.count_error("rater_error", retried=False)
            reason = f"rater_error: {type(exc).__name__}: {exc}"[:300]
            results = [RatingResult.abstain(q, self.backend_id, reason) for q in queries]
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
