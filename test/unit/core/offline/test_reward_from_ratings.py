"""Learning the reward from rated demonstrations: rating-log answers joined to export rows (step s
= the frame of row s - 1, bag names through the json's sources), bad inputs named, a tiny CNN that
separates two obviously different frame classes, and the command's files and errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ros2_erl_vlm.core.offline.dataset import OfflineDataset, load_dataset, write_dataset
from ros2_erl_vlm.core.offline.learned_reward import load_reward_model
from ros2_erl_vlm.core.offline.reward_from_ratings import (
    RatingsJoinError,
    build_rating_dataset,
    join_ratings,
    rank_correlation,
    rating_accuracy,
    read_rating_logs,
    relabel_summary,
    train_reward,
)
from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult
from ros2_erl_vlm.core.record_log import RecordLog
from ros2_erl_vlm.core.reward.reward_model import RewardModelConfig
from ros2_erl_vlm.offline.reward import main
from ros2_erl_vlm.raters.records import result_record

CLASSES = ("Bad", "Good")
STEPS = 8  # transitions per episode; frames of steps 0..8


def _frame(bright: bool, seed: int) -> np.ndarray:
    """A 56 px frame: a bright square on grey (good) or a dark one (bad), plus a little noise."""
    rng = np.random.default_rng(seed)
    img = np.full((56, 56, 3), 110, np.uint8)
    img[14:42, 14:42] = 240 if bright else 10
    return np.clip(img + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)


def _export(tmp_path: Path, episodes: int = 2, frames: bool = True, ids: list[int] | None = None) -> OfflineDataset:
    """``episodes`` episodes; episode i's frames are bright (its late steps good) from step 5 on.
    Bags named episode_00000<k> for k = 0.. (``ids`` renumbers the export's episode ids)."""
    ids = ids or list(range(episodes))
    rng = np.random.default_rng(0)
    n = episodes * STEPS
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    files = []
    for k, eid in enumerate(ids):
        for s in range(STEPS + 1):
            rel = f"d_frames/episode_{eid:06d}/step_{s:04d}.jpg"
            if frames:
                (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(tmp_path / rel), _frame(s >= 5, 100 * k + s)[..., ::-1])
            if s >= 1:
                files.append(rel if frames else "")
    arrays = {"observations": obs, "actions": np.zeros((n, 4), np.float32),
              "next_observations": obs + 1, "terminals": np.zeros(n, bool),
              "timeouts": np.tile(np.arange(STEPS) == STEPS - 1, episodes),
              "episode_ids": np.repeat(ids, STEPS).astype(np.int64),
              "steps": np.tile(np.arange(STEPS), episodes).astype(np.int64),
              "success": np.zeros(n, bool), "rewards": np.tile(np.arange(STEPS, dtype=np.float32), episodes),
              "frame_files": np.array(files)}
    meta = {"task": "reach-v3", "frames": frames,
            "episodes": [{"episode": eid, "steps": STEPS, "success": False,
                          "source": str(tmp_path / "bags" / f"episode_{k:06d}")} for k, eid in enumerate(ids)]}
    return load_dataset(write_dataset(tmp_path / "d.npz", arrays, meta))


def _log(path: Path, answers: list[tuple[str, list[int], int | None]], classes: tuple[str, ...] = CLASSES) -> Path:
    """A rating log as the rating CLI writes it: one rater result per (bag name, steps, label)."""
    log = RecordLog(path, fsync=False)
    for name, steps, label in answers:
        q = RatingQuery(episode=0, steps=tuple(steps), instruction="reach", class_names=classes,
                        query_id=f"{name}:{steps[0]}")
        r = (RatingResult(q.query_id, label, len(classes), "test") if label is not None
             else RatingResult.abstain(q, "test", "timeout: no answer"))
        log.append(*result_record(q, r, "test"))
    log.close()
    return path


def _good(s: int) -> int:
    return int(s >= 5)


def test_ratings_join_to_the_rows_whose_frames_they_rated(tmp_path: Path) -> None:
    ds = _export(tmp_path, ids=[7, 9])  # renumbered: bag episode_000001 is export episode 9
    first = _log(tmp_path / "a.log", [("episode_000000", [0], 0), ("episode_000000", [3], 1),
                                      ("episode_000001", [8], 1), ("episode_000001", [2], None)])
    second = _log(tmp_path / "b.log", [("episode_000000", [3], 0)])  # a newer answer for step 3
    joined = join_ratings(ds, read_rating_logs([first, second]))
    assert (joined.read, joined.abstentions, joined.reset_frames, joined.replaced) == (5, 1, 1, 1)
    assert joined.abstain_reasons == {"timeout": 1}
    got = {(j.episode, j.segment.steps, j.segment.label): j.rows.tolist() for j in joined.ratings}
    # step s is the frame of row s - 1; episode 9 starts at row 8
    assert got == {(7, (3,), 0): [2], (9, (8,), 1): [15]}
    assert joined.class_counts() == [1, 1]
    for j in joined.ratings:
        row = int(j.rows[0])
        assert ds.frame_files[row].endswith(f"step_{j.segment.steps[0]:04d}.jpg")


def test_segments_join_as_their_rows_and_give_segment_inputs(tmp_path: Path) -> None:
    ds = _export(tmp_path)
    log = _log(tmp_path / "r.log", [("episode_000001", [2, 3, 4], 0), ("episode_000000", [6, 7, 8], 1)])
    joined = join_ratings(ds, read_rating_logs([log]))
    assert joined.segment_length == 3
    assert [j.rows.tolist() for j in joined.ratings] == [[9, 10, 11], [5, 6, 7]]
    states = build_rating_dataset(ds, joined, "state", 48)
    np.testing.assert_array_equal(states.inputs[0], ds.next_observations[[9, 10, 11]])
    images = build_rating_dataset(ds, joined, "image", 48)
    assert images.inputs.shape == (2, 3, 48, 48, 3) and images.inputs.dtype == np.uint8
    assert images.inputs[1].mean() > images.inputs[0].mean()  # bright late frames vs dark early ones


@pytest.mark.parametrize(("answers", "needle"), [
    ([("episode_000005", [1], 0)], r"rating 'episode_000005:1' \(.*r.log record 0\): episode "
                                   r"'episode_000005' is not in the export .*d.npz"),
    ([("episode_000001", [9], 0)], r"step 9 of episode 1 \(episode_000001\), but the export .* has steps 0..8"),
    ([("episode_000000", [1], 0), ("episode_000000", [2, 3], 1)], "a segment of 2 frames"),
])
def test_ratings_that_do_not_fit_the_export_are_errors(tmp_path: Path, answers, needle) -> None:
    ds = _export(tmp_path)
    with pytest.raises(RatingsJoinError, match=needle):
        join_ratings(ds, read_rating_logs([_log(tmp_path / "r.log", answers)]))


def test_bad_rating_files_are_errors(tmp_path: Path) -> None:
    ds = _export(tmp_path)
    with pytest.raises(RatingsJoinError, match="does not exist"):
        read_rating_logs([tmp_path / "none.log"])
    (tmp_path / "junk.log").write_bytes(b"this is not a record log at all")
    with pytest.raises(RatingsJoinError, match="junk.log: cannot be read"):
        read_rating_logs([tmp_path / "junk.log"])
    other = RecordLog(tmp_path / "learner.erlr", fsync=False)
    other.append({"kind": "rating", "query_id": "x", "label": 1})
    other.close()
    with pytest.raises(RatingsJoinError, match="holds no rater results"):
        read_rating_logs([tmp_path / "learner.erlr"])
    a = _log(tmp_path / "two.log", [("episode_000000", [1], 0)])
    b = _log(tmp_path / "three.log", [("episode_000000", [2], 2)], classes=("Bad", "Average", "Good"))
    with pytest.raises(RatingsJoinError, match="3 classes, but rating 'episode_000000:1'"):
        join_ratings(ds, read_rating_logs([a, b]))
    only_abstained = _log(tmp_path / "abst.log", [("episode_000000", [1], None)])
    with pytest.raises(RatingsJoinError, match="none of the 1 answers can be trained on"):
        join_ratings(ds, read_rating_logs([only_abstained]))


def test_image_input_needs_the_frames(tmp_path: Path) -> None:
    ds = _export(tmp_path, frames=False)
    joined = join_ratings(ds, read_rating_logs([_log(tmp_path / "r.log", [("episode_000001", [4], 1)])]))
    with pytest.raises(RatingsJoinError, match=r"episode 1 step 3 of .*d.npz: the export has no frame"):
        build_rating_dataset(ds, joined, "image", 48)
    assert len(build_rating_dataset(ds, joined, "state", 48)) == 1  # a state model needs none


def test_a_tiny_cnn_separates_bright_from_dark_frames(tmp_path: Path) -> None:
    ds = _export(tmp_path, episodes=3)
    answers = [(f"episode_{k:06d}", [s], _good(s)) for k in range(3) for s in range(1, STEPS + 1)]
    joined = join_ratings(ds, read_rating_logs([_log(tmp_path / "r.log", answers)]))
    data = build_rating_dataset(ds, joined, "image", 48)
    cfg = RewardModelConfig(input_kind="image", image_size=48, ensemble_size=2, batch_size=8, lr=1e-3,
                            epochs=40)
    torch.manual_seed(0)
    model, stats = train_reward(data, cfg, None, seed=0)
    assert stats.epochs >= 2 and not stats.diverged
    assert rating_accuracy(model, data) == 1.0
    rewards, summary = relabel_summary(ds, model)
    good = np.array([_good(int(s) + 1) for s in ds.steps], bool)
    assert rewards[good].min() > rewards[~good].max()  # every bright frame above every dark one
    # the logged "dense reward" is the step; two classes of frames rank it only in halves
    assert summary["rank_corr_with_dense_reward"] > 0.5


def test_rank_correlation() -> None:
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1.0)
    # ties get average ranks: ranks (0.5, 0.5, 2, 3) against (0, 1, 2, 3)
    a, b = np.array([1.0, 1, 2, 3]), np.array([1.0, 2, 3, 4])
    assert rank_correlation(a, b) == pytest.approx(np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1])
    assert rank_correlation(np.ones(4), b) is None
    assert rank_correlation(np.array([1.0, np.nan]), np.array([1.0, 2.0])) is None


