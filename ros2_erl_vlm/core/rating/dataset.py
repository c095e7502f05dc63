"""The rating dataset: rated segments, persisted before use, with stratified minibatches.

Every rating (and every abstention) is appended to a :class:`~ros2_erl_vlm.core.record_log.RecordLog`
*before* it enters the in-memory training set, so a run resumes with exactly the ratings it had and
a crash loses none. Abstentions are stored (with their reason) but never trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.rating.rater import RatingResult, check_num_classes
from ros2_erl_vlm.core.record_log import RecordLog, scan

RECORD_KIND = "rating"


class RatingDatasetError(ValueError):
    """A rating file does not match the dataset it is opened as."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a rating dataset holds: ``num_classes`` and the per-item input shape/dtype.

    ``input_shape`` is ``(T, obs_dim)`` for state segments or ``(T, H, W, 3)`` for frame segments.
    """

    num_classes: int
    input_kind: str
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        check_num_classes(self.num_classes)
        if self.input_kind not in ("state", "image"):
            raise ValueError(f"input_kind must be 'state' or 'image', got {self.input_kind!r}")
        want = 2 if self.input_kind == "state" else 4
        if len(self.input_shape) != want or min(self.input_shape) <= 0:
            raise ValueError(
                f"input_shape for {self.input_kind} segments must have {want} positive dims, "
                f"got {self.input_shape}"
            )

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype of the inputs."""
        return np.dtype(np.float32 if self.input_kind == "state" else np.uint8)


