"""One episode, one MCAP bag: the writer the ``recorder`` node and the scripted expert share, and
the reader the export uses.

A bag is a rosbag2 directory (``metadata.yaml`` + one ``.mcap``, rosbag2 format version 9) written
with ``rosbags``: ROS-free, no rclpy; the package's own messages are registered from ``msg/*.msg``
(their RIHS01 type hashes equal the ones rosidl generates, so ``ros2 bag play`` and Foxglove read
the bags). Topics (under the recording's namespace, ``/`` by default; :data:`RECORDED_TOPICS`):

* ``observation`` (``erl_vlm/msg/Observation``): every step as the bridge published it, once
  (steps strictly increasing, all of the bag's episode);
* ``action_taken`` (``erl_vlm/msg/Action``): the action the bridge really applied, one per step
  after the first (``step`` = the observation it answered, stamped like the observation it led to);
* ``intervention`` (``std_msgs/msg/Bool``): the teleoperator's intervention flag;
* ``camera/image_raw/compressed`` (``sensor_msgs/msg/CompressedImage``, JPEG): the camera frame of a
  step, logged at that step's observation stamp (the header keeps the camera's own stamp);
* ``safety_status`` (``std_msgs/msg/String``, JSON, as ``arm_bridge`` publishes it).

Intervention flags and safety statuses are logged at the stamp of the step during which they
arrived. The episode's metadata record (success mark, ``marked``, task, who recorded it, ...) is
``metadata.yaml``'s ``custom_data["erl_vlm.episode"]`` (JSON), which rosbag2 also writes into the
MCAP file's ``rosbag2`` metadata record. Every topic's connection is created when the bag opens,
so a bag of this format always lists all five (a topic nothing was published on has 0 messages).

Writing uses the package's current definitions and fills every field of each message (a field
the writer has no value for is an error, not a default). Reading decodes every connection with the
message definition stored IN the bag (its ``msgdef``), never with the package's current ``msg/``:
a bag recorded before a field was added (``sim_state``, commit 816c180) reads back, the new fields
taking their defaults (:data:`OBSERVATION_DEFAULTS`).

:func:`read_episode` also reads a bag recorded by ``ros2 bag record -s mcap`` (no erl_vlm
metadata): there the applied actions come from the observations, frames are paired with steps by
their header stamps, and a ``success`` (std_msgs/Bool) topic, if recorded, gives the mark.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

#: ``custom_data`` key of the episode's metadata record, and the format it holds.
METADATA_KEY = "erl_vlm.episode"
FORMAT = "erl_vlm.episode/1"

OBSERVATION = "observation"
ACTION_TAKEN = "action_taken"
INTERVENTION = "intervention"
FRAMES = "camera/image_raw/compressed"
SAFETY_STATUS = "safety_status"
#: The operator's success button (recorded by ``ros2 bag record``; the recorder node takes it as the mark).
SUCCESS = "success"

OBSERVATION_TYPE = "erl_vlm/msg/Observation"
ACTION_TYPE = "erl_vlm/msg/Action"
BOOL_TYPE = "std_msgs/msg/Bool"
IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
STRING_TYPE = "std_msgs/msg/String"
#: Every topic of a recorded episode and its message type, in connection order.
RECORDED_TOPICS: dict[str, str] = {OBSERVATION: OBSERVATION_TYPE, ACTION_TAKEN: ACTION_TYPE,
                                   INTERVENTION: BOOL_TYPE, FRAMES: IMAGE_TYPE,
                                   SAFETY_STATUS: STRING_TYPE}
#: What a bag from ``ros2 bag record`` must hold at least.
FOREIGN_REQUIRED = (OBSERVATION, FRAMES)
FRAME_FORMATS = ("jpeg", "png")
#: Observation fields a bag's definition may lack (older recordings), and the value they read as.
#: ``header``, ``episode``, ``step`` and ``state`` are required.
OBSERVATION_DEFAULTS: dict[str, Any] = {
    "action_taken": (), "terminated": False, "truncated": False, "truncation_reason": "",
    "has_truth": False, "true_reward": math.nan, "progress": math.nan, "success": False,
    "sim_state": ()}


class EpisodeBagError(ValueError):
    """A bag that cannot be written or read as an episode (the message names the file and the
    episode)."""


@dataclass
class StepRecord:
    """One ``Observation``: the state after the step's action (none at step 0) and what the bridge
    reported with it. ``stamp_ns`` is the observation's header stamp (sim time in lock-step)."""

    step: int
    state: np.ndarray
    action_taken: np.ndarray
    stamp_ns: int
    terminated: bool = False
    truncated: bool = False
    truncation_reason: str = ""
    has_truth: bool = False
    true_reward: float = math.nan
    progress: float = math.nan
    success: bool = False
    frame_id: str = "world"
    #: Simulation only: the MuJoCo state after the step (float64; re-renders the step's frame,
    #: ``MetaWorldTaskEnv.set_sim_state``); empty on an arm and in bags recorded before the field.
    sim_state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))


