"""Recorded episodes for offline rating: directories of frames, frame arrays, or ROS 2 bags.

Accepted inputs (:func:`read_episodes`):

* a directory of image files (``.png``/``.jpg``/``.jpeg``/``.bmp``, in name order): one episode;
* a directory whose subdirectories hold image files: one episode per subdirectory;
* a ``.npy`` file (``(T, H, W, 3)`` uint8) or ``.npz`` (key ``frames``): one episode;
* a ROS 2 bag (a directory with ``metadata.yaml``, or a bare ``.mcap``/``.db3`` file), read with
  ``rosbags``: the ``sensor_msgs/msg/Image`` or ``CompressedImage`` messages of one topic, in time
  order, are one episode. A bag recorded by erl_vlm (the ``recorder`` node or the scripted expert,
  ``recording.mcap_episode``) is read as its episode: each frame with its step number and, in
  simulation, the simulator truth its observation recorded (for the oracle and the simulated VLM).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ros2_erl_vlm.core.rating.rater import SimTruth

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


@dataclass
class RecordedEpisode:
    """Frames of one recorded episode (``frames``: ``(T, H, W, 3)`` uint8 RGB, upright).

    ``steps``: each frame's step number when the recording says (an erl_vlm bag), else None (the
    frame index is the step); ``truth``: each frame's simulator truth when recorded, else None.
    """

    name: str
    frames: np.ndarray
    stamps_s: np.ndarray | None = None
    steps: tuple[int, ...] | None = None
    truth: tuple[SimTruth, ...] | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def _load_image(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _stack(frames: Sequence[np.ndarray], where: str) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"{where}: frames differ in size ({sorted(shapes)})")
    return np.stack(frames)


def _images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _is_bag(path: Path) -> bool:
    return (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix in (".mcap", ".db3")


def read_array(path: Path) -> RecordedEpisode:
    """A ``.npy`` / ``.npz`` frame array as one episode."""
    data = np.load(path)
    frames = data["frames"] if isinstance(data, np.lib.npyio.NpzFile) else data
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    return RecordedEpisode(path.stem, frames)


def _decode_image_msg(msg: Any, msgtype: str) -> np.ndarray:
    if msgtype.endswith("CompressedImage"):
        with Image.open(io.BytesIO(bytes(msg.data))) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    h, w, enc = int(msg.height), int(msg.width), str(msg.encoding).lower()
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(enc)
    if channels is None:
        raise ValueError(f"image encoding {enc!r} is not supported (rgb8, bgr8, rgba8, bgra8, mono8)")
    step = int(msg.step) or w * channels
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(h, step)[:, : w * channels]
    arr = buf.reshape(h, w, channels)
    if enc == "mono8":
        return np.repeat(arr, 3, axis=2)
    if enc.startswith("bgr"):
        arr = arr[..., 2::-1]
    return np.ascontiguousarray(arr[..., :3])


def _erl_vlm_bag(path: Path) -> bool:
    """Whether ``path`` is a bag written by erl_vlm's recorder (its episode record in metadata.yaml)."""
    import yaml

    from ros2_erl_vlm.recording.mcap_episode import METADATA_KEY

    bag = path.parent if path.is_file() else path
    try:
        info = (yaml.safe_load((bag / "metadata.yaml").read_text(encoding="utf-8")) or {})
        custom = info["rosbag2_bagfile_information"].get("custom_data") or {}
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return False
    return METADATA_KEY in custom


def read_recorded_episode(path: Path) -> RecordedEpisode:
    """An erl_vlm episode bag: its frames in step order, their steps and (in simulation) the truth
    of each frame's observation. ``ValueError`` naming the episode and bag when it does not read."""
    from ros2_erl_vlm.recording.mcap_episode import read_episode

    rec = read_episode(path)  # EpisodeBagError (a ValueError) names the episode and the file
    if not rec.frames:
        raise ValueError(f"{rec.where}: no camera frames recorded")
    by_step = {s.step: s for s in rec.steps}
    steps = tuple(sorted(rec.frames))
    frames = []
    for step in steps:
        with Image.open(io.BytesIO(rec.frames[step].data)) as img:  # decoded as any other bag's frames
            frames.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
    obs = [by_step[s] for s in steps]
    truth = (tuple(SimTruth(reward=o.true_reward, success=o.success, progress=o.progress) for o in obs)
             if all(o.has_truth for o in obs) else None)
    bag = path.parent if path.is_file() else path
    return RecordedEpisode(bag.name, _stack(frames, str(path)),
                           np.asarray([o.stamp_ns * 1e-9 for o in obs]), steps, truth)


def read_bag(path: Path, topic: str | None = None) -> RecordedEpisode:
    """The image messages of ``topic`` (default: the only image topic) of a ROS 2 bag (an erl_vlm
    episode bag: :func:`read_recorded_episode`)."""
    from rosbags.highlevel import AnyReader, AnyReaderError
    from rosbags.typesys import Stores, get_typestore

    from ros2_erl_vlm.recording.mcap_episode import FRAMES

    if topic in (None, FRAMES, f"/{FRAMES}") and _erl_vlm_bag(path):
        return read_recorded_episode(path)
    try:
        return _read_bag(AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED)), path, topic)
    except AnyReaderError as exc:
        raise ValueError(f"{path}: cannot read bag ({exc})") from exc


def _read_bag(reader: Any, path: Path, topic: str | None) -> RecordedEpisode:
    with reader:
        conns = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        topics = sorted({c.topic for c in conns})
        if topic is None:
            if len(topics) != 1:
                raise ValueError(f"{path}: choose an image topic; image topics: {topics or 'none'}")
            topic = topics[0]
        conns = [c for c in conns if c.topic == topic]
        if not conns:
            raise ValueError(f"{path}: no image messages on {topic!r}; image topics: {topics or 'none'}")
        frames, stamps = [], []
        for conn, t_ns, raw in reader.messages(connections=conns):
            frames.append(_decode_image_msg(reader.deserialize(raw, conn.msgtype), conn.msgtype))
            stamps.append(t_ns * 1e-9)
    if not frames:
        raise ValueError(f"{path}: topic {topic!r} has no messages")
    return RecordedEpisode(path.stem if path.is_file() else path.name, _stack(frames, str(path)),
                           np.asarray(stamps))


def read_episodes(path: str | Path, topic: str | None = None) -> list[RecordedEpisode]:
    """Every episode found at ``path`` (see module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if _is_bag(path):
        return [read_bag(path, topic)]
    if path.is_file():
        if path.suffix in (".npy", ".npz"):
            return [read_array(path)]
        raise ValueError(f"{path}: not a frame directory, .npy/.npz array or ROS 2 bag")
    images = _images_in(path)
    if images:
        return [RecordedEpisode(path.name, _stack([_load_image(p) for p in images], str(path)))]
    episodes = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() or p.suffix in (".npy", ".npz", ".mcap")):
        episodes += read_episodes(sub, topic) if (_is_bag(sub) or sub.is_file() or _images_in(sub)) else []
    if not episodes:
        raise ValueError(f"{path}: no image files, frame arrays or bags found")
    return episodes
