"""Message <-> core conversions for ``erl_vlm.msg`` (observations, rating requests and ratings,
reward model updates). Malformed messages raise ``ValueError`` with the reason; callers count and
drop them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.config import TaskInfo
from ros2_erl_vlm.core.rating.rater import RatingQuery, RatingResult, SimTruth
from ros2_erl_vlm.core.reward.reward_learner import PendingRequest, TrainedModel
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble
from ros2_erl_vlm.ros.images import image_to_rgb, rgb_to_image


def f32(values: Any) -> np.ndarray:
    """A float32 copy of a message array field."""
    return np.array(values, dtype=np.float32).reshape(-1)


@dataclass
class StepObservation:
    """The content of an ``Observation`` message as numpy."""

    episode: int
    step: int
    state: np.ndarray
    action_taken: np.ndarray
    terminated: bool
    truncated: bool
    truth: SimTruth | None
    stamp_ns: int

    @property
    def done(self) -> bool:
        """The episode ended with this observation."""
        return self.terminated or self.truncated


def stamp_ns(stamp: Any) -> int:
    """Nanoseconds of a ``builtin_interfaces/Time``."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def read_sim_state(msg: Any) -> np.ndarray | None:
    """An Observation's ``sim_state`` as float64 (None when empty, as from a real arm, or when it
    is not finite: the step is still used, only its re-rendering is lost)."""
    values = getattr(msg, "sim_state", ())
    if not len(values):
        return None
    state = np.array(values, dtype=np.float64)
    return state if np.all(np.isfinite(state)) else None


def sim_state_field(state: np.ndarray | None) -> np.ndarray:
    """The value of an Observation's ``sim_state`` field (empty without a state)."""
    if state is None:
        return np.zeros(0, np.float64)
    return np.ascontiguousarray(state, dtype=np.float64).reshape(-1)


def read_observation(msg: Any) -> StepObservation:
    """Parse an Observation; ValueError if the state is empty or not finite."""
    state = f32(msg.state)
    if state.size == 0:
        raise ValueError("observation has an empty state")
    if not np.all(np.isfinite(state)):
        raise ValueError(f"observation (episode {msg.episode}, step {msg.step}) has NaN/inf in its state")
    action = f32(msg.action_taken)
    if not np.all(np.isfinite(action)):
        raise ValueError(f"observation (episode {msg.episode}, step {msg.step}) has NaN/inf in action_taken")
    truth = None
    if msg.has_truth and math.isfinite(msg.true_reward):
        # Unknown progress (NaN: the simulator reported none) is kept as unknown, not a reason to
        # drop the step; a non-finite reward makes the step's truth unusable, not the step.
        progress = float(msg.progress) if math.isfinite(msg.progress) else None
        truth = SimTruth(float(msg.true_reward), bool(msg.success), progress, read_sim_state(msg))
    return StepObservation(int(msg.episode), int(msg.step), state, action, bool(msg.terminated),
                           bool(msg.truncated), truth, stamp_ns(msg.header.stamp))


def request_msg(req: PendingRequest, task: TaskInfo, stamp: Any = None) -> Any:
    """A RatingRequest for a pending request (frames are added by camera_capture). An image reward
    model's request carries no states (its inputs are frames; the rater sees camera_capture's),
    as the in-process loop's queries."""
    from erl_vlm.msg import RatingRequest

    states = req.inputs if req.inputs.ndim == 2 else np.zeros((len(req.steps), 0), np.float32)
    msg = RatingRequest(request_id=req.request_id, episode=req.episode, steps=list(req.steps),
                        states=states.astype(np.float32).reshape(-1),
                        state_dim=int(states.shape[1]), instruction=task.instruction,
                        class_names=list(task.class_names))
    if stamp is not None:
        msg.header.stamp = stamp
    if req.truth is not None:
        msg.has_truth = True
        msg.true_rewards = [float(t.reward) for t in req.truth]
        msg.successes = [bool(t.success) for t in req.truth]
        msg.progress = [float(t.progress if t.progress is not None else math.nan) for t in req.truth]
    return msg