@dataclass
class FrameRecord:
    """A step's compressed camera frame (the bytes as recorded)."""

    step: int
    data: bytes
    format: str
    header_stamp_ns: int
    frame_id: str = ""

    def rgb(self) -> np.ndarray:
        """The decoded ``(H, W, 3)`` uint8 RGB frame (ValueError if it does not decode)."""
        from ros2_erl_vlm.core.frames import FrameCodec

        return FrameCodec("jpeg").decode(self.data)


@dataclass
class EpisodeRecording:
    """One episode read back from its bag (:func:`read_episode`)."""

    path: Path
    episode: int
    meta: dict[str, Any]
    steps: list[StepRecord]
    #: ``actions[t]``: the action applied after observation ``t`` (the ``action_taken`` topic).
    actions: list[np.ndarray]
    frames: dict[int, FrameRecord] = field(default_factory=dict)
    #: ``(step, active)`` per intervention message.
    interventions: list[tuple[int, bool]] = field(default_factory=list)
    #: ``(step, json text)`` per safety status message.
    safety_status: list[tuple[int, str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        """``episode <id> (<bag>)``, for error messages."""
        return f"episode {self.episode} ({self.path})"

    @property
    def success(self) -> bool:
        """The episode's success mark (False when it was never marked)."""
        return bool(self.meta.get("success", False))

    @property
    def marked(self) -> bool:
        """Whether an operator (or the scripted recorder) gave the mark."""
        return bool(self.meta.get("marked", False))

    @property
    def task(self) -> str:
        """The recorded task's name ("" when unknown)."""
        return str(self.meta.get("task", ""))


@cache
def msg_dir() -> Path:
    """The package's ``msg/`` directory (source checkout or installed ``share/erl_vlm``)."""
    from ros2_erl_vlm.paths import share_dir

    path = share_dir() / "msg"
    if not (path / "Observation.msg").is_file():
        raise FileNotFoundError(f"{path}: the erl_vlm message definitions (msg/*.msg) are missing; "
                                "set ERL_VLM_SHARE to a directory that holds msg/")
    return path


@cache
def typestore() -> Any:
    """A ``rosbags`` typestore of ROS 2 Kilted's messages plus ``erl_vlm/msg/*`` from ``msg/``."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for f in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(encoding="utf-8"), f"erl_vlm/msg/{f.stem}"))
    store.register(types)
    return store


@cache
def _types_of_definition(msgtype: str, fmt: str, data: str) -> Any:
    """A typestore of one connection's stored message definition (``msgdef``: ROS 2 ``.msg`` text
    with its dependencies, or IDL), as ``rosbags.highlevel.AnyReader`` builds it."""
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    if fmt == "MSG":
        store.register(get_types_from_msg(data, msgtype))
    else:
        sep = "=" * 80 + "\n"
        types: dict[str, Any] = {}
        if data.startswith(f"{sep}IDL: "):
            for part in data.split(sep)[1:]:
                types.update(get_types_from_idl(part.split("\n", 1)[1]))
        else:
            types.update(get_types_from_idl(data))
        store.register(types)
    return store


def connection_types(conn: Any) -> Any:
    """The typestore that decodes ``conn``'s messages: built from the definition stored in the bag
    (the types as they were when it was recorded); the package's current ones only for a bag that
    stores no definitions."""
    msgdef = getattr(conn, "msgdef", None)
    fmt = getattr(getattr(msgdef, "format", None), "name", "NONE")
    if msgdef is None or fmt == "NONE" or not msgdef.data:
        return typestore()
    return _types_of_definition(conn.msgtype, fmt, msgdef.data)


def _message(ts: Any, msgtype: str, values: dict[str, Any], where: str) -> Any:
    """A ``msgtype`` message with every field of its definition set from ``values``."""
    names = [name for name, _ in ts.fielddefs[msgtype][1]]
    missing = [n for n in names if n not in values]
    if missing:
        raise EpisodeBagError(f"{where}: {msgtype} has field(s) {', '.join(missing)} the writer does "
                              "not fill (msg/ changed: update ros2_erl_vlm/recording/mcap_episode.py)")
    return ts.types[msgtype](**{n: values[n] for n in names})


def _time(ts: Any, ns: int) -> Any:
    t = ts.types["builtin_interfaces/msg/Time"]
    return t(sec=int(ns) // 1_000_000_000, nanosec=int(ns) % 1_000_000_000)


def _header(ts: Any, ns: int, frame_id: str) -> Any:
    return ts.types["std_msgs/msg/Header"](stamp=_time(ts, ns), frame_id=str(frame_id))


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _f32(values: Any) -> np.ndarray:
    return np.array(values, dtype=np.float32).reshape(-1)


def topic_name(namespace: str, name: str) -> str:
    """The fully qualified topic ``name`` under ``namespace`` (``/`` or ``/robot1``)."""
    ns = "/" + str(namespace).strip("/")
    return f"{ns.rstrip('/')}/{name}"


def episode_dir_name(episode: int) -> str:
    """The bag directory name of ``episode`` (``episode_000012``)."""
    return f"episode_{int(episode):06d}"


class EpisodeWriter:
    """Write one episode to a new bag directory ``path`` (never an existing one).

    Call :meth:`write_step` for every observation (steps strictly increasing), then
    :meth:`write_frame` / :meth:`write_intervention` / :meth:`write_safety_status` for steps
    already written, and :meth:`close` with the success mark once the episode is over.

    Args:
        path: the bag directory to create (``EpisodeBagError`` if it exists).
        episode: the episode id (every observation must carry it).
        task, layout: what was recorded (metadata).
        source: who recorded it (``recorder`` node, ``scripted`` expert).
        namespace: the topics' namespace.
        extra: more metadata (JSON-serialisable).
        types: the typestore to write with (default: :func:`typestore`, the package's current
            definitions; tests write bags of older definitions with it).
    """

    def __init__(self, path: str | Path, episode: int, *, task: str = "", layout: str = "",
                 source: str = "recorder", namespace: str = "/", extra: dict[str, Any] | None = None,
                 types: Any = None) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        self.episode = int(episode)
        self.where = f"episode {self.episode} ({self.path})"
        if self.path.exists():
            raise EpisodeBagError(f"{self.where}: the bag exists already; a recorded bag is never "
                                  "overwritten (choose another directory or episode)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.meta: dict[str, Any] = {
            "format": FORMAT, "episode": self.episode, "task": str(task), "layout": str(layout),
            "source": str(source), "namespace": "/" + str(namespace).strip("/"),
            "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **(extra or {})}
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        ts = self._ts = types if types is not None else typestore()
        self._conns = {name: self._writer.add_connection(topic_name(namespace, name), msgtype,
                                                         typestore=ts)
                       for name, msgtype in RECORDED_TOPICS.items()}
        self._stamps: dict[int, int] = {}
        self._frames: set[int] = set()
        self.last_step: int | None = None
        self.counts = dict.fromkeys(RECORDED_TOPICS, 0)
        self.obs_dim: int | None = None
        self.action_dim: int | None = None
        self.closed = False

    def _write(self, name: str, stamp_ns: int, msg: Any) -> None:
        if self.closed:
            raise EpisodeBagError(f"{self.where}: the bag is closed")
        data = self._ts.serialize_cdr(msg, RECORDED_TOPICS[name])
        self._writer.write(self._conns[name], int(stamp_ns), data)
        self.counts[name] += 1

    def _stamp_of(self, step: int, what: str) -> int:
        stamp = self._stamps.get(int(step))
        if stamp is None:
            raise EpisodeBagError(f"{self.where}: {what} for step {step}, which has no observation")
        return stamp

    def stamp(self, step: int) -> int | None:
        """The observation stamp (ns) of ``step``, None when the step is not written."""
        return self._stamps.get(int(step))

    def write_step(self, rec: StepRecord) -> None:
        """Write an observation and, after step 0, the action it reports applied."""
        step = int(rec.step)
        if self.last_step is not None and step <= self.last_step:
            raise EpisodeBagError(f"{self.where}: step {step} after step {self.last_step} "
                                  "(steps must increase)")
        state, action = _f32(rec.state), _f32(rec.action_taken)
        ts = self._ts
        msg = _message(ts, OBSERVATION_TYPE, {
            "header": _header(ts, rec.stamp_ns, rec.frame_id), "episode": self.episode, "step": step,
            "state": state, "action_taken": action, "terminated": bool(rec.terminated),
            "truncated": bool(rec.truncated), "truncation_reason": str(rec.truncation_reason),
            "has_truth": bool(rec.has_truth), "true_reward": float(rec.true_reward),
            "progress": float(rec.progress), "success": bool(rec.success),
            "sim_state": np.array(rec.sim_state, dtype=np.float64).reshape(-1)}, self.where)
        self._write(OBSERVATION, rec.stamp_ns, msg)
        if action.size:
            self._write(ACTION_TAKEN, rec.stamp_ns, _message(ts, ACTION_TYPE, {
                "header": _header(ts, rec.stamp_ns, rec.frame_id), "episode": self.episode,
                "step": max(step - 1, 0), "action": action}, self.where))
            self.action_dim = self.action_dim or int(action.size)
        self.obs_dim = self.obs_dim or int(state.size)
        self._stamps[step] = int(rec.stamp_ns)
        self.last_step = step

    def write_frame(self, step: int, data: bytes, fmt: str = "jpeg", header_stamp_ns: int | None = None,
                    frame_id: str = "") -> None:
        """Write the compressed camera frame of ``step`` (JPEG or PNG bytes), logged at the step's
        observation stamp; ``header_stamp_ns``: the camera's stamp (default: the step's)."""
        stamp = self._stamp_of(step, "a frame")
        if fmt not in FRAME_FORMATS:
            raise EpisodeBagError(f"{self.where}: frame format {fmt!r} (supported: {FRAME_FORMATS})")
        if int(step) in self._frames:
            raise EpisodeBagError(f"{self.where}: step {step} has a frame already")
        msg = _message(self._ts, IMAGE_TYPE, {
            "header": _header(self._ts, stamp if header_stamp_ns is None else header_stamp_ns, frame_id),
            "format": fmt, "data": np.frombuffer(bytes(data), dtype=np.uint8)}, self.where)
        self._write(FRAMES, stamp, msg)
        self._frames.add(int(step))

    def write_rgb_frame(self, step: int, rgb: np.ndarray, quality: int = 90,
                        header_stamp_ns: int | None = None, frame_id: str = "") -> None:
        """JPEG-encode an ``(H, W, 3)`` uint8 RGB frame and :meth:`write_frame` it."""
        from ros2_erl_vlm.core.frames import FrameCodec

        data = FrameCodec("jpeg", int(quality)).encode(np.asarray(rgb, dtype=np.uint8))
        assert isinstance(data, bytes)
        self.write_frame(step, data, "jpeg", header_stamp_ns, frame_id)

    def write_intervention(self, step: int, active: bool) -> None:
        """Write an intervention flag that arrived during ``step``."""
        stamp = self._stamp_of(step, "an intervention flag")
        self._write(INTERVENTION, stamp, _message(self._ts, BOOL_TYPE, {"data": bool(active)}, self.where))

    def write_safety_status(self, step: int, text: str) -> None:
        """Write a safety status (JSON text) that arrived during ``step``."""
        stamp = self._stamp_of(step, "a safety status")
        self._write(SAFETY_STATUS, stamp, _message(self._ts, STRING_TYPE, {"data": str(text)}, self.where))

    @property
    def frame_count(self) -> int:
        """Frames written."""
        return len(self._frames)

    def close(self, success: bool | None, *, mark_source: str = "", end_reason: str = "",
              extra: dict[str, Any] | None = None) -> Path:
        """Write the metadata record and close the bag; returns its directory.

        ``success=None``: nobody marked the episode (recorded as ``success: false, marked: false``).

        Raises:
            EpisodeBagError: the bag could not be closed (disk full, directory removed, ...); it
                stays unclosed (:attr:`closed` False) and a later call tries again.
        """
        if self.closed:
            return self.path
        if self._writer.storage is None:  # an earlier close got past the MCAP file, not the yaml
            raise EpisodeBagError(f"{self.where}: an earlier close failed after the MCAP file was "
                                  "finished; metadata.yaml is missing (the episode record is lost; "
                                  "`ros2 bag reindex` rebuilds a plain metadata.yaml)")
        self.meta.update({
            "success": bool(success), "marked": success is not None, "mark_source": str(mark_source),
            "end_reason": str(end_reason), "steps": self.last_step if self.last_step is not None else -1,
            "observations": self.counts[OBSERVATION], "frames": self.frame_count,
            "obs_dim": self.obs_dim, "action_dim": self.action_dim,
            "closed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **(extra or {})})
        self._writer.set_custom_data(METADATA_KEY, json.dumps(self.meta, sort_keys=True))
        try:
            self._writer.close()
        except Exception as exc:  # OSError, rosbags' WriterError, ...: the caller must hear of it
            raise EpisodeBagError(f"{self.where}: closing the bag failed ({type(exc).__name__}: "
                                  f"{exc}); it has no metadata.yaml yet") from exc
        self.closed = True
        return self.path


# -- reading ----------------------------------------------------------------------------------------
def _bag_dir(path: Path) -> Path:
    if path.is_file() and path.suffix == ".mcap":
        return path.parent
    return path


def _read_metadata(bag: Path, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    import yaml

    meta_path = bag / "metadata.yaml"
    if not meta_path.is_file():
        mcaps = sorted(p.name for p in bag.glob("*.mcap"))
        if mcaps:
            raise EpisodeBagError(f"{where}: no metadata.yaml beside {', '.join(mcaps)}: the recording "
                                  "was never closed (recorder killed or disk full); its MCAP file is "
                                  "probably truncated (try `mcap recover`)")
        raise EpisodeBagError(f"{where}: not a ROS 2 bag (no metadata.yaml)")
    try:
        info = (yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {})["rosbag2_bagfile_information"]
        custom = (info.get("custom_data") or {}).get(METADATA_KEY)
        meta = json.loads(custom) if custom is not None else None
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise EpisodeBagError(f"{where}: unreadable metadata.yaml ({exc})") from exc
    if meta is not None and (not isinstance(meta, dict) or meta.get("format") != FORMAT):
        raise EpisodeBagError(f"{where}: metadata {METADATA_KEY!r} is not of format {FORMAT}")
    return info, meta


def _match_connections(connections: Sequence[Any], wanted: Iterable[str], where: str) -> dict[str, Any]:
    """``{name: connection}`` of the bag's topics ending in each wanted name with its type."""
    out: dict[str, Any] = {}
    expected = {**RECORDED_TOPICS, SUCCESS: BOOL_TYPE}
    for name in wanted:
        hits = [c for c in connections if c.topic == name or c.topic.endswith("/" + name)]
        typed = [c for c in hits if c.msgtype == expected[name]]
        if hits and not typed:
            raise EpisodeBagError(f"{where}: topic {hits[0].topic} is {hits[0].msgtype}, expected "
                                  f"{expected[name]}")
        if len({c.topic for c in typed}) > 1:
            raise EpisodeBagError(f"{where}: several {name} topics ({sorted({c.topic for c in typed})}): "
                                  "one robot per bag")
        if typed:
            out[name] = typed
    return out


