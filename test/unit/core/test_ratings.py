"""Rating dataset: class weights, stratified batches, crash-safe persistence."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.dataset import (
    DatasetSpec,
    RatingDataset,
    RatingDatasetError,
    class_weights,
    read_ratings,
    stratified_batches,
)
from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult
from ros2_erl_vlm.core.record_log import (
    RecordLog,
    RecordLogCorruptError,
    RecordLogError,
    RecordLogLockedError,
    scan,
)


def _result(label: int | None, n: int = 3, qid: str = "q") -> RatingResult:
    if label is None:
        return RatingResult(qid, None, n, "test", abstain_reason="timeout")
    return RatingResult(qid, label, n, "test")


def test_class_weights_formula() -> None:
    w = class_weights(np.array([90, 10]))
    # (N - n_c)/N = .1, .9 -> rescaled so min is 1
    assert np.allclose(w, [1.0, 9.0])
    w3 = class_weights(np.array([50, 30, 20]))
    assert np.allclose(w3, np.array([0.5, 0.7, 0.8]) / 0.5)


def test_class_weights_single_or_absent_class() -> None:
    assert np.allclose(class_weights(np.array([10, 0, 0])), [1, 1, 1])
    assert np.allclose(class_weights(np.array([0, 0])), [1, 1])
    # as the reference: no weighting until every class has been rated at least once
    assert np.allclose(class_weights(np.array([9, 0, 1])), [1.0, 1.0, 1.0])


def test_stratified_batches_spread_every_class() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 700 + [1] * 37 + [2] * 263)
    batches = stratified_batches(labels, 128, 3, rng)
    assert len(batches) == 8
    allidx = np.concatenate(batches)
    assert sorted(allidx.tolist()) == list(range(1000))  # a partition
    sizes = [len(b) for b in batches]
    assert max(sizes) - min(sizes) <= 1
    assert max(sizes) <= 128
    for c in range(3):
        per_batch = [int((labels[b] == c).sum()) for b in batches]
        assert max(per_batch) - min(per_batch) <= 1, (c, per_batch)


def test_random_vs_stratified_minority_presence() -> None:
    rng = np.random.default_rng(1)
    labels = np.array([0] * 1000 + [1] * 8)
    strat = stratified_batches(labels, 128, 2, rng)
    assert [int((labels[b] == 1).sum()) for b in strat] == [1] * len(strat)


SPEC4 = DatasetSpec(3, "state", (1, 4))


def _ten_ratings_and_an_abstention(path) -> RatingDataset:
    ds = RatingDataset(SPEC4, path=path)
    for i in range(10):
        ds.add(np.full((1, 4), i, np.float32), _result(i % 3, qid=f"q{i}"), episode=i)
    ds.add(np.zeros((1, 4), np.float32), _result(None))
    return ds


def test_dataset_counts_ratings_and_abstentions_apart(tmp_path) -> None:
    ds = _ten_ratings_and_an_abstention(tmp_path / "ratings.erlr")
    assert len(ds) == 10
    assert ds.num_abstentions == 1
    ds.close()


def test_dataset_resumes_from_its_log(tmp_path) -> None:
    path = tmp_path / "ratings.erlr"
    _ten_ratings_and_an_abstention(path).close()
    again = RatingDataset(SPEC4, path=path)
    assert len(again) == 10
    assert again.num_abstentions == 1
    assert again.labels.tolist() == [i % 3 for i in range(10)]
    assert np.allclose(again.inputs[:, 0, 0], np.arange(10))
    again.close()


def test_rating_log_keeps_abstentions_and_episodes(tmp_path) -> None:
    path = tmp_path / "ratings.erlr"
    _ten_ratings_and_an_abstention(path).close()
    metas = read_ratings(path)
    assert metas[-1]["label"] is None
    assert metas[-1]["abstain_reason"] == "timeout"
    assert metas[3]["episode"] == 3


def test_dataset_capacity_keeps_newest() -> None:
    ds = RatingDataset(DatasetSpec(2, "state", (1, 2)), capacity=3)
    for i in range(5):
        ds.add(np.full((1, 2), i, np.float32), _result(i % 2, n=2))
    assert len(ds) == 3
    assert sorted(ds.inputs[:, 0, 0].tolist()) == [2, 3, 4]


def test_truncated_tail_is_backed_up_and_cut(tmp_path) -> None:
    spec = DatasetSpec(2, "state", (1, 3))
    path = tmp_path / "r.erlr"
    ds = RatingDataset(spec, path=path)
    for i in range(4):
        ds.add(np.ones((1, 3), np.float32) * i, _result(i % 2, n=2))
    ds.close()
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # crash mid-write of the last record
    ds2 = RatingDataset(spec, path=path)
    assert len(ds2) == 3
    assert ds2.recovered_tail_bytes > 0
    backups = list(tmp_path.glob("r.erlr.bak-*"))
    assert len(backups) == 1
    assert backups[0].read_bytes() == whole[:-7]  # nothing lost
    ds2.add(np.ones((1, 3), np.float32), _result(1, n=2))
    ds2.close()
    assert len(RatingDataset(spec, path=path)) == 4


def test_corrupt_middle_record_raises_naming_file(tmp_path) -> None:
    path = tmp_path / "r.erlr"
    with RecordLog(path) as log:
        for i in range(3):
            log.append({"kind": "x", "i": i}, {"a": np.arange(5)})
    data = bytearray(path.read_bytes())
    data[30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RecordLogCorruptError, match=r"r\.erlr: record 0 at byte 0"):
        RecordLog(path)
    assert path.read_bytes() == bytes(data)  # untouched


@pytest.mark.parametrize("damage", ["zeros", "flipped_last", "garbage_tail"])
def test_damaged_last_record_is_a_recoverable_tail(tmp_path, damage) -> None:
    """A power loss can leave zeros or garbage where the last record was being written: that is a
    damaged tail (backed up and cut), not a reason to refuse the whole log."""
    path = tmp_path / "r.erlr"
    with RecordLog(path) as log:
        for i in range(3):
            log.append({"kind": "x", "i": i}, {"a": np.arange(5)})
    whole = path.read_bytes()

    offsets = [r.offset for r in scan(path).records]
    if damage == "zeros":
        data = whole[: offsets[2]] + bytes(len(whole) - offsets[2])
    elif damage == "flipped_last":
        data = bytearray(whole)
        data[-3] ^= 0xFF
        data = bytes(data)
    else:
        data = whole + b"\x13\x37garbage after the last record"
    path.write_bytes(data)
    with RecordLog(path) as log:
        kept = [r.meta["i"] for r in log.records]
        assert log.recovered_tail_bytes > 0
        assert log.backup_path is not None
        assert log.backup_path.read_bytes() == data  # nothing lost
        log.append({"kind": "x", "i": 9})
    assert kept == ([0, 1] if damage != "garbage_tail" else [0, 1, 2])
    assert [r.meta["i"] for r in scan(path).records] == [*kept, 9]


def test_failed_append_leaves_no_partial_record(tmp_path, monkeypatch) -> None:
    path = tmp_path / "r.erlr"
    log = RecordLog(path)
    log.append({"kind": "x", "i": 0})
    real_fsync = os.fsync
    calls = []

    def fsync_fails_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_fails_once)
    with pytest.raises(RecordLogError, match="append failed"):
        log.append({"kind": "x", "i": 1}, {"a": np.arange(100)})
    log.append({"kind": "x", "i": 2})
    log.close()

    assert [r.meta["i"] for r in scan(path).records] == [0, 2]


def test_not_a_log_raises(tmp_path) -> None:
    path = tmp_path / "junk.erlr"
    path.write_bytes(b"hello world, this is not a log")
    with pytest.raises(RecordLogCorruptError, match="bad magic"):
        RatingDataset(DatasetSpec(2, "state", (1, 2)), path=path)


def test_single_writer_lock(tmp_path) -> None:
    path = tmp_path / "r.erlr"
    log = RecordLog(path)
    with pytest.raises(RecordLogLockedError):
        RecordLog(path)
    log.close()


def test_class_count_mismatch_on_resume(tmp_path) -> None:
    path = tmp_path / "r.erlr"
    ds = RatingDataset(DatasetSpec(3, "state", (1, 2)), path=path)
    ds.add(np.zeros((1, 2), np.float32), _result(2))
    ds.close()
    with pytest.raises(RatingDatasetError, match="3 classes, dataset expects 2"):
        RatingDataset(DatasetSpec(2, "state", (1, 2)), path=path)


@pytest.mark.parametrize(("meta", "x", "needle"), [
    ({"label": 3}, [[0.0, 0.0]], r"label 3 is not a class index in \[0, 3\)"),
    ({"label": -1}, [[0.0, 0.0]], "label -1 is not a class index"),
    ({"label": "good"}, [[0.0, 0.0]], "label 'good' is not a class index"),
    ({"label": 1}, [[np.inf, 0.0]], "non-finite"),
])
def test_a_log_record_that_cannot_be_a_rating_is_refused_on_load(tmp_path, meta, x, needle) -> None:
    """A log written by something else (or edited by hand) never feeds the model garbage."""
    path = tmp_path / "r.erlr"
    ds = RatingDataset(DatasetSpec(3, "state", (1, 2)), path=path)
    ds.add(np.zeros((1, 2), np.float32), _result(2))
    ds.close()
    with RecordLog(path) as log:
        log.append({"kind": "rating", "query_id": "x", "num_classes": 3, **meta},
                   {"input": np.array(x, np.float32)})
    size = path.stat().st_size
    with pytest.raises(RatingDatasetError, match=needle) as err:
        RatingDataset(DatasetSpec(3, "state", (1, 2)), path=path)
    assert "record 1" in str(err.value)
    assert path.stat().st_size == size  # named, nothing cut


@pytest.mark.parametrize(("x", "result", "match"), [
    (np.array([[np.nan, 0.0]]), _result(1), "NaN"),
    (np.zeros((1, 3)), _result(1), "shape"),
    (np.zeros((1, 2)), _result(1, n=2), "classes"),
], ids=["nan", "shape", "classes"])
def test_rejects_bad_inputs(x, result, match) -> None:
    ds = RatingDataset(DatasetSpec(3, "state", (1, 2)))
    with pytest.raises(RatingDatasetError, match=match):
        ds.add(x, result)
    assert len(ds) == 0


@pytest.mark.parametrize(("make", "match"), [
    (lambda: RatingQuery(0, (1,), "x", ("a",)), "num_classes"),
    (lambda: RatingQuery(0, (1,), "x", ("Bad", " ")), "empty"),
    (lambda: RatingQuery(0, (1,), "x", ("Good", "good ")), "distinct"),
    (lambda: DatasetSpec(6, "state", (1, 2)), "num_classes must be in"),
    (lambda: RatingResult("q", 3, 3, "b"), "outside"),
    (lambda: RatingResult("q", None, 3, "b"), "reason"),
    (lambda: RatingQuery(0, (1,), "x", ("a", "b"), states=np.array([[np.nan]])), "NaN"),
    (lambda: RatingQuery(0, (1,), "x", ("a", "b"), frames=np.zeros((1, 4, 4, 3), np.float32)), "uint8"),
], ids=["query_one_class", "query_empty_name", "query_duplicate_names", "spec_num_classes",
        "result_label_outside", "result_abstain_without_reason", "query_nan_states", "query_float_frames"])
def test_rating_types_validate(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()
