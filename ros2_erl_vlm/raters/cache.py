"""``CachedRater``: answers repeated queries (same frames, prompt and model) for free.

The key is :func:`records.cache_key`: the query's content plus the inner rater's fingerprint.
Only ratings are cached, never abstentions (a timeout now may succeed later). Identical queries in
one batch are sent to the inner rater once. With a ``path`` the cache persists in a crash-safe
record log and survives restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.rating.rater import Rater, RatingQuery, RatingResult, Stopwatch
from ros2_erl_vlm.core.record_log import RecordLog
from ros2_erl_vlm.raters.records import cache_key, rater_fingerprint, result_from_meta, result_meta
from ros2_erl_vlm.raters.stats import RaterStats

CACHE_KIND = "rater_cache"


class CachedRater:
    """Wraps ``inner`` with an answer cache (in memory, or persistent at ``path``)."""

    def __init__(self, inner: Rater, path: str | Path | None = None, *, fsync: bool = True) -> None:
        self.inner = inner
        self.backend_id = inner.backend_id
        self.fingerprint = rater_fingerprint(inner)
        self.stats = getattr(inner, "stats", None) or RaterStats()
        self._entries: dict[str, dict[str, Any]] = {}
        self._log: RecordLog | None = None
        if path is not None:
            self._log = RecordLog(path, fsync=fsync)
            for meta in self._log.iter_meta():
                if meta.get("kind") == CACHE_KIND:
                    self._entries[meta["key"]] = meta

    def __len__(self) -> int:
        return len(self._entries)

    def rate(self, queries: Sequence[RatingQuery]) -> list[RatingResult]:
        """Answer hits from the cache, the rest from the inner rater (deduplicated)."""
        out: list[RatingResult | None] = [None] * len(queries)
        keys = [cache_key(q, self.fingerprint) for q in queries]
        pending: dict[str, list[int]] = {}
        for i, (q, key) in enumerate(zip(queries, keys, strict=True)):
            with Stopwatch() as sw:
                meta = self._entries.get(key)
            if meta is not None and int(meta["num_classes"]) == q.num_classes:
                out[i] = self._hit(q, meta, sw.elapsed)
            else:
                pending.setdefault(key, []).append(i)
        if pending:
            first = [idx[0] for idx in pending.values()]
            fresh = self.inner.rate([queries[i] for i in first])
            for (key, idx), result in zip(pending.items(), fresh, strict=True):
                out[idx[0]] = result
                if result.label is not None:
                    self._store(key, result)
                for j in idx[1:]:
                    if result.label is None:
                        out[j] = RatingResult.abstain(queries[j], result.backend, result.abstain_reason,
                                                      attempts=0)
                    else:
                        out[j] = self._hit(queries[j], self._entries[key], 0.0)
        results = [r for r in out if r is not None]
        if len(results) != len(queries):
            raise RuntimeError(f"{self.backend_id} answered {len(results)} of {len(queries)} queries")
        return results

    def _hit(self, query: RatingQuery, meta: dict[str, Any], elapsed: float) -> RatingResult:
        self.stats.count_cache_hit()
        extra = {**(meta.get("extra") or {}), "cache": "hit"}
        return result_from_meta(meta, query_id=query.query_id, latency_s=elapsed, attempts=0, extra=extra)

    def _store(self, key: str, result: RatingResult) -> None:
        meta = {"kind": CACHE_KIND, "key": key, "fingerprint": self.fingerprint, **result_meta(result)}
        if self._log is not None:
            self._log.append(meta)
        self._entries[key] = meta

    def close(self) -> None:
        """Close the cache file and the inner rater."""
        if self._log is not None:
            self._log.close()
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