def read_episode(path: str | Path, sync_tolerance_s: float = 0.0) -> EpisodeRecording:
    """Read one episode's bag (a bag directory, or the ``.mcap`` file inside one).

    ``sync_tolerance_s``: bags from ``ros2 bag record`` only: a frame belongs to the step whose
    observation stamp is nearest to the frame's header stamp within this tolerance (0: equal).

    Raises:
        EpisodeBagError: the bag is missing, not closed, truncated or damaged, lacks a topic, holds
            several episodes or inconsistent data (the message names the file and the episode).
    """
    from rosbags.rosbag2 import Reader

    bag = _bag_dir(Path(path))
    where = f"episode {bag.name} ({bag})"
    if not bag.exists():
        raise EpisodeBagError(f"{where}: does not exist")
    info, meta = _read_metadata(bag, where)
    if meta is not None:
        where = f"episode {meta.get('episode')} ({bag})"
    ours = meta is not None
    wanted = list(RECORDED_TOPICS) if ours else [*RECORDED_TOPICS, SUCCESS]
    raw: dict[str, list[tuple[int, Any]]] = {}
    try:
        with Reader(bag) as reader:
            conns = _match_connections(reader.connections, wanted, where)
            required = RECORDED_TOPICS if ours else FOREIGN_REQUIRED
            missing = [n for n in required if n not in conns]
            if missing:
                present = sorted(c.topic for c in reader.connections)
                raise EpisodeBagError(f"{where}: missing topic(s) {', '.join(missing)} (the bag has: "
                                      f"{', '.join(present) or 'none'})")
            by_id = {c.id: name for name, cs in conns.items() for c in cs}
            # Each connection decodes with the definition stored in the bag: the fields as recorded.
            stores = {c.id: connection_types(c) for cs in conns.values() for c in cs}
            for conn, t_ns, data in reader.messages(connections=[c for cs in conns.values() for c in cs]):
                msg = stores[conn.id].deserialize_cdr(data, conn.msgtype)
                raw.setdefault(by_id[conn.id], []).append((int(t_ns), msg))
    except EpisodeBagError:
        raise
    except Exception as exc:  # rosbags' ReaderError, struct/zstd errors of a cut file, ...
        files = ", ".join(str(f) for f in info.get("relative_file_paths", [])) or "its MCAP file"
        raise EpisodeBagError(f"{where}: cannot read {files}: truncated or damaged ({exc})") from exc
    return _assemble(bag, where, meta, raw, sync_tolerance_s)


