"""Find and read a run directory's streams, whichever starter wrote it.

Three layouts are recognised:

* ``graph``: the node graph (``python -m ros2_erl_vlm.runner``, ``ros2 launch``): one folder per node,
  ``sac_agent/{train,eval,relabel}.csv`` (+ ``summary.json`` at the end),
  ``reward_learner/{reward.csv, ratings.erlr, requests.erlr, models/}`` (the requests keep, in
  simulation, each rated step's MuJoCo state), ``vlm_rater/ratings.erlr``
  (the rater's own log; with ``store_frames`` it holds the frames it was shown), ``params/<node>.yaml``
  and every node's ``status.json``;
* ``in-process``: ``python -m ros2_erl_vlm.train``: everything in one folder (``train.csv``,
  ``eval.csv``, ``reward.csv``, ``ratings.erlr``, ``requests.erlr``, ``models/``, ``run.json``,
  ``summary.json`` at the end);
* ``benchmark``: an in-process run started by ``bench/learning.py`` (the same files plus
  ``sittings.jsonl``);
* ``offline``: ``python -m ros2_erl_vlm.offline.train`` (``run.json`` naming its ``data``,
  ``train.csv`` of gradient-step windows, not episodes; ``eval.csv`` with ``--eval-task``); it
  keeps no ratings.

Everything is read-only and tolerant of a run still being written: a CSV's half-written last line
is left out, missing files are empty streams, and a rating log's crash-truncated or half-appended
tail is not read (:func:`ros2_erl_vlm.core.record_log.scan`). What was left out is listed in
:attr:`RunData.notes`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ros2_erl_vlm.core.rating.dataset import RECORD_KIND
from ros2_erl_vlm.core.record_log import RecordLogError, scan

#: Node folders of a graph run.
GRAPH_NODES = ("sac_agent", "reward_learner", "vlm_rater", "sim_bridge", "camera_capture", "rating_viz",
               "deploy_agent")
#: Files that make a folder an in-process run directory.
IN_PROCESS_FILES = ("train.csv", "eval.csv", "reward.csv", "ratings.erlr", "run.json", "summary.json")
#: The rater's record kind in ``vlm_rater/ratings.erlr`` (``ros2_erl_vlm.raters.records.RESULT_KIND``).
RATER_RESULT_KIND = "rater_result"
_MODEL_FILE = re.compile(r"^reward_model_v(\d+)\.pt$")

Row = dict[str, Any]


class RunDirError(ValueError):
    """The path is missing or is not a run directory (the message says which and why)."""


@dataclass
class Rating:
    """One answer of the run's rating log, joined with what the rater's own log kept of it.

    ``label`` is None for an abstention; ``truth_class`` is None without simulator truth (or when
    the task is unknown); ``frames`` are what the rater saw, ``inputs`` the reward model's input
    (states ``(T, obs_dim)`` or frames ``(T, H, W, 3)``); ``sim_state`` the MuJoCo state of the
    segment's last step (``MetaWorldTaskEnv.sim_state``: qpos, qvel, mocap pose) when the request
    log (``requests.erlr``, array ``sim_state``) keeps it.
    """

    query_id: str
    label: int | None
    num_classes: int
    round: int | None
    episode: int | None
    steps: tuple[int, ...]
    env_step: int | None
    backend: str
    abstain_reason: str
    truth_progress: float | None
    truth_success: bool | None
    truth_class: int | None
    late: bool
    inputs: np.ndarray | None
    frames: np.ndarray | None
    sim_state: np.ndarray | None

    @property
    def wrong(self) -> bool:
        """Rated (not an abstention) and not the truth class."""
        return self.label is not None and self.truth_class is not None and self.label != self.truth_class


@dataclass
class RunData:
    """Everything the report reads from one run directory (see module docstring)."""

    path: Path
    kind: str
    task: str | None = None
    layout: str | None = None
    seed: int | None = None
    total_steps: int | None = None
    class_names: tuple[str, ...] = ()
    train: list[Row] = field(default_factory=list)
    eval: list[Row] = field(default_factory=list)
    reward: list[Row] = field(default_factory=list)
    relabel: list[Row] = field(default_factory=list)
    ratings: list[Rating] = field(default_factory=list)
    rater_log: bool = False
    models: list[tuple[int, Path]] = field(default_factory=list)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    finished: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int | None:
        """The rating classes (from the ratings, else the class names), None when unknown."""
        if self.ratings:
            return self.ratings[0].num_classes
        return len(self.class_names) or None


# -- CSV streams --------------------------------------------------------------------------------
def _value(text: str | None) -> Any:
    """A CSV cell as a number where it is one (``True``/``False`` as 1.0/0.0), None when empty."""
    if text is None or text == "":
        return None
    if text in ("True", "False"):
        return 1.0 if text == "True" else 0.0
    try:
        return float(text)
    except ValueError:
        return text


def read_csv(path: Path, notes: list[str] | None = None) -> list[Row]:
    """Rows of a metrics CSV (:class:`~ros2_erl_vlm.core.metrics.MetricsLogger`), numbers parsed.

    A missing or empty file gives ``[]``. A last line without its newline (the writer is in the
    middle of it) or with too few fields is left out and, with ``notes``, said so.
    """
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    if not text:
        return []
    complete = text.endswith("\n")
    lines = text.splitlines(keepends=True)
    if not complete:
        lines = lines[:-1]
        if notes is not None:
            notes.append(f"{path}: left out a half-written last line (the run is writing it)")
    rows = list(csv.reader(io.StringIO("".join(lines))))
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    out = []
    for i, cells in enumerate(body):
        if len(cells) < len(header):
            if notes is not None:
                notes.append(f"{path}: row {i + 1} has {len(cells)} of {len(header)} fields; left out")
            continue
        out.append({k: _value(v) for k, v in zip(header, cells, strict=False)})
    return out


def column(rows: list[Row], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the rows where ``key`` is a finite number."""
    pairs = [(r.get("step"), r.get(key)) for r in rows]
    pairs = [(float(s), float(v)) for s, v in pairs if isinstance(s, float) and isinstance(v, float)
             and np.isfinite(v)]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    s, v = zip(*pairs, strict=True)
    return np.array(s), np.array(v)


