"""Learn the ERL-VLM reward from ratings of recorded demonstrations (ROS-free).

The offline path's middle step: the rating CLI (``python -m ros2_erl_vlm.raters.cli``) has rated
the recorded episodes' frames and persisted every answer in its rating log; this module joins
each rating to the rows of the episodes' export (``erl_vlm.offline/1``), builds the
:class:`~ros2_erl_vlm.core.rating.dataset.RatingDataset` and trains the reward ensemble with the
existing core (:meth:`RewardEnsemble.train_on`: MAE loss, stratified minibatches, class weights,
``output_norm: rated``).

**The join.** A rating's query id is ``<bag name>:<first step>`` and its record lists the rated
steps (:mod:`ros2_erl_vlm.raters.cli`; for an erl_vlm bag the steps are the recorded ones). The
bag name is matched to the export's episode through the export json's ``source`` (the bag's path;
so ``--renumber``-ed exports join too). The frame of step ``s >= 1`` is the frame of row
``(episode, s - 1)``: it goes with that row's ``next_observations`` (``frame_files`` points at
it). Step 0's frame (the reset, before any action) belongs to no transition; a rating that
contains it is skipped and counted (``reset_frames``). Abstentions are counted and not trained
on; when a segment was rated more than once (a rating run repeated into the same log), the
newest rating counts and the others are counted as ``replaced``.

Anything else is a :class:`RatingsJoinError` naming the rating, its file and the episode: a
rating of an episode the export does not hold, a step past the episode's end, mixed class counts
or segment lengths, a log that is not the rating CLI's, an export row without its frame when the
model reads frames, a frame that does not decode. Nothing is written here; the command
(``python -m ros2_erl_vlm.offline.reward``) writes only to its own output folder.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ros2_erl_vlm.core.offline.dataset import OfflineDataset, relabel_rewards
from ros2_erl_vlm.core.offline.learned_reward import model_reward_function, read_frame
from ros2_erl_vlm.core.rating.dataset import DatasetSpec, RatingDataset
from ros2_erl_vlm.core.rating.rater import MAX_CLASSES, MIN_CLASSES, RatingResult
from ros2_erl_vlm.core.record_log import RecordLogError, scan
from ros2_erl_vlm.core.reward.rbrl import rbrl_loss
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble, RewardModelConfig, RewardTrainStats

#: The record kind of the rating CLI's (and the vlm_rater node's) log entries.
RATER_RESULT_KIND = "rater_result"
#: The rating CLI's log inside its ``--out`` folder.
LOG_NAME = "ratings.log"


class RatingsJoinError(ValueError):
    """Ratings that cannot be joined to the export (the message names the rating, file, episode)."""


@dataclass(frozen=True)
class RatedSegment:
    """One answer of a rating log: which episode (bag name) and steps, and the class (None when
    the rater abstained)."""

    source: Path
    record: int
    query_id: str
    episode_name: str
    steps: tuple[int, ...]
    label: int | None
    num_classes: int
    backend: str = ""
    abstain_reason: str = ""

    @property
    def where(self) -> str:
        """``rating <id> (<file> record <i>)``, for error messages."""
        return f"rating {self.query_id!r} ({self.source} record {self.record})"


@dataclass
class JoinedRating:
    """A rating joined to the export: its episode id and the rows whose frames it rated."""

    segment: RatedSegment
    episode: int
    rows: np.ndarray


@dataclass
class JoinResult:
    """The joined ratings and what was left out (counts)."""

    ratings: list[JoinedRating]
    num_classes: int
    segment_length: int
    abstentions: int = 0
    reset_frames: int = 0
    replaced: int = 0
    read: int = 0
    abstain_reasons: dict[str, int] = field(default_factory=dict)

    def class_counts(self) -> list[int]:
        """Joined ratings per class."""
        counts = np.bincount([j.segment.label for j in self.ratings if j.segment.label is not None],
                             minlength=self.num_classes)
        return [int(c) for c in counts]


def log_path(path: str | Path) -> Path:
    """The rating log of ``path``: the file itself, or ``<dir>/ratings.log`` of a rating CLI's
    ``--out`` folder."""
    p = Path(path)
    return p / LOG_NAME if p.is_dir() else p


def read_rating_log(path: str | Path) -> list[RatedSegment]:
    """Every answer (ratings and abstentions) of one rating log, oldest first (read only).

    Raises:
        RatingsJoinError: the file is missing, damaged, not a rating log, holds no answers, or an
            answer whose query id, steps, class count or label do not make sense.
    """
    path = log_path(path)
    if not path.is_file():
        raise RatingsJoinError(f"rating log {path} does not exist (give the rating CLI's ratings.log "
                               "or its --out folder)")
    try:
        records = scan(path).records
    except (RecordLogError, OSError) as exc:
        raise RatingsJoinError(f"rating log {path}: cannot be read ({exc})") from exc
    out = []
    for rec in records:
        meta = rec.meta
        if meta.get("kind") != RATER_RESULT_KIND:
            continue
        where = f"{path} record {rec.index}"
        qid = str(meta.get("query_id", ""))
        name, sep, _first = qid.rpartition(":")
        if not sep or not name:
            raise RatingsJoinError(f"{where}: query id {qid!r} is not '<episode name>:<step>' (the "
                                   "rating CLI's ids)")
        steps = meta.get("steps")
        if not isinstance(steps, list) or not steps or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps):
            raise RatingsJoinError(f"{where}: rating {qid!r} has steps {steps!r}, expected a list of "
                                   "step numbers")
        n = meta.get("num_classes")
        if not isinstance(n, int) or isinstance(n, bool) or not MIN_CLASSES <= n <= MAX_CLASSES:
            raise RatingsJoinError(f"{where}: rating {qid!r} has {n!r} classes")
        label = meta.get("label")
        if label is not None and (not isinstance(label, int) or isinstance(label, bool)
                                  or not 0 <= label < n):
            raise RatingsJoinError(f"{where}: rating {qid!r} has label {label!r}, not a class in [0, {n})")
        out.append(RatedSegment(path, rec.index, qid, name, tuple(steps), label, n,
                                str(meta.get("backend", "")), str(meta.get("abstain_reason", ""))))
    if not out:
        raise RatingsJoinError(f"rating log {path} holds no rater results (is it the rating CLI's "
                               f"{LOG_NAME}?)")
    return out


def read_rating_logs(paths: Iterable[str | Path]) -> list[RatedSegment]:
    """The answers of several logs, in the order given (a later file's answer is newer)."""
    out: list[RatedSegment] = []
    for p in paths:
        out += read_rating_log(p)
    return out


def episode_names(ds: OfflineDataset) -> dict[str, int | None]:
    """Bag name -> export episode id, from the json's ``source`` (``episode_<id:06d>``, the
    recorder's name, when an episode has none); None for a name two episodes share."""
    names: dict[str, int | None] = {}
    for entry in ds.meta.get("episodes", []):
        eid = int(entry["episode"])
        source = str(entry.get("source") or "")
        name = Path(source.rstrip("/")).name if source else f"episode_{eid:06d}"
        names[name] = None if name in names and names[name] != eid else eid
    return names


def _episode_rows(ds: OfflineDataset) -> dict[int, tuple[int, int]]:
    """Episode id -> (first row, number of rows)."""
    ids = ds.episode_ids
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(int)
    stops = np.concatenate([change, [len(ids)]]).astype(int)
    return {int(ids[s]): (int(s), int(e - s)) for s, e in zip(starts, stops, strict=True)}


def join_ratings(ds: OfflineDataset, segments: Sequence[RatedSegment]) -> JoinResult:
    """Join rating-log answers to the export's rows (see the module docstring).

    Raises:
        RatingsJoinError: an unknown or ambiguous episode, a step past an episode's end, mixed
            class counts or segment lengths, no rating left to train on.
    """
    if not segments:
        raise RatingsJoinError("no ratings given")
    names = episode_names(ds)
    rows_of = _episode_rows(ds)
    first = segments[0]
    n_classes, length = first.num_classes, len(first.steps)
    newest: dict[tuple[int, tuple[int, ...]], JoinedRating] = {}
    result = JoinResult([], n_classes, length, read=len(segments))
    reasons: Counter[str] = Counter()
    for seg in segments:
        if seg.num_classes != n_classes:
            raise RatingsJoinError(f"{seg.where}: {seg.num_classes} classes, but {first.where} has "
                                   f"{n_classes}: rate every episode with the same classes")
        if len(seg.steps) != length:
            raise RatingsJoinError(f"{seg.where}: a segment of {len(seg.steps)} frames, but "
                                   f"{first.where} has {length}: rate with one --segment-length")
        if seg.episode_name not in names:
            known = ", ".join(sorted(names)[:5]) + (" ..." if len(names) > 5 else "")
            raise RatingsJoinError(f"{seg.where}: episode {seg.episode_name!r} is not in the export "
                                   f"{ds.path} (its episodes: {known})")
        eid = names[seg.episode_name]
        if eid is None:
            raise RatingsJoinError(f"{seg.where}: episode name {seg.episode_name!r} names several "
                                   f"episodes of {ds.path} (bags of one name from several folders); "
                                   "rate and export them apart")
        if eid not in rows_of:
            raise RatingsJoinError(f"{seg.where}: episode {eid} ({seg.episode_name}) has no transitions in "
                                   f"the export {ds.path} (a bag with one observation)")
        start, count = rows_of[eid]
        past = [s for s in seg.steps if s > count]
        if past:
            raise RatingsJoinError(f"{seg.where}: step {past[0]} of episode {eid} ({seg.episode_name}), "
                                   f"but the export {ds.path} has steps 0..{count} of that episode")
        if seg.label is None:
            result.abstentions += 1
            reasons[seg.abstain_reason.split(":")[0] or "abstained"] += 1
            continue
        if 0 in seg.steps:
            result.reset_frames += 1
            continue
        key = (eid, seg.steps)
        if key in newest:
            result.replaced += 1
        newest[key] = JoinedRating(seg, eid, np.asarray([start + s - 1 for s in seg.steps], np.int64))
    result.ratings = list(newest.values())
    result.abstain_reasons = dict(reasons)
    if not result.ratings:
        raise RatingsJoinError(f"none of the {len(segments)} answers can be trained on "
                               f"({result.abstentions} abstentions, {result.reset_frames} of step 0)")
    return result


def row_inputs(ds: OfflineDataset, rows: np.ndarray, input_kind: str, image_size: int,
               cache: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """What the reward model sees for ``rows``: their ``next_observations`` ``(T, D)`` (state) or
    their frames, read as the relabelling reads them, ``(T, S, S, 3)`` uint8 (image).

    Raises:
        RatingsJoinError: a row without its frame, or a frame that is missing or does not decode.
    """
    if input_kind == "state":
        return np.asarray(ds.next_observations[rows], np.float32)
    out = []
    for row in rows.tolist():
        if cache is not None and row in cache:
            out.append(cache[row])
            continue
        rel = str(ds.frame_files[row])
        if not rel:
            raise RatingsJoinError(f"{ds.where(row)}: the export has no frame for this step (exported "
                                   "with --no-frames?) and --input image learns from frames")
        path = ds.path.parent / rel
        if not path.is_file():
            raise RatingsJoinError(f"{ds.where(row)}: frame {path} does not exist")
        try:
            frame = read_frame(path, image_size)
        except ValueError as exc:
            raise RatingsJoinError(f"{ds.where(row)}: {exc}") from exc
        if cache is not None:
            cache[row] = frame
        out.append(frame)
    return np.stack(out)


def build_rating_dataset(ds: OfflineDataset, joined: JoinResult, input_kind: str,
                         image_size: int) -> RatingDataset:
    """The in-memory :class:`RatingDataset` of the joined ratings (inputs read from the export)."""
    if input_kind == "state":
        shape: tuple[int, ...] = (joined.segment_length, ds.obs_dim)
    else:
        shape = (joined.segment_length, image_size, image_size, 3)
    data = RatingDataset(DatasetSpec(joined.num_classes, input_kind, shape),
                         capacity=max(1, len(joined.ratings)))
    cache: dict[int, np.ndarray] = {}
    for j in joined.ratings:
        x = row_inputs(ds, j.rows, input_kind, image_size, cache)
        result = RatingResult(query_id=j.segment.query_id, label=j.segment.label,
                              num_classes=joined.num_classes, backend=j.segment.backend)
        data.add(x, result)
    return data


def train_reward(data: RatingDataset, config: RewardModelConfig, obs_dim: int | None, seed: int,
                 epochs: int | None = None, device: str = "cpu") -> tuple[RewardEnsemble, RewardTrainStats]:
    """Train a fresh ensemble on ``data`` (seeded weights and minibatches).

    Raises:
        ValueError: the training diverged (NaN/inf loss); nothing is returned to save.
    """
    model = RewardEnsemble(config, obs_dim=obs_dim if config.input_kind == "state" else None,
                           seed=seed, device=device)
    stats = model.train_on(data, np.random.default_rng(seed), epochs=epochs)
    if stats.diverged:
        raise ValueError(f"the reward training diverged (loss {stats.loss}); try a lower learning rate")
    return model, stats


@torch.no_grad()
def rating_accuracy(model: RewardEnsemble, data: RatingDataset) -> float:
    """Share of the rated segments the trained ensemble puts in their class, as RbRL scores a
    minibatch (the ensemble-mean returns of all ratings at once, class boundaries at the
    quantiles of the label counts)."""
    x = data.inputs
    steps = x.reshape(-1, *x.shape[2:])
    returns = model.predict(steps).reshape(len(data), -1).sum(1)
    labels = torch.as_tensor(data.labels).to(returns.device)
    _, correct = rbrl_loss(returns, labels, data.spec.num_classes, loss=model.config.loss, k=model.config.k)
    return float(correct) / max(1, len(data))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two equal-length series (average ranks for ties); None
    when either is constant, shorter than 2 or not finite."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape or a.size < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size, np.float64)
    ranks[order] = np.arange(x.size, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def relabel_summary(ds: OfflineDataset, model: RewardEnsemble) -> tuple[np.ndarray, dict[str, Any]]:
    """The learned reward on every row (what ``offline.train --reward learned`` trains on) and its
    statistics: in simulation, its rank correlation with the export's dense ``rewards`` column
    (logged truth) over all rows, also per episode on average."""
    fn, source = model_reward_function(model)
    r = relabel_rewards(ds, fn, source)
    out: dict[str, Any] = {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()),
                           "max": float(r.max())}
    truth = ds.logged_rewards
    if np.isfinite(truth).all():
        out["rank_corr_with_dense_reward"] = rank_correlation(r, truth)
        per_episode = []
        for start, count in _episode_rows(ds).values():
            c = rank_correlation(r[start:start + count], truth[start:start + count])
            if c is not None and math.isfinite(c):
                per_episode.append(c)
        out["rank_corr_within_episodes"] = float(np.mean(per_episode)) if per_episode else None
        starts = np.flatnonzero(np.r_[True, ds.episode_last_rows()[:-1]])
        out["return_rank_corr_over_episodes"] = rank_correlation(np.add.reduceat(r, starts),
                                                                 np.add.reduceat(truth, starts))
    else:
        out["rank_corr_with_dense_reward"] = None  # a real arm: no dense reward logged
    return r, out