def query_from_request(msg: Any) -> RatingQuery:
    """A RatingQuery from a RatingRequest; ValueError (with the reason) if it is malformed."""
    steps = tuple(int(s) for s in msg.steps)
    t = len(steps)
    if t == 0:
        raise ValueError("request has no steps")
    frames = None
    if len(msg.frames):
        if len(msg.frames) != t:
            raise ValueError(f"request has {len(msg.frames)} frames for {t} steps")
        imgs = [image_to_rgb(f) for f in msg.frames]
        if len({im.shape for im in imgs}) != 1:
            raise ValueError("request frames differ in size")
        frames = np.stack(imgs)
    states = None
    if len(msg.states):
        dim = int(msg.state_dim)
        if dim <= 0 or len(msg.states) != dim * t:
            raise ValueError(f"request has {len(msg.states)} state values for {t} steps of state_dim {dim}")
        states = f32(msg.states).reshape(t, dim)
    truth = None
    if msg.has_truth:
        if not (len(msg.true_rewards) == len(msg.successes) == t) or len(msg.progress) not in (0, t):
            raise ValueError("request truth arrays do not match its steps")
        prog = list(msg.progress) if len(msg.progress) else [None] * t
        truth = tuple(SimTruth(float(r), bool(s), None if p is None or not math.isfinite(p) else float(p))
                      for r, s, p in zip(msg.true_rewards, msg.successes, prog, strict=True))
    return RatingQuery(episode=int(msg.episode), steps=steps, instruction=str(msg.instruction),
                       class_names=tuple(str(c) for c in msg.class_names), frames=frames,
                       states=states, truth=truth, query_id=str(msg.request_id))


def rating_msg(result: RatingResult, request: Any, stamp: Any = None) -> Any:
    """The Rating answering ``request``."""
    from erl_vlm.msg import Rating

    msg = Rating(request_id=str(request.request_id), episode=int(request.episode),
                 steps=list(request.steps),
                 label=Rating.ABSTAINED if result.label is None else int(result.label),
                 num_classes=int(result.num_classes),
                 probabilities=list(result.probabilities or ()), rationale=result.rationale[:4000],
                 abstain_reason=result.abstain_reason[:1000], backend=result.backend,
                 latency_s=float(result.latency_s), attempts=int(result.attempts))
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def result_from_rating(msg: Any) -> RatingResult:
    """A RatingResult from a Rating; ValueError if it is inconsistent."""
    label = None if int(msg.label) < 0 else int(msg.label)
    reason = str(msg.abstain_reason) or ("abstained (no reason given)" if label is None else "")
    return RatingResult(query_id=str(msg.request_id), label=label, num_classes=int(msg.num_classes),
                        backend=str(msg.backend),
                        probabilities=tuple(msg.probabilities) if len(msg.probabilities) else None,
                        rationale=str(msg.rationale), abstain_reason=reason if label is None else "",
                        latency_s=float(msg.latency_s), attempts=int(msg.attempts))


def model_update_msg(model: TrainedModel, transport: str, stamp: Any = None) -> Any:
    """A RewardModelUpdate carrying the weights inline or as a file path (both with the SHA-256)."""
    from erl_vlm.msg import RewardModelUpdate

    msg = RewardModelUpdate(version=int(model.version), input_kind="state", path=str(model.path),
                            sha256=model.sha256, num_ratings=int(model.num_ratings),
                            train_accuracy=float(model.stats.accuracy)
                            if math.isfinite(model.stats.accuracy) else 0.0)
    if transport == "inline":
        msg.weights = model.blob
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def model_from_update(msg: Any) -> RewardEnsemble:
    """The reward model of an update (inline bytes, else the file); ValueError on a checksum
    mismatch, a missing file or undecodable weights."""
    if len(msg.weights):
        blob = bytes(msg.weights)
    elif msg.path:
        try:
            blob = Path(msg.path).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read reward model file {msg.path}: {exc}") from exc
    else:
        raise ValueError(f"reward model update v{msg.version} has neither weights nor a path")
    if hashlib.sha256(blob).hexdigest() != msg.sha256:
        raise ValueError(f"reward model v{msg.version}: sha256 mismatch")
    return RewardEnsemble.from_bytes(blob)


def frames_to_images(frames: list[np.ndarray], stamp: Any = None) -> list[Any]:
    """rgb8 Image messages of frames."""
    return [rgb_to_image(f, stamp) for f in frames]