def test_the_command_writes_a_model_offline_train_reads(tmp_path: Path, capsys) -> None:
    ds = _export(tmp_path)
    log = _log(tmp_path / "ratings" / "ratings.log",
               [(f"episode_{k:06d}", [s], _good(s)) for k in range(2) for s in range(STEPS + 1)])
    out = tmp_path / "reward"
    args = ["--data", str(ds.path), "--ratings", str(log.parent), "--out", str(out), "--input", "state",
            "--hidden-dim", "8", "--hidden-layers", "1", "--ensemble-size", "2", "--epochs", "3",
            "--batch-size", "8"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["ratings_used"] == 16 and summary["reset_frame_ratings_skipped"] == 2
    assert summary["class_counts"] == [8, 8] and summary["segment_length"] == 1
    assert 0.0 <= summary["training"]["rating_accuracy"] <= 1.0
    assert summary["learned_reward"]["rank_corr_with_dense_reward"] is not None
    model = load_reward_model(out / "reward_model.pt")
    assert model.config.input_kind == "state" and model.obs_dim == 4 and model.version == 1
    # an existing model is kept; bad input is an error naming the episode and file
    assert main(args) == 1 and "exists already" in capsys.readouterr().err
    bad = _log(tmp_path / "bad.log", [("episode_000003", [1], 0)])
    assert main([*args[:4], str(bad), "--out", str(tmp_path / "r2")]) == 1
    assert "episode 'episode_000003' is not in the export" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_the_command_refuses_image_input_on_an_export_without_frames(tmp_path: Path, capsys) -> None:
    ds = _export(tmp_path, frames=False)
    log = _log(tmp_path / "r.log", [("episode_000000", [1], 0)])
    assert main(["--data", str(ds.path), "--ratings", str(log), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "d.npz: the export has no frames" in err and "--input state" in err