# -- small files --------------------------------------------------------------------------------
def _json(path: Path, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: unreadable ({exc}); left out")
        return None
    return data if isinstance(data, dict) else None


def _node_params(run: Path) -> dict[str, Any]:
    """The argument overrides the runner passed the nodes (``params/<node>.yaml``), merged."""
    out: dict[str, Any] = {}
    for path in sorted((run / "params").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for section in data.values() if isinstance(data, dict) else []:
            params = section.get("ros__parameters") if isinstance(section, dict) else None
            if isinstance(params, dict):
                out.update(params)
    return out


def _models(folder: Path) -> list[tuple[int, Path]]:
    """``(version, path)`` of every reward model file, oldest first."""
    out = []
    for path in folder.glob("reward_model_v*.pt"):
        m = _MODEL_FILE.match(path.name)
        if m:
            out.append((int(m.group(1)), path))
    return sorted(out)


# -- locating -----------------------------------------------------------------------------------
def run_kind(path: Path) -> str | None:
    """``"graph"``, ``"benchmark"``, ``"in-process"`` or None (not a run directory)."""
    if any((path / n).is_dir() for n in ("sac_agent", "reward_learner", "vlm_rater")):
        return "graph"
    if any((path / f).exists() for f in IN_PROCESS_FILES):
        if (path / "sittings.jsonl").exists():
            return "benchmark"
        settings = _json(path / "run.json", [])
        return "offline" if settings is not None and "data" in settings else "in-process"
    return None


def find_run(path: str | Path) -> tuple[Path, str]:
    """The run directory for ``path`` and its kind; a node's folder of a graph run names its run.

    Raises:
        RunDirError: ``path`` does not exist or holds no run.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise RunDirError(f"{p}: no such directory")
    if not p.is_dir():
        raise RunDirError(f"{p}: not a directory")
    if p.name in GRAPH_NODES and run_kind(p.parent) == "graph":  # a node's folder (it has CSVs too)
        p = p.parent
    kind = run_kind(p)
    if kind is None:
        raise RunDirError(
            f"{p}: not a run directory (no {', '.join(IN_PROCESS_FILES)} of an in-process run, no "
            "sac_agent/, reward_learner/ or vlm_rater/ of a graph run)")
    return p.resolve(), kind


# -- task ----------------------------------------------------------------------------------------
def _task_by_instruction(instruction: str) -> str | None:
    """The task whose instruction the ratings were asked with (a graph run started without --task)."""
    from ros2_erl_vlm.envs.tasks import available_tasks, load_task

    try:
        names = available_tasks()
    except FileNotFoundError:
        return None
    for name in names:
        try:
            if load_task(name).instruction == instruction:
                return name
        except ValueError:
            continue
    return None


def _load_task(name: str | None, layout: str | None, notes: list[str]) -> Any:
    if not name:
        return None
    from ros2_erl_vlm.envs.tasks import load_task

    try:
        return load_task(name, layout=layout)
    except (ValueError, FileNotFoundError) as exc:
        notes.append(f"task {name!r}: {exc}; truth classes left out")
        return None


# -- ratings -------------------------------------------------------------------------------------
def _scan(path: Path, notes: list[str]) -> list[Any]:
    if not path.is_file():
        return []
    try:
        result = scan(path)
    except (RecordLogError, OSError) as exc:
        notes.append(f"{path}: unreadable ({exc}); its ratings are left out")
        return []
    if result.truncated_tail_bytes:
        notes.append(f"{path}: {result.truncated_tail_bytes} bytes at the end are not a complete record "
                     "yet (being written, or a crash's tail); left out")
    return result.records


def read_sim_states(requests_log: Path | None, notes: list[str]) -> dict[str, np.ndarray]:
    """The MuJoCo state of each request's last step (``requests.erlr``'s ``sim_state`` array,
    ``(T, n)`` float64), by request id; requests without one are left out."""
    from ros2_erl_vlm.core.reward.reward_learner import REQUEST_KIND

    out: dict[str, np.ndarray] = {}
    for rec in _scan(requests_log, notes) if requests_log is not None else []:
        state = rec.arrays.get("sim_state")
        if rec.meta.get("kind") != REQUEST_KIND or state is None or state.size == 0:
            continue
        out[str(rec.meta.get("request_id"))] = np.asarray(state, dtype=np.float64).reshape(len(state), -1)[-1]
    return out


def read_ratings(learner_log: Path, rater_log: Path | None, task: Any, notes: list[str],
                 requests_log: Path | None = None) -> list[Rating]:
    """The learner's rating records (truth, round) joined by request id with the rater's records
    (frames) and the learner's requests (MuJoCo states); a rater-only log (no learner log) gives
    ratings without truth."""
    from ros2_erl_vlm.core.rating.quality import record_truth_class

    sim_states = read_sim_states(requests_log, notes)
    rater: dict[str, Any] = {}
    for rec in _scan(rater_log, notes) if rater_log is not None else []:
        if rec.meta.get("kind") == RATER_RESULT_KIND:
            rater[str(rec.meta.get("query_id"))] = rec
    learner = [r for r in _scan(learner_log, notes) if r.meta.get("kind") == RECORD_KIND]
    records = learner or list(rater.values())
    out = []
    for rec in records:
        m = rec.meta
        qid = str(m.get("query_id"))
        other = rater.get(qid)
        n = int(m["num_classes"])
        truth = None
        if task is not None:
            try:
                truth = record_truth_class(m, task.bin_truth, n)
            except ValueError:
                truth = None
        elif m.get("backend") == "oracle" and "truth_success" not in m:
            truth = record_truth_class(m, lambda *_: 0, n)  # the oracle's own rationale
        frames = None
        for source in (rec, other):
            if source is not None and "frames" in source.arrays:
                frames = np.asarray(source.arrays["frames"])
                break
        inputs = rec.arrays.get("input")
        if frames is None and inputs is not None and inputs.ndim == 4 and inputs.dtype == np.uint8:
            frames = inputs  # an image reward model's input is the frames
        label = m.get("label")
        out.append(Rating(
            query_id=qid, label=None if label is None else int(label), num_classes=n,
            round=None if m.get("round") is None else int(m["round"]),
            episode=None if m.get("episode") is None else int(m["episode"]),
            steps=tuple(int(s) for s in m.get("steps") or ()),
            env_step=None if m.get("env_step") is None else int(m["env_step"]),
            backend=str(m.get("backend") or ""), abstain_reason=str(m.get("abstain_reason") or ""),
            truth_progress=None if m.get("truth_progress") is None else float(m["truth_progress"]),
            truth_success=None if m.get("truth_success") is None else bool(m["truth_success"]),
            truth_class=truth, late=bool(m.get("late", False)),
            inputs=None if inputs is None else np.asarray(inputs), frames=frames,
            sim_state=sim_states.get(qid)))
    return out


# -- the whole run -------------------------------------------------------------------------------
def read_run(path: str | Path, task: str | None = None) -> RunData:
    """Read a run directory (see module docstring); ``task`` overrides the task the run names.

    Raises:
        RunDirError: not a run directory.
    """
    root, kind = find_run(path)
    run = RunData(path=root, kind=kind)
    notes = run.notes
    if kind == "graph":
        agent, learner, rater = root / "sac_agent", root / "reward_learner", root / "vlm_rater"
        run.train = read_csv(agent / "train.csv", notes)
        run.eval = read_csv(agent / "eval.csv", notes)
        run.relabel = read_csv(agent / "relabel.csv", notes)
        run.reward = read_csv(learner / "reward.csv", notes)
        for node in GRAPH_NODES:
            st = _json(root / node / "status.json", notes)
            if st is not None:
                run.status[node] = st
        run.summary = _json(agent / "summary.json", notes)
        run.finished = run.summary is not None
        run.models = _models(learner / "models")
        # The runner's argument overrides, else what sim_bridge says it runs (the params file's
        # values: the shipped run sets the seed there, not as an argument).
        bridge = run.status.get("sim_bridge", {})
        params = {**{k: bridge[k] for k in ("task", "layout", "seed") if bridge.get(k) not in (None, "")},
                  **_node_params(root)}
        name, layout = params.get("task"), params.get("layout") or None
        run.seed = None if params.get("seed") is None else int(params["seed"])
        steps = params.get("total_steps") or ((run.summary or {}).get("config") or {}).get("total_steps")
        run.total_steps = None if steps is None else int(steps)
        learner_log, rater_log = learner / "ratings.erlr", rater / "ratings.erlr"
        requests_log = learner / "requests.erlr"
        run.rater_log = rater_log.is_file()
    else:
        run.train = read_csv(root / "train.csv", notes)
        run.eval = read_csv(root / "eval.csv", notes)
        run.reward = read_csv(root / "reward.csv", notes)
        run.summary = _json(root / "summary.json", notes)
        run.finished = run.summary is not None
        run.models = _models(root / "models")
        settings = _json(root / "run.json", notes) or {}
        if kind == "offline":  # the task it was evaluated on (with --eval-task)
            evaluation = settings.get("eval") if isinstance(settings.get("eval"), dict) else {}
            name, layout = evaluation.get("task"), evaluation.get("layout")
            seed, steps = settings.get("seed"), settings.get("steps")
        else:
            name, layout = settings.get("task"), settings.get("layout")
            seed, steps = settings.get("loop.seed"), settings.get("loop.total_steps")
        run.seed = None if seed is None else int(seed)
        run.total_steps = None if steps is None else int(steps)
        learner_log, rater_log, requests_log = root / "ratings.erlr", None, root / "requests.erlr"
    name = task or name
    if not name:  # a graph run started without --task: the task its ratings were asked about
        for log in (rater_log, learner_log):
            recs = _scan(log, []) if log is not None else []
            instruction = next((r.meta.get("instruction") for r in recs if r.meta.get("instruction")), None)
            if instruction:
                name = _task_by_instruction(str(instruction))
                break
    spec = _load_task(name, layout, notes)
    run.task = None if spec is None else spec.name
    run.layout = None if spec is None else spec.layout
    run.ratings = read_ratings(learner_log, rater_log, spec, notes, requests_log)
    if spec is not None:
        n = run.ratings[0].num_classes if run.ratings else spec.num_classes
        try:
            run.class_names = tuple(spec.class_names(n))
        except ValueError:
            run.class_names = ()
    elif name:
        notes.append(f"task {name!r} unknown here: truth classes need the task's definition")
    elif kind != "offline":
        notes.append("the run does not name its task (pass --task): truth classes left out")
    return run
