"""The reward half of the ERL-VLM loop for a process that talks to its rater by messages
(``reward_learner``): episodes from an observation stream, query rounds, rating persistence,
reward training, versioned models.

Durability (everything under ``run_dir``):

* ``requests.erlr``: every query is appended (with the segment's reward-model input and the data
  a rater needs) *before* it is sent, so a restarted learner re-sends what is still unanswered; in
  simulation it also keeps the truth per step (``true_rewards``, ``successes``, ``progress``) and,
  when the observations carry it, the simulator state per step (``sim_state``, ``(T, n)``
  float64), from which the run report re-renders the rated state;
* ``ratings.erlr``: every answer (rating or abstention) is appended *before* it is used; an answer
  whose request id is already there is a duplicate and is ignored, so a rating is never stored
  twice and, with the rater answering re-sent requests from its own log, never lost. One
  exception: a rating that arrives after the learner gave up on its request (a slow rater) is
  stored after the learner's own abstention and trained on (``ratings_late``);
* ``checkpoint.pt``: reward model (weights, optimiser, version), schedule and step counters,
  written atomically at every round start and after every training.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core import seeds
from ros2_erl_vlm.core.atomic_write import write_bytes_atomic
from ros2_erl_vlm.core.checkpoint import load_checkpoint, save_checkpoint
from ros2_erl_vlm.core.config import LoopConfig, TaskInfo
from ros2_erl_vlm.core.episode_store import Episode, EpisodeRecorder, EpisodeStore
from ros2_erl_vlm.core.frames import FrameCodec
from ros2_erl_vlm.core.rating.dataset import DatasetSpec, RatingDataset, read_ratings
from ros2_erl_vlm.core.rating.quality import BinFn, round_quality, truth_meta
from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult, SimTruth
from ros2_erl_vlm.core.record_log import RecordLog
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble, RewardTrainStats
from ros2_erl_vlm.core.reward.segment_selection import select_segments
from ros2_erl_vlm.core.schedule import QuerySchedule

REQUEST_KIND = "request"
GAVE_UP_REASON = "no answer from the rater after {n} attempts"
GAVE_UP_BACKEND = "reward_learner"
#: Given-up requests remembered (with their inputs) so a late rating can still be used.
LATE_KEEP = 1000


def _sim_states(truth: tuple[SimTruth, ...]) -> np.ndarray | None:
    """The segment's simulator states ``(T, n)`` float64 (a request's ``sim_state`` array), None
    unless every step has one of the same size."""
    states = [t.sim_state for t in truth]
    if not states or any(s is None for s in states):
        return None
    flat = [np.asarray(s, dtype=np.float64).reshape(-1) for s in states]
    if len({f.size for f in flat}) != 1 or flat[0].size == 0:
        return None
    return np.stack(flat)


class EpisodeAssembler:
    """Builds complete episodes from a stream of per-step observations.

    Step 0 (after a reset) gives the initial state; step ``t >= 1`` carries the state after the
    ``t``-th action and that action. Only gap-free episodes that start at step 0 and end with a
    ``done`` observation come out. :meth:`add` returns a status: ``"start"``, ``"step"``,
    ``"duplicate"`` (same (episode, step) again; ignored), ``"gap"`` (a step is missing or out of
    order; the partial episode is dropped), ``"too_long"`` (more than ``max_steps`` steps without
    an end: the episode is dropped, memory stays bounded) or ``"complete"``.
    """

    def __init__(self, max_steps: int = 100_000, frame_codec: FrameCodec | None = None) -> None:
        self._rec: EpisodeRecorder | None = None
        self.frame_codec = frame_codec
        self._last: tuple[int, int] | None = None
        self.max_steps = int(max_steps)
        self.dropped = 0

    def cut(self, episode: int, step: int) -> Episode | None:
        """End the open episode before ``step`` (its frame was lost): the steps so far as an
        episode (None when there are none or ``step`` does not continue it); the rest of that
        episode arrives as a gap."""
        episode, step = int(episode), int(step)
        rec, self._rec = self._rec, None
        self._last = (episode, step)
        if rec is None or rec.episode_id != episode or len(rec) != step - 1 or len(rec) == 0:
            return None
        return rec.finish()

    def add(self, episode: int, step: int, state: np.ndarray, action: np.ndarray,
            truth: SimTruth | None, done: bool,
            frame: np.ndarray | None = None) -> tuple[str, Episode | None]:
        """Feed one observation (``frame``: the camera frame after the step, kept when given);
        returns ``(status, finished episode or None)``."""
        episode, step = int(episode), int(step)
        if self._last == (episode, step):
            return "duplicate", None
        self._last = (episode, step)
        if step == 0:
            if self._rec is not None and len(self._rec) > 0:
                self.dropped += 1  # an unfinished episode was cut short
            self._rec = EpisodeRecorder(episode, self.frame_codec)
            return "start", None
        rec = self._rec
        if rec is None or rec.episode_id != episode or len(rec) != step - 1:
            if rec is not None:
                self.dropped += 1
            self._rec = None
            return "gap", None
        if len(rec) >= self.max_steps:
            self.dropped += 1
            self._rec = None
            return "too_long", None
        rec.add(state, action, truth, frame)
        if done:
            self._rec = None
            return "complete", rec.finish()
        return "step", None


@dataclass
class PendingRequest:
    """A query sent to the rater and not answered yet."""

    request_id: str
    episode: int
    steps: tuple[int, ...]
    inputs: np.ndarray  # the reward model's input for the segment: (T, obs_dim) or (T, H, W, 3)
    truth: tuple[SimTruth, ...] | None
    round: int
    attempts: int = 0
    last_sent: float = field(default=-1e18)
    #: The segment's camera frames for the rater, when the episode store keeps frames (not
    #: persisted: in the graph ``camera_capture`` attaches them on the way to the rater).
    frames: np.ndarray | None = None


@dataclass
class TrainedModel:
    """A reward model version ready to publish."""

    version: int
    blob: bytes
    sha256: str
    path: Path
    stats: RewardTrainStats
    num_ratings: int


class RewardLearner:
    """Episode store, query rounds, rating dataset and reward ensemble (see module docstring).

    Args:
        config: loop settings (schedule, ``reward``, ``segment_length``, ``episode_store_size``).
        obs_dim: state size.
        task: instruction and class names (``config.num_classes`` of them) sent with every query.
        run_dir: where the request and rating logs and the model files live (``None``: in memory).
        checkpoint_path: the learner's own checkpoint, loaded when present and rewritten at every
            round start and training (a process of its own); ``None`` when its owner checkpoints
            :meth:`state_dict` with everything else (the in-process loop).
        max_attempts: sends of one request before the learner records an abstention itself.
        bin_truth: the task's truth binning (``TaskSpec.bin_truth``); with it each round's ratings
            are scored against simulator truth (``last_round_quality``, see
            :func:`~ros2_erl_vlm.core.rating.quality.round_quality`).
        rng: generator for segment selection and reward training (default
            :func:`~ros2_erl_vlm.core.seeds.learner_rng`; the in-process loop shares the agent's).
        frame_codec: how episode frames are kept (``None``: raw); frames are kept only when
            :meth:`observe` is given them.
        frame_shape: ``(H, W, 3)`` of the frames an image reward model (``reward.input_kind``
            ``image``) reads.
        checkpoint_episodes: :meth:`state_dict` includes the episode store (the in-process loop,
            which resumes exactly); a learner of its own rebuilds it from the observations instead
            (megabytes per save would stall it, and its observation queue would overflow).
    """

    def __init__(self, config: LoopConfig, obs_dim: int, task: TaskInfo, run_dir: str | Path | None,
                 *, checkpoint_path: str | Path | None = None, max_attempts: int = 30,
                 bin_truth: BinFn | None = None, rng: np.random.Generator | None = None,
                 frame_codec: FrameCodec | None = None,
                 frame_shape: tuple[int, int, int] | None = None,
                 checkpoint_episodes: bool = False) -> None:
        self.config = c = config.validate()
        self.checkpoint_episodes = bool(checkpoint_episodes)
        self.use_frames = c.reward.input_kind == "image"
        if self.use_frames and frame_shape is None:
            raise ValueError("an image reward model (reward.input_kind 'image') needs frame_shape")
        if len(task.class_names) != c.num_classes:
            raise ValueError(f"task has {len(task.class_names)} class names, config says {c.num_classes}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.obs_dim, self.task, self.max_attempts = int(obs_dim), task, int(max_attempts)
        self.run_dir = None if run_dir is None else Path(run_dir)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.rng = seeds.learner_rng(c.seed) if rng is None else rng
        # On the device setting's device (core/device.py); its checkpoint and bytes hold CPU tensors.
        self.model = RewardEnsemble(c.reward, obs_dim=self.obs_dim, seed=seeds.reward_model_seed(c.seed),
                                    device=c.device)
        self.schedule = QuerySchedule()
        self.env_steps = 0
        self.assembler = EpisodeAssembler(frame_codec=frame_codec)
        self.episodes = EpisodeStore(c.episode_store_size)
        self.counters: dict[str, int] = {}
        self.last_train: RewardTrainStats | None = None
        self.bin_truth = bin_truth
        # (truth, label) of the open round's answers, scored when the round is trained on.
        self.round_answers: list[tuple[tuple[SimTruth, ...] | None, int | None]] = []
        self.last_round_quality: dict[str, float] = {}
        self.round_open = False
        self.round_started = 0.0
        self.current_round = 0
        self.resumed = False
        # Answers already stored (dedupe) and the dataset itself.
        ratings_path = None if self.run_dir is None else self.run_dir / "ratings.erlr"
        stored = read_ratings(ratings_path) if ratings_path is not None and ratings_path.exists() else []
        self.answered: set[str] = {str(m.get("query_id")) for m in stored}
        gave_up = {str(m["query_id"]) for m in stored if m.get("backend") == GAVE_UP_BACKEND}
        gave_up -= {str(m["query_id"]) for m in stored if m.get("label") is not None}
        # Requests the learner gave up on, kept (bounded) so a late rating can still be stored.
        self.late_ok: dict[str, PendingRequest] = {}
        input_shape = ((c.segment_length, *frame_shape) if self.use_frames and frame_shape
                       else (c.segment_length, self.obs_dim))
        self.dataset = RatingDataset(DatasetSpec(c.num_classes, c.reward.input_kind, input_shape),
                                     capacity=c.max_feedback, path=ratings_path)
        self.requests = None if self.run_dir is None else RecordLog(self.run_dir / "requests.erlr")
        self.pending: dict[str, PendingRequest] = {}
        for rec in [] if self.requests is None else self.requests.records:
            m = rec.meta
            if m.get("kind") != REQUEST_KIND:
                continue
            self.current_round = max(self.current_round, int(m["round"]))
            if m["request_id"] in self.answered and m["request_id"] not in gave_up:
                continue
            truth = None
            if "true_rewards" in rec.arrays:
                truth = tuple(
                    SimTruth(float(r), bool(s), None if np.isnan(p) else float(p))
                    for r, s, p in zip(rec.arrays["true_rewards"], rec.arrays["successes"],
                                       rec.arrays["progress"], strict=True))
            req = PendingRequest(m["request_id"], int(m["episode"]), tuple(int(s) for s in m["steps"]),
                                 rec.arrays["input"], truth, int(m["round"]))
            if m["request_id"] in gave_up:
                self._keep_for_late(req)
            else:
                self.pending[m["request_id"]] = req
        if self.requests is not None:
            self.requests.forget_arrays()  # the pending ones are held above
        self._count_logged_requests()
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_state_dict(load_checkpoint(self.checkpoint_path))

    def _count_logged_requests(self) -> None:
        """Requests persisted after the last checkpoint were asked: count them."""
        if self.requests is not None:
            asked = sum(1 for r in self.requests.records if r.meta.get("kind") == REQUEST_KIND)
            self.schedule.queries_asked = max(self.schedule.queries_asked, asked)

    def count(self, name: str, n: int = 1) -> None:
        """Bump a named counter (reported in the node's status)."""
        self.counters[name] = self.counters.get(name, 0) + n

    @property
    def version(self) -> int:
        """Current reward model version (0: untrained)."""
        return self.model.version

    # -- observations ---------------------------------------------------------------------------
    def observe(self, episode: int, step: int, state: Any, action: Any, truth: SimTruth | None,
                done: bool, frame: np.ndarray | None = None) -> str:
        """Feed one observation (``frame``: the camera frame after the step, when the episode
        store keeps frames); returns the assembler's status.

        An image reward model's step whose frame was lost (``frame`` None) ends the episode's
        record there: the steps before it are kept as an episode to rate (status
        ``"frame_lost"``), the rest of that episode is a gap.

        Raises:
            ValueError: wrong-size or non-finite state/action (nothing recorded).
        """
        s = np.asarray(state, dtype=np.float32).reshape(-1)
        if s.shape != (self.obs_dim,) or not np.all(np.isfinite(s)):
            raise ValueError(f"state must be {self.obs_dim} finite values")
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if int(step) > 0 and (a.size == 0 or not np.all(np.isfinite(a))):
            raise ValueError("action_taken must be finite and non-empty after step 0")
        if self.use_frames and int(step) > 0 and frame is None:
            ep = self.assembler.cut(episode, step)
            if ep is not None:
                self.episodes.add(ep)
            self.env_steps += 1  # the step happened; only its frame is missing
            self.count("obs_frame_lost")
            return "frame_lost"
        status, ep = self.assembler.add(episode, step, s, a, truth, done, frame)
        if status in ("step", "complete"):
            self.env_steps += 1
        if ep is not None:
            self.episodes.add(ep)
        self.count(f"obs_{status}")
        return status

    # -- rounds ---------------------------------------------------------------------------------
    def round_due(self) -> bool:
        """A new round should start now (no round open, schedule says so)."""
        return not self.round_open and self.schedule.due(self.config, self.env_steps, len(self.episodes))

    def start_round(self, now: float | None = None) -> list[PendingRequest]:
        """Choose segments, persist the requests, open the round; returns the requests to send."""
        c = self.config
        now = time.monotonic() if now is None else now
        n = self.schedule.budget(c)
        if n <= 0 or len(self.episodes) == 0:
            return []
        segments = select_segments(c.query_strategy, self.episodes, n, self.rng, self.model,
                                   c.segment_length, use_frames=self.use_frames)
        self.current_round += 1
        self.round_answers = []
        tag = uuid.uuid4().hex[:8]
        out = []
        for i, seg in enumerate(segments):
            ep = self.episodes[seg.index]
            sl = slice(seg.start, seg.start + seg.length)
            truth = None if ep.truth is None else ep.truth[sl]
            frames = None if ep.frames is None else ep.frames[sl]
            if self.use_frames:
                assert frames is not None, "an image reward model's episodes keep their frames"
                inputs = frames
            else:
                inputs = ep.next_obs[sl].copy()
            req = PendingRequest(f"r{self.current_round:05d}-{tag}-{i:03d}", ep.episode_id, seg.steps,
                                 inputs, truth, self.current_round, frames=frames)
            arrays: dict[str, np.ndarray] = {"input": req.inputs}
            if truth is not None:
                arrays["true_rewards"] = np.array([t.reward for t in truth], dtype=np.float32)
                arrays["successes"] = np.array([t.success for t in truth], dtype=np.bool_)
                arrays["progress"] = np.array([np.nan if t.progress is None else t.progress
                                               for t in truth], dtype=np.float32)
                sim_state = _sim_states(truth)
                if sim_state is not None:
                    arrays["sim_state"] = sim_state
            self._log_request({"kind": REQUEST_KIND, "request_id": req.request_id,
                                  "episode": req.episode, "steps": list(req.steps),
                                  "round": req.round, "env_step": self.env_steps,
                                  "time": time.time()}, arrays)
            self.pending[req.request_id] = req
            out.append(req)
        self.schedule.record_round(self.env_steps, len(out))
        self.round_open, self.round_started = True, now
        self.count("rounds_started")
        self.save()
        return out

    def _log_request(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if self.requests is not None:
            self.requests.append(meta, arrays)

    def query(self, req: PendingRequest) -> RatingQuery:
        """The rater's view of a request (frames when the episode store keeps them)."""
        return RatingQuery(episode=req.episode, steps=req.steps, instruction=self.task.instruction,
                           class_names=self.task.class_names, frames=req.frames,
                           states=None if self.use_frames else req.inputs, truth=req.truth,
                           query_id=req.request_id)

    def due_for_sending(self, now: float, retry_s: float) -> list[PendingRequest]:
        """Pending requests never sent or unanswered for ``retry_s``; each is marked as sent.

        A request sent ``max_attempts`` times is given up: an abstention is recorded for it.
        """
        out = []
        for req in list(self.pending.values()):
            if now - req.last_sent < retry_s:
                continue
            if req.attempts >= self.max_attempts:
                self._give_up(req)
                continue
            req.attempts += 1
            req.last_sent = now
            if req.attempts > 1:
                self.count("requests_resent")
            out.append(req)
        return out

    def _give_up(self, req: PendingRequest) -> None:
        result = RatingResult(query_id=req.request_id, label=None, num_classes=self.config.num_classes,
                              backend=GAVE_UP_BACKEND,
                              abstain_reason=GAVE_UP_REASON.format(n=req.attempts), attempts=req.attempts)
        self._store(req, result)
        self._keep_for_late(req)
        self.count("requests_given_up")

    def _keep_for_late(self, req: PendingRequest) -> None:
        self.late_ok[req.request_id] = req
        while len(self.late_ok) > LATE_KEEP:
            del self.late_ok[next(iter(self.late_ok))]

    def _persist(self, req: PendingRequest, result: RatingResult, **extra: Any) -> bool:
        """Append the answer to the rating dataset (log first); True when it is a rating."""
        return self.dataset.add(req.inputs, result, episode=req.episode, steps=list(req.steps),
                                env_step=self.env_steps, round=req.round, **truth_meta(req.truth), **extra)

    def _store(self, req: PendingRequest, result: RatingResult) -> bool:
        ok = self._persist(req, result)
        if req.round == self.current_round:
            self.round_answers.append((req.truth, result.label))
        self.answered.add(req.request_id)
        del self.pending[req.request_id]
        return ok

    def on_rating(self, request_id: str, result: RatingResult) -> str:
        """Store one answer; returns ``"rated"``, ``"abstained"``, ``"late"`` (a rating for a request
        given up on, stored after all), ``"duplicate"`` or ``"unknown"``.

        Raises:
            ValueError: the answer does not fit the request (class count).
        """
        req = self.pending.get(request_id)
        late = self.late_ok.get(request_id) if req is None and result.label is not None else None
        if late is not None:  # a slow rater's answer after the learner gave up: still use it
            if result.num_classes != self.config.num_classes:
                raise ValueError(
                    f"rating has {result.num_classes} classes, expected {self.config.num_classes}")
            self._persist(late, result, late=True)
            del self.late_ok[request_id]
            status = "late"
        elif req is None:
            status = "duplicate" if request_id in self.answered else "unknown"
        else:
            if result.num_classes != self.config.num_classes:
                raise ValueError(
                f"rating has {result.num_classes} classes, expected {self.config.num_classes}")
            status = "rated" if self._store(req, result) else "abstained"
        self.count(f"ratings_{status}")
        return status

    def round_ready(self, now: float, timeout_s: float) -> bool:
        """The open round can be trained on: all its requests answered, or ``timeout_s`` passed."""
        if not self.round_open:
            return False
        if not any(r.round == self.current_round for r in self.pending.values()):
            return True
        if now - self.round_started >= timeout_s:
            self.count("rounds_timed_out")
            return True
        return False

    def train(self) -> TrainedModel | None:
        """Close the round and train on every stored rating; None when there is nothing to learn
        from (no ratings yet) or the training diverged (the previous model is kept)."""
        self.round_open = False
        if self.bin_truth is not None:
            self.last_round_quality = round_quality(self.round_answers, self.bin_truth,
                                                    self.config.num_classes)
        stats = self.model.train_on(self.dataset, self.rng)  # a no-op without ratings
        self.last_train = stats
        self.save()
        if len(self.dataset) == 0:
            self.count("rounds_without_ratings")
            return None
        if stats.diverged:
            self.count("training_diverged")
            return None
        return self.export()

    def export(self) -> TrainedModel | None:
        """The current model version as bytes, also written to ``models/v<version>.pt``."""
        if self.model.version == 0:
            return None
        blob = self.model.to_bytes()
        sha = hashlib.sha256(blob).hexdigest()
        path = self.run_dir / "models" / f"reward_model_v{self.model.version:05d}.pt"
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            write_bytes_atomic(path, blob)
        stats = self.last_train or RewardTrainStats(num_ratings=len(self.dataset))
        return TrainedModel(self.model.version, blob, sha, path, stats, len(self.dataset))

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Model (weights, optimiser, version), schedule, step count, RNG and (with
        ``checkpoint_episodes``) the episode store."""
        return {"reward_model": self.model.state_dict(), "schedule": self.schedule.state_dict(),
                "env_steps": self.env_steps, "rng": self.rng.bit_generator.state,
                "current_round": self.current_round,
                "episodes": ([ep.to_state() for ep in self.episodes.episodes]
                             if self.checkpoint_episodes else [])}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (requests and ratings logged after it are kept: the
        logs are the source of truth)."""
        self.model.load_state_dict(state["reward_model"])
        self.schedule.load_state_dict(state["schedule"])
        self.env_steps = int(state["env_steps"])
        self.rng.bit_generator.state = state["rng"]
        self.current_round = max(self.current_round, int(state.get("current_round", 0)))
        for ep in state.get("episodes", []):
            self.episodes.add(Episode.from_state(ep))
        self._count_logged_requests()
        self.resumed = True

    def save(self) -> Path | None:
        """Atomic checkpoint of :meth:`state_dict` at ``checkpoint_path`` (None: not configured)."""
        if self.checkpoint_path is None:
            return None
        return save_checkpoint(self.checkpoint_path, self.state_dict())

    def status(self) -> dict[str, Any]:
        """Counters and sizes for status reports."""
        return {"env_steps": self.env_steps, "episodes": len(self.episodes),
                "version": self.version, "ratings": len(self.dataset),
                "abstentions": self.dataset.num_abstentions, "pending": len(self.pending),
                "rounds": self.schedule.rounds, "queries_asked": self.schedule.queries_asked,
                "round_open": self.round_open, "episodes_dropped": self.assembler.dropped,
                "train_accuracy": None if self.last_train is None else self.last_train.accuracy,
                "last_round_quality": dict(self.last_round_quality),
                **self.counters}

    def close(self) -> None:
        """Checkpoint and close the logs."""
        self.save()
        self.dataset.close()
        if self.requests is not None:
            self.requests.close()
