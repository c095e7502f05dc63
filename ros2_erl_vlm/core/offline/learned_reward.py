"""The learned (ERL-VLM) reward for offline data: load a reward ensemble, relabel a dataset with it.

:func:`load_reward_model` reads any file the project writes a reward model to:

* a model version published by the reward learner (``<run>/models/reward_model_v00001.pt`` or
  ``<run>/reward_learner/models/...``, :meth:`RewardEnsemble.to_bytes`);
* the reward learner's checkpoint (``<run>/reward_learner/checkpoint.pt``, key ``reward_model``)
  or the in-process trainer's (``<run>/checkpoint.pt``, key ``learner.reward_model``);
* a checkpoint whose top level is an ensemble state (:meth:`RewardEnsemble.state_dict`).

:func:`model_reward_function` turns it into the relabelling function of
:func:`~ros2_erl_vlm.core.offline.dataset.relabel_rewards`: the ensemble mean on the next states
(state model) or on the frames that go with them (image model: each JPEG is read, centre-cropped
and resized to the model's input size as ``camera_capture`` does). The ensemble standardises its
own inputs and outputs (its ``input_norm``/``output_norm``), so the raw states go in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.checkpoint import CheckpointError, load_checkpoint
from ros2_erl_vlm.core.frames import crop_resize
from ros2_erl_vlm.core.offline.dataset import RewardFunction
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble

#: Frames decoded and rated per chunk by an image model.
FRAME_CHUNK = 256


def _ensemble_state(state: Any) -> dict[str, Any] | None:
    """The ensemble state inside a loaded checkpoint, wherever the project puts it."""
    if not isinstance(state, dict):
        return None
    if "members" in state and "config" in state:
        return state
    for path in (("reward_model",), ("learner", "reward_model")):
        node: Any = state
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and "members" in node:
            return node
    return None


def load_reward_model(path: str | Path) -> RewardEnsemble:
    """The reward ensemble in ``path`` (see the module docstring); ``ValueError`` naming the file
    when it holds none or does not load."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"reward model {path} does not exist")
    try:
        state = load_checkpoint(path)
    except CheckpointError as not_checkpoint:  # a published model version (to_bytes)?
        try:
            return RewardEnsemble.from_bytes(path.read_bytes())
        except ValueError as exc:
            raise ValueError(f"reward model {path}: neither a published reward model version "
                             f"(models/reward_model_v*.pt) nor an erl_vlm checkpoint "
                             f"({not_checkpoint})") from exc
    ens = _ensemble_state(state)
    if ens is None:
        raise ValueError(f"reward model {path}: this checkpoint holds no reward model (expected a "
                         f"reward_learner checkpoint, a run's checkpoint.pt or models/reward_model_v*.pt)")
    try:
        return RewardEnsemble.from_state_dict(ens)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"reward model {path}: the ensemble does not load ({exc})") from exc


def read_frame(path: Path, size: int) -> np.ndarray:
    """The JPEG/PNG frame at ``path`` as RGB uint8, resized to ``size`` x ``size`` as
    ``camera_capture`` resizes; ``ValueError`` naming the file when it cannot be decoded."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"frame {path} cannot be decoded")
    return crop_resize(np.ascontiguousarray(bgr[..., ::-1]), size)


def model_reward_function(model: RewardEnsemble) -> tuple[RewardFunction, str]:
    """``(reward_fn, source)`` for :func:`~ros2_erl_vlm.core.offline.dataset.relabel_rewards`:
    the ensemble-mean reward, on ``next_observations`` (state model) or ``frames`` (image model)."""
    if model.config.input_kind == "state":
        def on_states(next_obs: np.ndarray) -> np.ndarray:
            return model.predict(np.asarray(next_obs, np.float32)).cpu().numpy()
        return on_states, "next_observations"

    size = model.config.image_size

    def on_frames(paths: Sequence[Path]) -> np.ndarray:
        out = []
        for i in range(0, len(paths), FRAME_CHUNK):
            frames = np.stack([read_frame(p, size) for p in paths[i:i + FRAME_CHUNK]])
            out.append(model.predict(frames).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)
    return on_frames, "frames"