def _assemble(bag: Path, where: str, meta: dict[str, Any] | None, raw: dict[str, list[tuple[int, Any]]],
              sync_tolerance_s: float) -> EpisodeRecording:
    observations = raw.get(OBSERVATION, [])
    if not observations:
        raise EpisodeBagError(f"{where}: no observations recorded")
    episodes = sorted({int(m.episode) for _, m in observations})
    if len(episodes) != 1:
        raise EpisodeBagError(f"{where}: observations of several episodes {episodes}: one bag per episode")
    episode = episodes[0]
    if meta is not None and int(meta.get("episode", episode)) != episode:
        raise EpisodeBagError(f"{where}: the observations are of episode {episode}, the metadata says "
                              f"{meta.get('episode')}")
    where = f"episode {episode} ({bag})"
    steps: list[StepRecord] = []
    for _, m in observations:
        if steps and int(m.step) <= steps[-1].step:
            if meta is not None:
                raise EpisodeBagError(f"{where}: step {m.step} recorded after step {steps[-1].step}")
            continue  # ros2 bag record: a bridge re-published the observation
        steps.append(_step_of(m, where))
    by_stamp = {s.stamp_ns: s.step for s in steps}
    ours = meta is not None
    if meta is not None:
        actions = _actions_from_topic(raw.get(ACTION_TAKEN, []), steps, where)
    else:
        actions = [s.action_taken for s in steps[1:]]
        meta = _foreign_meta(episode, raw.get(SUCCESS, []))
    frames: dict[int, FrameRecord] = {}
    stamps = np.array([s.stamp_ns for s in steps], dtype=np.int64)
    for t_ns, m in raw.get(FRAMES, []):
        header_ns = _ns(m.header.stamp)
        if ours:  # logged at its step's observation stamp
            step = by_stamp.get(t_ns)
            if step is None:
                raise EpisodeBagError(f"{where}: a frame logged at {t_ns} ns matches no observation")
        else:
            i = int(np.argmin(np.abs(stamps - header_ns)))
            if abs(int(stamps[i]) - header_ns) > sync_tolerance_s * 1e9:
                continue
            step = steps[i].step
        if step in frames and ours:
            raise EpisodeBagError(f"{where}: step {step} has two frames")
        fmt = str(m.format).lower()
        frames.setdefault(step, FrameRecord(step, bytes(m.data), "png" if "png" in fmt else "jpeg",
                                            header_ns, str(m.header.frame_id)))

    def at_step(t_ns: int) -> int:
        if t_ns in by_stamp:
            return by_stamp[t_ns]
        i = int(np.searchsorted(stamps, t_ns, side="right")) - 1
        return steps[max(i, 0)].step

    interventions = [(at_step(t), bool(m.data)) for t, m in raw.get(INTERVENTION, [])]
    safety = [(at_step(t), str(m.data)) for t, m in raw.get(SAFETY_STATUS, [])]
    return EpisodeRecording(bag, episode, meta, steps, actions, frames, interventions, safety)


