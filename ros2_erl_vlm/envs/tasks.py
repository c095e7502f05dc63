"""Task definitions: what the robot must do, how the camera sees it, how the oracle rates it.

A task is either hand-written, ``sim/tasks/<name>.yaml`` (see ``sim/README.md`` for every field),
or, for any other MetaWorld v3 environment, built from the generic definition ``sim/generic.yaml``
(a wide default camera, an instruction derived from the name, 3 classes on dense reward / 10).
This module reads those files into frozen :class:`TaskSpec` objects and validates them strictly: a
file with a missing or ill-typed field is rejected with a ``ValueError`` that names the file and
field.

A task has one or more *layouts* (where MetaWorld puts the hand, object and goal at reset):
``stock`` is MetaWorld v3's own randomised layout; the paper's three tasks also have ``paper``, the
reference code's fixed layout. ``load_task(name)`` selects :data:`DEFAULT_LAYOUT` where the task
has it (else ``stock``); ``load_task(name, layout=...)`` selects another.

The oracle's noiseless class for a simulator state is :meth:`TaskSpec.bin_truth`: success gives the
top class; otherwise the task progress (by default MetaWorld's dense reward / 10, in [0, 1]) is
binned by the task's increasing thresholds for that number of classes.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, MAX_CLASSES, MIN_CLASSES, check_num_classes
from ros2_erl_vlm.paths import sim_dir as _default_sim_dir

TASKS_SUBDIR = "tasks"
#: The definition of every MetaWorld v3 task without a file in ``tasks/``.
GENERIC_FILE = "generic.yaml"
#: MetaWorld raises when stepped past this many steps in one episode.
METAWORLD_MAX_PATH_LENGTH = 500

#: MetaWorld v3's own layout: hand at its v3 start, object and goal randomised at every reset.
STOCK_LAYOUT = "stock"
#: The reference code's layout for the paper's tasks (object and goal fixed, hand next to them).
PAPER_LAYOUT = "paper"
#: The layout ``load_task(name)`` / ``make_env(name)`` select when none is named, for every task
#: that defines it (a task without it gets ``stock``): the paper's, as the benchmark runs.
DEFAULT_LAYOUT = PAPER_LAYOUT

#: ``oracle.progress`` kinds: MetaWorld's dense reward / 10 (default), the grasp-and-lift stages,
#: or what a camera shows of a drawer: its opening as a fraction of its full travel.
PROGRESS_DENSE_REWARD = "dense_reward"
PROGRESS_GRASP_LIFT = "grasp_lift"
PROGRESS_DRAWER_OPENING = "drawer_opening"
#: Progress of a "grasped and lifted" state under ``progress: grasp_lift`` (0: neither, 1: success).
GRASP_LIFT_PROGRESS = 0.5

#: Every MetaWorld v3 environment of metaworld 3.1.1 (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``),
#: kept here so that task names are checked without importing MetaWorld (and MuJoCo, whose GL
#: backend is settled at import). A test checks it against the installed MetaWorld.
METAWORLD_V3_TASKS: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3",
    "door-lock-v3", "door-open-v3", "door-unlock-v3", "drawer-close-v3", "drawer-open-v3",
    "faucet-close-v3", "faucet-open-v3", "hammer-v3", "hand-insert-v3", "handle-press-side-v3",
    "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "pick-out-of-hole-v3", "pick-place-v3",
    "pick-place-wall-v3", "plate-slide-back-side-v3", "plate-slide-back-v3", "plate-slide-side-v3",
    "plate-slide-v3", "push-back-v3", "push-v3", "push-wall-v3", "reach-v3", "reach-wall-v3",
    "shelf-place-v3", "soccer-v3", "stick-pull-v3", "stick-push-v3", "sweep-into-v3", "sweep-v3",
    "window-close-v3", "window-open-v3",
)

_REQUIRED = ("name", "metaworld_env", "instruction", "num_classes", "camera", "oracle")
_OPTIONAL = ("class_names", "image_size", "max_episode_steps", "appearance", "layouts", "description")
#: Fields of ``sim/generic.yaml``: a task file without name/metaworld_env/instruction (they come
#: from the task name), plus the ``instructions`` table for names the rule cannot turn into words.
_GENERIC_FIELDS = ("num_classes", "camera", "oracle", "class_names", "image_size",
                   "max_episode_steps", "appearance", "description", "instructions")
_LAYOUT_FIELDS = ("hand_init_pos", "obj_init_pos", "goal_pos", "success_radius", "goal_observable",
                  "description")
_LAYOUT_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

#: Verbs the instruction rule recognises as the last word of a name ("window-open" -> "open the
#: window"), and the name suffixes it turns into words.
_VERBS = ("open", "close", "press", "pull", "push", "turn", "lock", "unlock", "slide", "insert",
          "unplug")
_QUALIFIERS = {"back": "back", "topdown": "from the top", "side": "from the side",
               "wall": "past the wall"}


@dataclass(frozen=True)
class CameraSpec:
    """A fixed free camera (MuJoCo ``mjvCamera`` of type free): never rolls, so frames are upright.

    Attributes:
        lookat: world point the camera looks at (m).
        distance: distance from ``lookat`` to the camera (m).
        azimuth: horizontal angle of the viewing direction (deg, MuJoCo convention: 0 looks
            along +x, 90 along +y).
        elevation: vertical angle of the viewing direction (deg, negative looks down).
        fovy: vertical field of view (deg).
    """

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float
    fovy: float = 45.0


@dataclass(frozen=True)
class AppearanceSpec:
    """Cosmetic changes to the rendered scene (physics untouched).

    Attributes:
        hide_sites: names of MuJoCo sites made invisible (e.g. MetaWorld's goal marker, which a
            real scene would not show).
        geom_rgba: ``(geom name, (r, g, b, a))`` pairs recoloured (material removed), e.g. the
            sweep-into cube made green as in the paper's instruction.
    """

    hide_sites: tuple[str, ...] = ()
    geom_rgba: tuple[tuple[str, tuple[float, float, float, float]], ...] = ()


@dataclass(frozen=True)
class GraspLiftSpec:
    """When the main object counts as grasped and lifted (``oracle.progress: grasp_lift``).

    Attributes:
        min_lift: the object's centre is at least this far (m) above its height at reset.
        max_gripper_distance: and either both gripper pads touch it (MetaWorld's
            ``touching_main_object``) or the gripper centre (``tcp_center``) is at most this far
            (m) from the object's centre.
    """

    min_lift: float = 0.025
    max_gripper_distance: float = 0.03


@dataclass(frozen=True)
class OracleSpec:
    """How simulator truth becomes a class.

    ``thresholds_by_n[n]`` has ``n - 1`` increasing values in (0, 1); progress below the first is
    class 0, at or above the last is class ``n - 1``. Only the class counts listed are supported.

    ``progress`` says what progress is: ``"dense_reward"`` (MetaWorld's dense reward / 10, clipped
    to [0, 1]) or ``"grasp_lift"`` (1 on success, :data:`GRASP_LIFT_PROGRESS` while the object is
    grasped and lifted as ``grasp_lift`` defines, 0 otherwise).
    """

    thresholds_by_n: tuple[tuple[int, tuple[float, ...]], ...]
    progress: str = PROGRESS_DENSE_REWARD
    grasp_lift: GraspLiftSpec | None = None

    @property
    def class_counts(self) -> tuple[int, ...]:
        """The class counts this oracle has thresholds for, increasing."""
        return tuple(k for k, _ in self.thresholds_by_n)

    def thresholds(self, n: int) -> tuple[float, ...]:
        """The ``n - 1`` progress thresholds used with ``n`` classes."""
        n = check_num_classes(n)
        for k, values in self.thresholds_by_n:
            if k == n:
                return values
        raise ValueError(f"no oracle thresholds for {n} classes (defined for "
                         f"{_counts(self.class_counts)} classes)")


@dataclass(frozen=True)
class LayoutSpec:
    """Where MetaWorld puts things at reset; a field left ``None`` keeps MetaWorld's v3 behaviour.

    Attributes:
        hand_init_pos: where the hand (end effector) starts (m), MetaWorld's ``hand_init_pos``.
        obj_init_pos: the object's fixed start (m): the first three values MetaWorld draws at reset
            (``_random_reset_space``) are pinned to it.
        goal_pos: the goal's fixed position (m): the next three values drawn at reset are pinned.
        success_radius: success when MetaWorld's ``obj_to_target`` is at most this (m), replacing
            the task's own radius (MetaWorld's dense reward is unchanged).
        goal_observable: whether the goal position is in the last 3 values of the observation
            (``False``: zeros, MetaWorld's ``_partially_observable = True``).
        description: free text.
    """

    hand_init_pos: tuple[float, float, float] | None = None
    obj_init_pos: tuple[float, float, float] | None = None
    goal_pos: tuple[float, float, float] | None = None
    success_radius: float | None = None
    goal_observable: bool = True
    description: str = ""

    @property
    def pins_positions(self) -> bool:
        """Whether the layout pins object or goal positions drawn at reset."""
        return self.obj_init_pos is not None or self.goal_pos is not None


_STOCK = ((STOCK_LAYOUT, LayoutSpec()),)


@dataclass(frozen=True)
class TaskSpec:
    """One MetaWorld task as erl_vlm uses it (a ``sim/tasks/<name>.yaml`` file or the generic one).

    Attributes:
        name: task id (file stem or MetaWorld name), e.g. ``"drawer-open-v3"``.
        metaworld_env: MetaWorld v3 environment name.
        instruction: the task in words, as given to the VLM.
        num_classes: default number of rating classes for this task.
        camera: the task camera.
        oracle: thresholds for binning simulator truth.
        image_size: side of the square rendered frame (pixels).
        max_episode_steps: episode length (at most 500, MetaWorld's limit).
        appearance: cosmetic scene changes.
        class_name_overrides: ``(n, names)`` pairs replacing the default class names.
        description: free text.
        source: the file the spec was read from (for messages).
        layout: the selected layout's name (see :attr:`layout_spec`).
        layouts: ``(name, LayoutSpec)`` of every layout the task has; ``stock`` always.
        generic: built from ``sim/generic.yaml`` (no hand-written file).
    """

    name: str
    metaworld_env: str
    instruction: str
    num_classes: int
    camera: CameraSpec
    oracle: OracleSpec
    image_size: int = 224
    max_episode_steps: int = METAWORLD_MAX_PATH_LENGTH
    appearance: AppearanceSpec = field(default_factory=AppearanceSpec)
    class_name_overrides: tuple[tuple[int, tuple[str, ...]], ...] = ()
    description: str = ""
    source: str = ""
    layout: str = STOCK_LAYOUT
    layouts: tuple[tuple[str, LayoutSpec], ...] = _STOCK
    generic: bool = False

    @property
    def layout_names(self) -> tuple[str, ...]:
        """Names of the task's layouts, in file order (``stock`` first)."""
        return tuple(k for k, _ in self.layouts)

    @property
    def layout_spec(self) -> LayoutSpec:
        """The selected layout."""
        return dict(self.layouts)[self.layout]

    def with_layout(self, layout: str | None) -> TaskSpec:
        """This task with ``layout`` selected (``None``: the default, see :data:`DEFAULT_LAYOUT`).

        Raises:
            ValueError: the task has no such layout (the message names the task, the layout and
                the layouts it has).
        """
        if layout is None:
            layout = default_layout(self.layout_names)
        if layout not in self.layout_names:
            raise ValueError(
                f"task {self.name!r} has no layout {layout!r}; its layouts: "
                f"{', '.join(self.layout_names)} ({self.source})"
            )
        return self if layout == self.layout else replace(self, layout=layout)

    @property
    def class_counts(self) -> tuple[int, ...]:
        """The class counts the task's definition supports (those with oracle thresholds)."""
        return self.oracle.class_counts

    def check_class_count(self, n: int) -> int:
        """Return ``n`` if the task's definition supports ``n`` classes, else ``ValueError``
        naming the task and the counts it supports."""
        n = check_num_classes(n)
        if n not in self.class_counts:
            raise ValueError(
                f"task {self.name!r} cannot be rated with {n} classes: its definition defines "
                f"{_counts(self.class_counts)} classes ({self.source})"
            )
        return n

    def class_names(self, n: int | None = None) -> tuple[str, ...]:
        """Class names for ``n`` classes (default: the task's ``num_classes``), worst first."""
        n = self.check_class_count(self.num_classes if n is None else n)
        for k, names in self.class_name_overrides:
            if k == n:
                return names
        return DEFAULT_CLASS_NAMES[n]

    def bin_truth(self, progress: float, success: bool, n: int | None = None) -> int:
        """The oracle's noiseless class in ``0..n-1`` for one simulator state.

        ``success`` gives ``n - 1``; otherwise ``progress`` (clipped to [0, 1]) counts how many of
        the ``n - 1`` thresholds it reaches.
        """
        n = self.check_class_count(self.num_classes if n is None else n)
        if success:
            return n - 1
        p = float(progress)
        if not math.isfinite(p):
            raise ValueError(f"progress must be finite, got {progress!r}")
        p = min(max(p, 0.0), 1.0)
        return sum(1 for t in self.oracle.thresholds(n) if p >= t)


def _counts(items: Sequence[Any]) -> str:
    """``"a, b or c"``."""
    words = [str(x) for x in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def default_layout(layouts: Sequence[str]) -> str:
    """The layout selected when none is named: :data:`DEFAULT_LAYOUT` if among ``layouts``,
    else ``stock``."""
    return DEFAULT_LAYOUT if DEFAULT_LAYOUT in layouts else STOCK_LAYOUT


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


def _tasks_dir(sim_dir: str | Path | None) -> Path:
    return (Path(sim_dir) if sim_dir is not None else _default_sim_dir()) / TASKS_SUBDIR


def _generic_path(sim_dir: str | Path | None) -> Path:
    return (Path(sim_dir) if sim_dir is not None else _default_sim_dir()) / GENERIC_FILE


def available_tasks(sim_dir: str | Path | None = None) -> list[str]:
    """Names of the hand-written task files in ``<sim_dir>/tasks`` (default: the installed
    ``sim/``), sorted. :func:`all_tasks` adds every MetaWorld v3 task."""
    d = _tasks_dir(sim_dir)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml"))


def all_tasks(sim_dir: str | Path | None = None) -> list[str]:
    """Every task :func:`load_task` accepts: the hand-written files and every MetaWorld v3
    environment (built from ``sim/generic.yaml`` when it has no file), sorted."""
    return sorted(set(available_tasks(sim_dir)) | set(METAWORLD_V3_TASKS))


def load_task(name: str, sim_dir: str | Path | None = None, layout: str | None = None) -> TaskSpec:
    """Read and validate the definition of task ``name`` with ``layout`` selected.

    ``<sim_dir>/tasks/<name>.yaml`` if it exists; otherwise, for a MetaWorld v3 environment name,
    the generic definition ``<sim_dir>/generic.yaml``. ``layout=None`` selects the default
    (:data:`DEFAULT_LAYOUT` where the task has it, else ``stock``).

    Raises:
        ValueError: unknown task (the message suggests the closest known names and lists the
            hand-written ones), unknown layout for the task, unreadable YAML, or a
            missing/ill-typed field (the message names the file and the field).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"task name must be a non-empty string, got {name!r}")
    known = available_tasks(sim_dir)
    path = _tasks_dir(sim_dir) / f"{name}.yaml"
    if name in known and path.is_file():
        spec = _parse_task(_read_yaml(path), path)
    elif name in METAWORLD_V3_TASKS:
        spec = _generic_task(name, sim_dir)
    else:
        close = difflib.get_close_matches(name, all_tasks(sim_dir), n=3, cutoff=0.6)
        hint = f" (did you mean {_counts([repr(c) for c in close])}?)" if close else ""
        raise ValueError(
            f"unknown task {name!r}{hint}; known tasks: the files in {path.parent} "
            f"({', '.join(known) or 'none'}) and every MetaWorld v3 environment "
            f"({', '.join(METAWORLD_V3_TASKS)})"
        )
    return spec.with_layout(layout)


def generic_instruction(name: str, table: Mapping[str, str] | None = None) -> str:
    """The instruction of a MetaWorld task without a file: ``table[name]`` if given, else from
    the name: the last word a verb, the words before it the object, suffixes as words
    (``window-open-v3`` -> "open the window", ``peg-insert-side-v3`` -> "insert the peg from
    the side").

    Raises:
        ValueError: the name does not follow that pattern and ``table`` has no entry for it.
    """
    if table and name in table:
        return table[name]
    words = re.sub(r"-v\d+$", "", name).split("-")
    quals: list[str] = []
    while words and words[-1] in _QUALIFIERS:
        quals.insert(0, words.pop())
    if len(words) < 2 or words[-1] not in _VERBS:
        raise ValueError(f"no instruction for task {name!r}: add it to the 'instructions' table "
                         f"of {GENERIC_FILE}")
    verb, obj = words[-1], " ".join(words[:-1])
    return " ".join([verb, "the", obj, *(_QUALIFIERS[q] for q in quals)])


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc


def _generic_task(name: str, sim_dir: str | Path | None) -> TaskSpec:
    path = _generic_path(sim_dir)
    if not path.is_file():
        raise ValueError(f"task {name!r} has no file in {path.parent / TASKS_SUBDIR} and the "
                         f"generic definition {path} is missing")
    raw = _read_yaml(path)
    f = _Fields(raw, path)
    f.reject_unknown(_GENERIC_FIELDS)
    table: dict[str, str] = {}
    if f.has("instructions"):
        t = f.sub("instructions")
        table = {str(k): t.str_(str(k)) for k in t.data}
    data = {k: v for k, v in raw.items() if k != "instructions"}
    data.update(name=name, metaworld_env=name, instruction=generic_instruction(name, table))
    return _parse_task(data, path, generic=True)


class _Fields:
    """Typed accessors over one YAML mapping, raising ``ValueError`` naming file and field."""

    def __init__(self, data: Any, path: Path, prefix: str = "") -> None:
        self.path = path
        self.prefix = prefix
        if not isinstance(data, Mapping):
            where = f"field '{prefix.rstrip('.')}'" if prefix else "top level"
            raise ValueError(f"{path}: {where} must be a mapping, got {type(data).__name__}")
        self.data = data

    def fail(self, key: str, msg: str) -> ValueError:
        return ValueError(f"{self.path}: field '{self.prefix}{key}' {msg}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def get(self, key: str) -> Any:
        if key not in self.data or self.data[key] is None:
            raise self.fail(key, "is missing")
        return self.data[key]

    def str_(self, key: str) -> str:
        v = self.get(key)
        if not isinstance(v, str) or not v.strip():
            raise self.fail(key, f"must be a non-empty string, got {v!r}")
        return v.strip()

    def int_(self, key: str, lo: int, hi: int) -> int:
        v = self.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"must be an integer, got {v!r}")
        if not lo <= v <= hi:
            raise self.fail(key, f"must be in [{lo}, {hi}], got {v}")
        return v

    def float_(self, key: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        return _as_float(self.get(key), lambda m: self.fail(key, m), lo, hi)

    def vec(self, key: str, size: int) -> tuple[float, ...]:
        v = self.get(key)
        if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != size:
            raise self.fail(key, f"must be a list of {size} numbers, got {v!r}")
        return tuple(_as_float(x, lambda m: self.fail(key, m)) for x in v)

    def bool_(self, key: str) -> bool:
        v = self.get(key)
        if not isinstance(v, bool):
            raise self.fail(key, f"must be true or false, got {v!r}")
        return v

    def sub(self, key: str) -> _Fields:
        return _Fields(self.get(key), self.path, f"{self.prefix}{key}.")

    def reject_unknown(self, allowed: Sequence[str]) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.fail(str(key), f"is not a known field (known: {', '.join(allowed)})")


def _as_float(v: Any, fail: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise fail(f"must be a number, got {v!r}")
    x = float(v)
    if not math.isfinite(x):
        raise fail(f"must be finite, got {v!r}")
    if not lo <= x <= hi:
        raise fail(f"must be in [{lo}, {hi}], got {x}")
    return x


def _parse_class_count(f: _Fields, key: Any) -> int:
    try:
        n = int(key)
        if str(n) != str(key).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise f.fail(str(key), "must be a class count (integer 2..5)") from None
    if not MIN_CLASSES <= n <= MAX_CLASSES:
        raise f.fail(str(key), f"class count must be in [{MIN_CLASSES}, {MAX_CLASSES}]")
    return n


def _parse_camera(f: _Fields) -> CameraSpec:
    f.reject_unknown(("lookat", "distance", "azimuth", "elevation", "fovy"))
    lookat = f.vec("lookat", 3)
    return CameraSpec(
        lookat=(lookat[0], lookat[1], lookat[2]),
        distance=f.float_("distance", 1e-3, 100.0),
        azimuth=f.float_("azimuth", -360.0, 360.0),
        elevation=f.float_("elevation", -89.9, 89.9),
        fovy=f.float_("fovy", 1.0, 170.0) if f.has("fovy") else 45.0,
    )


def _parse_appearance(f: _Fields) -> AppearanceSpec:
    f.reject_unknown(("hide_sites", "geom_rgba"))
    hide: tuple[str, ...] = ()
    if f.has("hide_sites"):
        v = f.get("hide_sites")
        if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
            raise f.fail("hide_sites", f"must be a list of site names, got {v!r}")
        hide = tuple(v)
    rgba: list[tuple[str, tuple[float, float, float, float]]] = []
    if f.has("geom_rgba"):
        g = f.sub("geom_rgba")
        for geom in g.data:
            c = g.vec(str(geom), 4)
            if not all(0.0 <= x <= 1.0 for x in c):
                raise g.fail(str(geom), f"rgba values must be in [0, 1], got {list(c)}")
            rgba.append((str(geom), (c[0], c[1], c[2], c[3])))
    return AppearanceSpec(hide_sites=hide, geom_rgba=tuple(rgba))


def _parse_oracle(f: _Fields) -> OracleSpec:
    f.reject_unknown(("progress", "grasp_lift", "thresholds"))
    progress = f.str_("progress") if f.has("progress") else PROGRESS_DENSE_REWARD
    kinds = (PROGRESS_DENSE_REWARD, PROGRESS_GRASP_LIFT, PROGRESS_DRAWER_OPENING)
    if progress not in kinds:
        raise f.fail("progress", f"must be one of {', '.join(kinds)}, got {progress!r}")
    grasp_lift = None
    if progress == PROGRESS_GRASP_LIFT:
        grasp_lift = GraspLiftSpec()
        if f.has("grasp_lift"):
            g = f.sub("grasp_lift")
            g.reject_unknown(("min_lift", "max_gripper_distance"))
            grasp_lift = GraspLiftSpec(
                min_lift=g.float_("min_lift", 1e-3, 1.0) if g.has("min_lift") else grasp_lift.min_lift,
                max_gripper_distance=(g.float_("max_gripper_distance", 1e-3, 1.0)
                                      if g.has("max_gripper_distance")
                                      else grasp_lift.max_gripper_distance),
            )
    elif f.has("grasp_lift"):
        raise f.fail("grasp_lift", f"needs progress: {PROGRESS_GRASP_LIFT}")
    t = f.sub("thresholds")
    by_n: dict[int, tuple[float, ...]] = {}
    for key, values in t.data.items():
        n = _parse_class_count(t, key)
        if not isinstance(values, list) or len(values) != n - 1:
            raise t.fail(str(key), f"must be a list of {n - 1} thresholds, got {values!r}")
        xs = tuple(_as_float(x, lambda m, k=key: t.fail(str(k), m)) for x in values)
        if not all(0.0 < x < 1.0 for x in xs):
            raise t.fail(str(key), f"thresholds must lie in (0, 1), got {list(xs)}")
        if any(b <= a for a, b in itertools.pairwise(xs)):
            raise t.fail(str(key), f"thresholds must be strictly increasing, got {list(xs)}")
        by_n[n] = xs
    if not by_n:
        raise f.fail("thresholds", "must give thresholds for at least one class count")
    return OracleSpec(thresholds_by_n=tuple(sorted(by_n.items())), progress=progress,
                      grasp_lift=grasp_lift)


def _parse_layouts(f: _Fields) -> tuple[tuple[str, LayoutSpec], ...]:
    out: dict[str, LayoutSpec] = {STOCK_LAYOUT: LayoutSpec()}
    for key in f.data:
        name = str(key)
        if not _LAYOUT_NAME.match(name):
            raise f.fail(name, "is not a valid layout name (lower-case letters, digits, - and _)")
        lay = _Fields({} if f.data[key] is None else f.data[key], f.path, f"{f.prefix}{name}.")
        if name == STOCK_LAYOUT:
            lay.reject_unknown(("description",))  # MetaWorld's own layout: nothing to change
        else:
            lay.reject_unknown(_LAYOUT_FIELDS)

        def vec3(k: str, lay: _Fields = lay) -> tuple[float, float, float] | None:
            if not lay.has(k):
                return None
            x, y, z = lay.vec(k, 3)
            return (x, y, z)

        out[name] = LayoutSpec(
            hand_init_pos=vec3("hand_init_pos"),
            obj_init_pos=vec3("obj_init_pos"),
            goal_pos=vec3("goal_pos"),
            success_radius=lay.float_("success_radius", 1e-3, 1.0) if lay.has("success_radius")
            else None,
            goal_observable=lay.bool_("goal_observable") if lay.has("goal_observable") else True,
            description=lay.str_("description") if lay.has("description") else "",
        )
    return tuple(out.items())


def _parse_class_names(f: _Fields) -> tuple[tuple[int, tuple[str, ...]], ...]:
    out: dict[int, tuple[str, ...]] = {}
    for key, names in f.data.items():
        n = _parse_class_count(f, key)
        if (
            not isinstance(names, list) or len(names) != n
            or not all(isinstance(s, str) and s.strip() for s in names)
        ):
            raise f.fail(str(key), f"must be a list of {n} non-empty names, got {names!r}")
        clean = tuple(s.strip() for s in names)
        if len({s.lower() for s in clean}) != n:
            raise f.fail(str(key), f"class names must be distinct, got {list(clean)}")
        out[n] = clean
    return tuple(sorted(out.items()))


def _parse_task(raw: Any, path: Path, generic: bool = False) -> TaskSpec:
    f = _Fields(raw, path)
    f.reject_unknown(_REQUIRED + _OPTIONAL)
    name = f.str_("name")
    if not generic and name != path.stem:
        raise f.fail("name", f"must match the file name {path.stem!r}, got {name!r}")
    num_classes = f.int_("num_classes", MIN_CLASSES, MAX_CLASSES)
    oracle = _parse_oracle(f.sub("oracle"))
    if num_classes not in oracle.class_counts:
        raise f.fail("oracle.thresholds", f"has no thresholds for num_classes = {num_classes}")
    layouts = _parse_layouts(f.sub("layouts")) if f.has("layouts") else _STOCK
    return TaskSpec(
        name=name,
        metaworld_env=f.str_("metaworld_env"),
        instruction=f.str_("instruction"),
        num_classes=num_classes,
        camera=_parse_camera(f.sub("camera")),
        oracle=oracle,
        image_size=f.int_("image_size", 16, 2048) if f.has("image_size") else 224,
        max_episode_steps=(
            f.int_("max_episode_steps", 1, METAWORLD_MAX_PATH_LENGTH)
            if f.has("max_episode_steps") else METAWORLD_MAX_PATH_LENGTH
        ),
        appearance=_parse_appearance(f.sub("appearance")) if f.has("appearance")
        else AppearanceSpec(),
        class_name_overrides=_parse_class_names(f.sub("class_names")) if f.has("class_names")
        else (),
        description=f.str_("description") if f.has("description") else "",
        source=str(path),
        layout=default_layout([k for k, _ in layouts]),
        layouts=layouts,
        generic=generic,
    )
