"""How good were the ratings? Scoring a rater against simulator truth.

In simulation every rated segment has a known truth (MetaWorld's task progress and success flag).
The loop stores that truth with each rating record (:func:`truth_meta`), so a run's ratings can be
scored afterwards, as the reference code's per-round label-accuracy diagnostic does: a confusion
matrix of truth class (the task's own binning) against the rater's answer, the share of rated
states that were truly above the bottom class (how much signal the ratings could carry at all),
and the top class against the success flag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ros2_erl_vlm.core.rating.rater import SimTruth

#: ``bin_truth(progress, success, n) -> class`` (``TaskSpec.bin_truth``).
BinFn = Callable[[float, bool, int], int]

_ORACLE_RATIONALE = re.compile(r"^truth class (\d+)$")


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def truth_meta(truth: Sequence[SimTruth] | None) -> dict[str, Any]:
    """Rating-record metadata for a segment's simulator truth: its last step's ``truth_progress``,
    ``truth_success`` and ``truth_reward`` (a segment is rated by its outcome); empty without truth."""
    if not truth:
        return {}
    last = truth[-1]
    return {"truth_progress": _finite_or_none(last.progress), "truth_success": bool(last.success),
            "truth_reward": _finite_or_none(last.reward)}


def record_truth_class(record: Mapping[str, Any], bin_truth: BinFn, n: int) -> int | None:
    """The truth class of one rating record, or None when it carries no usable truth.

    Uses the stored truth (:func:`truth_meta`); records written before the truth was stored fall
    back to the oracle's own rationale (``"truth class k"``), which is its noiseless class.
    """
    if "truth_success" in record:
        if record["truth_success"]:
            return n - 1
        progress = record.get("truth_progress")
        return None if progress is None else int(bin_truth(float(progress), False, n))
    if record.get("backend") == "oracle":
        m = _ORACLE_RATIONALE.match(str(record.get("rationale") or ""))
        if m and int(m.group(1)) < n:
            return int(m.group(1))
    return None


def agreement(truth: np.ndarray, rated: np.ndarray, success: np.ndarray | None, n: int) -> dict[str, Any]:
    """Confusion matrix (rows truth, columns rating) and summary numbers (None where undefined,
    e.g. accuracy with nothing answered).

    ``rated`` is -1 for an abstention; ``success`` (optional) is the simulator's success flag, for
    the top class's precision/recall against it.
    """
    truth = np.asarray(truth, dtype=int)
    rated = np.asarray(rated, dtype=int)
    answered = rated >= 0
    cm = np.zeros((n, n), dtype=int)
    np.add.at(cm, (truth[answered], rated[answered]), 1)
    total = int(cm.sum())
    acc = kappa = None
    if total:
        acc = float(np.trace(cm) / total)
        expected = float((cm.sum(1) @ cm.sum(0)) / total**2)
        kappa = (acc - expected) / (1 - expected) if expected < 1 else None
    out: dict[str, Any] = {
        "confusion": cm.tolist(),
        "abstentions_by_truth": [int(np.sum((truth == c) & ~answered)) for c in range(n)],
        "answered": total, "abstained": int(np.sum(~answered)),
        "accuracy": None if acc is None else round(acc, 4),
        "cohen_kappa": None if kappa is None else round(kappa, 4),
        "recall_per_class": [round(float(cm[c, c] / cm[c].sum()), 4) if cm[c].sum() else None
                             for c in range(n)],
        "truth_class_counts": np.bincount(truth, minlength=n).tolist(),
        "truly_above_bottom": round(float(np.mean(truth > 0)), 4) if len(truth) else None,
    }
    if success is not None:
        success = np.asarray(success, dtype=bool)
        top = rated == n - 1
        tp = int(np.sum(top & success & answered))
        out["top_class_vs_success"] = {
            "precision": round(tp / int(np.sum(top)), 4) if np.sum(top) else None,
            "recall": round(tp / int(np.sum(success & answered)), 4) if np.sum(success & answered) else None,
        }
    return out


def round_quality(answers: Iterable[tuple[Sequence[SimTruth] | None, int | None]], bin_truth: BinFn,
                  n: int) -> dict[str, float]:
    """Rating quality of one round against simulator truth (the reference code logs the top class's
    accuracy per round; this is the whole-class view).

    ``answers`` holds ``(segment truth, label)`` per query of the round, ``label`` None for an
    abstention. Returns ``truth_above_bottom`` (share of the round's segments truly above the bottom
    class: the signal the ratings could carry at all) and ``truth_agreement`` (share of the answered
    ones rated as their truth class), each only when defined; empty without simulator truth.
    """
    classes, labels = [], []
    for truth, label in answers:
        c = record_truth_class(truth_meta(truth), bin_truth, n)
        if c is not None:
            classes.append(c)
            labels.append(-1 if label is None else int(label))
    if not classes:
        return {}
    truth_cls, rated = np.array(classes), np.array(labels)
    out = {"truth_above_bottom": float(np.mean(truth_cls > 0))}
    if np.any(rated >= 0):
        out["truth_agreement"] = float(np.mean(truth_cls[rated >= 0] == rated[rated >= 0]))
    return out


def describe_round_quality(quality: Mapping[str, float]) -> str:
    """:func:`round_quality` as words for a log line ("" without simulator truth)."""
    parts = []
    if "truth_agreement" in quality:
        parts.append(f"rater agreed with simulator truth on {quality['truth_agreement']:.0%}")
    if "truth_above_bottom" in quality:
        parts.append(f"{quality['truth_above_bottom']:.0%} truly above the bottom class")
    return ", ".join(parts)


def ratings_agreement(records: Iterable[Mapping[str, Any]], bin_truth: BinFn, n: int) -> dict[str, Any]:
    """:func:`agreement` over a rating log's records (``read_ratings``); records without truth
    are skipped and counted as ``without_truth``."""
    truth, rated, success = [], [], []
    skipped = 0
    for rec in records:
        t = record_truth_class(rec, bin_truth, n)
        if t is None:
            skipped += 1
            continue
        truth.append(t)
        rated.append(-1 if rec.get("label") is None else int(rec["label"]))
        success.append(t == n - 1 if "truth_success" not in rec else bool(rec["truth_success"]))
    out = agreement(np.array(truth, dtype=int), np.array(rated, dtype=int), np.array(success, dtype=bool), n)
    out["without_truth"] = skipped
    return out
