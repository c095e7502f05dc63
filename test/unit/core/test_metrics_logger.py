"""MetricsLogger: per-stream CSV files that widen when new keys appear (nothing dropped)."""

from __future__ import annotations

import csv
from pathlib import Path

from ros2_erl_vlm.core.metrics import MetricsLogger


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _log_three_rows(log_dir: Path) -> None:
    log = MetricsLogger(log_dir, tensorboard=False)
    log.log("train", 500, {"episode_return": 1.5})  # seed phase: no SAC losses yet
    log.log("train", 1000, {"episode_return": 2.0, "critic_loss": 0.25, "alpha": 0.1})
    log.log("train", 1500, {"critic_loss": 0.5})  # a key missing later: blank, not shifted
    log.close()


def test_keys_that_appear_later_widen_the_file(tmp_path: Path) -> None:
    _log_three_rows(tmp_path)
    rows = _rows(tmp_path / "train.csv")
    assert list(rows[0]) == ["step", "episode_return", "critic_loss", "alpha"]
    assert [r["step"] for r in rows] == ["500", "1000", "1500"]
    assert rows[0]["critic_loss"] == ""
    assert rows[1]["critic_loss"] == "0.25"
    assert rows[1]["alpha"] == "0.1"
    assert rows[2]["episode_return"] == ""
    assert rows[2]["critic_loss"] == "0.5"


def test_a_resumed_run_appends_to_the_same_files(tmp_path: Path) -> None:
    _log_three_rows(tmp_path)
    resumed = MetricsLogger(tmp_path, tensorboard=False)  # a resumed run appends to the same file
    resumed.log("train", 2000, {"alpha": 0.05, "entropy": -3.0})
    resumed.log("eval", 2000, {"success_rate": 0.4})
    resumed.close()
    rows = _rows(tmp_path / "train.csv")
    assert len(rows) == 4
    assert rows[3]["entropy"] == "-3.0"
    assert rows[1]["entropy"] == ""
    assert rows[1]["critic_loss"] == "0.25"
    assert _rows(tmp_path / "eval.csv") == [{"step": "2000", "success_rate": "0.4"}]
    assert not list(tmp_path.glob(".*.tmp"))


def test_no_log_dir_logs_nothing(tmp_path: Path) -> None:
    log = MetricsLogger(None, tensorboard=False)
    log.log("train", 1, {"x": 1.0})
    log.close()
    assert not list(tmp_path.iterdir())


def test_truncate_drops_rows_logged_after_a_checkpoint(tmp_path: Path) -> None:
    log = MetricsLogger(tmp_path, tensorboard=False)
    for step in (500, 1000):
        log.log("train", step, {"ret": step / 100})
    log.log("eval", 1000, {"success_rate": 0.1})
    at_checkpoint = log.row_counts()
    assert at_checkpoint == {"eval": 1, "train": 2}
    log.log("train", 1500, {"ret": 15.0, "alpha": 0.2})  # after the checkpoint, then a crash
    log.log("reward", 1500, {"loss": 0.3})  # a stream that did not exist at the checkpoint
    log.close()

    resumed = MetricsLogger(tmp_path, tensorboard=False)
    resumed.truncate(at_checkpoint)
    resumed.log("train", 1500, {"ret": 16.0})
    resumed.close()
    rows = _rows(tmp_path / "train.csv")
    assert [(r["step"], r["ret"]) for r in rows] == [("500", "5.0"), ("1000", "10.0"), ("1500", "16.0")]
    assert _rows(tmp_path / "reward.csv") == []
    assert len(_rows(tmp_path / "eval.csv")) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def _tb_steps(tb_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_tensorboard_events_of_a_resumed_run_are_not_doubled(tmp_path: Path) -> None:
    log = MetricsLogger(tmp_path)
    for step in range(0, 100, 10):
        log.log("train", step, {"episode_return": float(step)})
    log.close()
    # Resumed from a checkpoint at step 50: the earlier sitting's events from 50 on are hidden.
    log = MetricsLogger(tmp_path, purge_step=50)
    for step in range(50, 80, 10):
        log.log("train", step, {"episode_return": -float(step)})
    log.close()
    assert _tb_steps(tmp_path / "tb", "train/episode_return") == [0, 10, 20, 30, 40, 50, 60, 70]
