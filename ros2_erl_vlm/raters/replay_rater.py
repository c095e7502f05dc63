"""``ReplayRater``: replays a run's answers from its rating log (see :mod:`.rating_log`).

A query is matched by its content (frames, instruction, class names; the default) or by its
``query_id``. If the log holds several answers for one match (the run asked twice), they are given
back in the order they were logged, then the last one again. Recorded abstentions replay as
abstentions. A query the log never answered is an abstention with reason ``"not in log"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult
from ros2_erl_vlm.core.record_log import scan
from ros2_erl_vlm.raters.records import RESULT_KIND, content_key, result_from_meta
from ros2_erl_vlm.raters.stats import RaterStats

MATCH_MODES = ("content", "query_id")
NOT_IN_LOG = "not in log"


class ReplayRater:
    """Answers from one or more rating logs (read-only; the logs may still be written to)."""

    def __init__(self, paths: str | Path | Sequence[str | Path], *, match: str = "content",
                 backend: str | None = None, backend_id: str = "replay") -> None:
        if match not in MATCH_MODES:
            raise ValueError(f"replay match must be one of {MATCH_MODES}, got {match!r}")
        self.match = match
        self.backend_id = backend_id
        self.fingerprint = backend_id
        self.stats = RaterStats()
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._cursor: dict[str, int] = {}
        path_list = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not path_list:
            raise ValueError("replay needs at least one rating log")
        for path in path_list:
            if not Path(path).is_file():
                raise ValueError(f"replay rating log {path} does not exist")
            for rec in scan(path).records:
                meta = rec.meta
                if meta.get("kind") != RESULT_KIND or (backend and meta.get("backend") != backend):
                    continue
                key = meta["content_key"] if match == "content" else meta.get("query_id", "")
                self._answers.setdefault(key, []).append(meta)

    def __len__(self) -> int:
        return sum(len(v) for v in self._answers.values())

    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """One replayed result per query (or ``"not in log"``)."""
        out = []
        for q in queries:
            key = content_key(q) if self.match == "content" else q.query_id
            answers = self._answers.get(key)
            metas = [m for m in answers or () if int(m["num_classes"]) == q.num_classes]
            if not metas:
                result = RatingResult.abstain(q, self.backend_id, NOT_IN_LOG, attempts=0)
            else:
                i = self._cursor.get(key, 0)
                self._cursor[key] = i + 1
                meta = metas[min(i, len(metas) - 1)]
                extra = {**(meta.get("extra") or {}), "replayed_backend": str(meta.get("backend", ""))}
                result = result_from_meta(meta, query_id=q.query_id, backend=self.backend_id,
                                          latency_s=0.0, attempts=0, extra=extra)
            self.stats.count_result(result)
            out.append(result)
        return out
