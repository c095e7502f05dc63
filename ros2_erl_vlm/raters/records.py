"""Query keys and the record form of rater results (shared by the rating log, cache and replay).

* ``content_key(query)``: what was asked: the frames' bytes (or, without frames, the states and
  the segment's place), the instruction and the class names. Two queries with the same key show
  the VLM the same thing.
* ``cache_key(query, fingerprint)``: content plus the rater's ``fingerprint`` (model, prompt,
  decoding settings), so a cached answer is only reused by a rater that would ask the same way.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np

from ros2_erl_vlm.core.rating.rater import Rater, RatingQuery, RatingResult

RESULT_KIND = "rater_result"


def rater_fingerprint(rater: Rater) -> str:
    """What makes a rater's answers reproducible: its ``fingerprint`` or else its backend id."""
    return str(getattr(rater, "fingerprint", None) or rater.backend_id)


def _digest_array(h: Any, name: str, arr: np.ndarray) -> None:
    a = np.ascontiguousarray(arr)
    h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
    h.update(a.tobytes())


def content_key(query: RatingQuery) -> str:
    """Hex digest of what the query shows and asks (see module docstring)."""
    h = hashlib.sha256()
    h.update(json.dumps([query.instruction, list(query.class_names)]).encode())
    if query.frames is not None:
        _digest_array(h, "frames", query.frames)
    else:
        h.update(json.dumps([query.episode, list(query.steps)]).encode())
        if query.states is not None:
            _digest_array(h, "states", query.states)
    return h.hexdigest()


def cache_key(query: RatingQuery, fingerprint: str) -> str:
    """Hex digest of the query's content and the rater's fingerprint."""
    return hashlib.sha256(f"{content_key(query)}|{fingerprint}".encode()).hexdigest()


def result_meta(result: RatingResult) -> dict[str, Any]:
    """The JSON-able fields of a result."""
    return {
        "query_id": result.query_id, "label": result.label, "num_classes": result.num_classes,
        "backend": result.backend,
        "probabilities": list(result.probabilities) if result.probabilities is not None else None,
        "rationale": result.rationale, "abstain_reason": result.abstain_reason,
        "latency_s": result.latency_s, "attempts": result.attempts, "extra": dict(result.extra),
    }


def result_from_meta(meta: dict[str, Any], **overrides: Any) -> RatingResult:
    """Rebuild a result from :func:`result_meta` fields (``overrides`` replace fields)."""
    fields = {
        "query_id": meta.get("query_id", ""), "label": meta.get("label"),
        "num_classes": int(meta["num_classes"]), "backend": meta.get("backend", ""),
        "probabilities": meta.get("probabilities"), "rationale": meta.get("rationale", ""),
        "abstain_reason": meta.get("abstain_reason", ""), "latency_s": float(meta.get("latency_s", 0.0)),
        "attempts": int(meta.get("attempts", 1)), "extra": dict(meta.get("extra") or {}),
    }
    fields.update(overrides)
    return RatingResult(**fields)


def result_record(query: RatingQuery, result: RatingResult, fingerprint: str,
                  *, store_frames: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One rating-log record (meta, arrays) for a query and its result."""
    meta = {
        "kind": RESULT_KIND, "time": time.time(), "episode": query.episode, "steps": list(query.steps),
        "instruction": query.instruction, "class_names": list(query.class_names),
        "content_key": content_key(query), "fingerprint": fingerprint,
        **result_meta(result),
    }
    arrays = {"frames": query.frames} if store_frames and query.frames is not None else {}
    return meta, arrays