def class_weights(counts: np.ndarray) -> np.ndarray:
    """ERL-VLM class weights ``w_c = (N - n_c) / N`` rescaled so the smallest used weight is 1.

    As the reference code, the weights apply only once every class is present; until then all
    weights are 1 (with a missing class, the reference's rescaling would divide by zero).
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    w = np.ones_like(counts)
    present = counts > 0
    if total <= 0 or not present.all():
        return w.astype(np.float32)
    raw = (total - counts[present]) / total
    w[present] = raw / raw.min()
    return w.astype(np.float32)


def stratified_batches(labels: np.ndarray, batch_size: int, num_classes: int,
                       rng: np.random.Generator) -> list[np.ndarray]:
    """Partition ``range(len(labels))`` into ``ceil(N / batch_size)`` stratified minibatches.

    Every class is spread evenly over the batches (per class, batch counts differ by at most
    one) and batch sizes differ by at most one. This is a partition (each item exactly once),
    not oversampling, as in the ERL-VLM reference.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0:
        return []
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n_batches = -(-n // batch_size)
    counts = np.bincount(labels, minlength=num_classes)
    order = []
    for c in np.argsort(counts, kind="stable"):  # minority classes first
        idx = np.flatnonzero(labels == c)
        order.append(rng.permutation(idx))
    flat = np.concatenate(order)
    batches = [flat[b::n_batches] for b in range(n_batches)]
    return [rng.permutation(b) for b in batches]


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Plain shuffled partition into minibatches of ``batch_size`` (RbRL's sampler)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    perm = rng.permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


class RatingDataset:
    """In-memory training set of rated segments, optionally backed by a persistent log.

    Args:
        spec: classes and input shape.
        capacity: at most this many ratings are trained on (the newest; paper: 10,000).
        path: the rating log; ``None`` keeps everything in memory (tests, benchmarks).
        fsync: fsync every append (default True; the durability guarantee).
    """

    def __init__(self, spec: DatasetSpec, capacity: int = 10_000, path: str | Path | None = None,
                 *, fsync: bool = True) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.spec = spec
        self.capacity = int(capacity)
        self._inputs = np.zeros((self.capacity, *spec.input_shape), dtype=spec.dtype)
        self._labels = np.zeros(self.capacity, dtype=np.int64)
        self._size = 0
        self._next = 0
        self.num_abstentions = 0
        self.total_added = 0
        self._log: RecordLog | None = None
        if path is not None:
            self._log = RecordLog(path, fsync=fsync)
            for rec in self._log.records:
                self._ingest(rec.meta, rec.arrays, where=f"{path} record {rec.index}")
            self._log.forget_arrays()  # now held in the dataset's own arrays

    # -- persistence -------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The backing log file, if any."""
        return self._log.path if self._log else None

    @property
    def backup_path(self) -> Path | None:
        """Where the whole file was copied before a damaged tail was cut (None if nothing was cut)."""
        return self._log.backup_path if self._log else None

    @property
    def recovered_tail_bytes(self) -> int:
        """Bytes of a crash-truncated tail cut (after backup) when the log was opened."""
        return self._log.recovered_tail_bytes if self._log else 0

    def _ingest(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], where: str) -> None:
        if meta.get("kind") != RECORD_KIND:
            return
        if int(meta.get("num_classes", -1)) != self.spec.num_classes:
            raise RatingDatasetError(
                f"{where}: rating has {meta.get('num_classes')} classes, dataset expects "
                f"{self.spec.num_classes}"
            )
        if meta.get("label") is None:
            self.num_abstentions += 1
            return
        x = arrays.get("input")
        if x is None or tuple(x.shape) != self.spec.input_shape:
            raise RatingDatasetError(
                f"{where}: input shape {None if x is None else tuple(x.shape)} does not match "
                f"the dataset's {self.spec.input_shape} ({self.spec.input_kind})"
            )
        label = meta["label"]
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < self.spec.num_classes:
            raise RatingDatasetError(
                f"{where}: label {label!r} is not a class index in [0, {self.spec.num_classes})")
        if not np.all(np.isfinite(x)):
            raise RatingDatasetError(f"{where}: input holds non-finite values")
        self._store(x, label)

    def _store(self, x: np.ndarray, label: int) -> None:
        self._inputs[self._next] = x
        self._labels[self._next] = label
        self._next = (self._next + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self.total_added += 1

    def add(self, inputs: np.ndarray, result: RatingResult, **meta: Any) -> bool:
        """Persist one rater result and, if it is a rating (not an abstention), add it.

        ``inputs`` is the segment the reward model sees (states or frames, ``spec.input_shape``).
        Extra ``meta`` (episode, steps, ...) is stored with the record. Returns True when the
        result was a rating and is now trainable.
        """
        if result.num_classes != self.spec.num_classes:
            raise RatingDatasetError(
                f"result has {result.num_classes} classes, dataset expects {self.spec.num_classes}"
            )
        x = np.asarray(inputs)
        if x.dtype != self.spec.dtype:
            x = x.astype(self.spec.dtype)
        if tuple(x.shape) != self.spec.input_shape:
            raise RatingDatasetError(
                f"input shape {tuple(x.shape)} does not match the dataset's {self.spec.input_shape}"
            )
        if self.spec.input_kind == "state" and not np.all(np.isfinite(x)):
            raise RatingDatasetError("rated state segment contains NaN or inf")
        record = {
            "kind": RECORD_KIND,
            "time": time.time(),
            "query_id": result.query_id,
            "label": result.label,
            "num_classes": result.num_classes,
            "backend": result.backend,
            "probabilities": list(result.probabilities) if result.probabilities else None,
            "rationale": result.rationale,
            "abstain_reason": result.abstain_reason,
            "latency_s": result.latency_s,
            "attempts": result.attempts,
            **meta,
        }
        if self._log is not None:
            self._log.append(record, {"input": x})
        if result.label is None:
            self.num_abstentions += 1
            return False
        self._store(x, result.label)
        return True

    def close(self) -> None:
        """Close the backing log."""
        if self._log is not None:
            self._log.close()

    # -- views -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    @property
    def inputs(self) -> np.ndarray:
        """Stored inputs, ``(len, *input_shape)`` (a view)."""
        return self._inputs[: self._size]

    @property
    def labels(self) -> np.ndarray:
        """Stored labels, ``(len,)`` int64 (a view)."""
        return self._labels[: self._size]

    def class_counts(self) -> np.ndarray:
        """Number of ratings per class."""
        return np.bincount(self.labels, minlength=self.spec.num_classes)

    def class_weights(self) -> np.ndarray:
        """Per-class loss weights (see :func:`class_weights`)."""
        return class_weights(self.class_counts())

    def minibatches(self, batch_size: int, rng: np.random.Generator, *,
                    stratified: bool = True) -> list[np.ndarray]:
        """One epoch of minibatch index arrays (stratified by default)."""
        if stratified:
            return stratified_batches(self.labels, batch_size, self.spec.num_classes, rng)
        return random_batches(len(self), batch_size, rng)


def read_ratings(path: str | Path) -> list[dict[str, Any]]:
    """Metadata of every rating/abstention in a log (read-only; for tools and replay)."""
    return [r.meta for r in scan(path).records if r.meta.get("kind") == RECORD_KIND]