def _step_of(m: Any, where: str) -> StepRecord:
    """A decoded Observation (of whichever definition the bag stored) read by field name; a field
    the definition lacks takes its :data:`OBSERVATION_DEFAULTS` value."""
    missing = [n for n in ("header", "episode", "step", "state") if not hasattr(m, n)]
    if missing:
        raise EpisodeBagError(f"{where}: the bag's {OBSERVATION_TYPE} definition has no field(s) "
                              f"{', '.join(missing)}")

    def get(name: str) -> Any:
        return getattr(m, name, OBSERVATION_DEFAULTS[name])

    return StepRecord(
        step=int(m.step), state=_f32(m.state), action_taken=_f32(get("action_taken")),
        stamp_ns=_ns(m.header.stamp), terminated=bool(get("terminated")), truncated=bool(get("truncated")),
        truncation_reason=str(get("truncation_reason")), has_truth=bool(get("has_truth")),
        true_reward=float(get("true_reward")), progress=float(get("progress")),
        success=bool(get("success")), frame_id=str(m.header.frame_id),
        sim_state=np.array(get("sim_state"), dtype=np.float64).reshape(-1))


def _actions_from_topic(messages: list[tuple[int, Any]], steps: list[StepRecord],
                        where: str) -> list[np.ndarray]:
    """The applied actions, ``[t]`` = the one that led to ``steps[t + 1]`` (logged at its stamp)."""
    by_stamp = {t_ns: _f32(m.action) for t_ns, m in messages}
    actions = []
    for cur in steps[1:]:
        a = by_stamp.get(cur.stamp_ns)
        if a is None:
            raise EpisodeBagError(f"{where}: no action_taken message for the action that led to step "
                                  f"{cur.step}")
        if not np.array_equal(a, cur.action_taken, equal_nan=True):
            raise EpisodeBagError(f"{where}: the action_taken message of step {cur.step} differs from "
                                  "the action its observation reports")
        actions.append(a)
    return actions


def _foreign_meta(episode: int, marks: list[tuple[int, Any]]) -> dict[str, Any]:
    marked = bool(marks)
    return {"format": "", "episode": episode, "task": "", "source": "ros2 bag record",
            "success": bool(marks[-1][1].data) if marked else False, "marked": marked,
            "mark_source": "topic:success" if marked else ""}


def find_bags(folder: str | Path) -> list[Path]:
    """The bag directories directly in ``folder`` (or ``folder`` itself if it is one), sorted by name.

    Raises:
        EpisodeBagError: ``folder`` does not exist or holds no bag.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EpisodeBagError(f"{folder}: no such directory of bags")
    if (folder / "metadata.yaml").is_file():
        return [folder]
    bags = sorted(p for p in folder.iterdir() if p.is_dir() and (
        (p / "metadata.yaml").is_file() or any(p.glob("*.mcap"))))
    if not bags:
        raise EpisodeBagError(f"{folder}: no bags (directories with metadata.yaml and an .mcap file)")
    return bags
