"""Task definitions: what the robot must do, how the camera sees it, how the oracle rates it.

A task lives in ``sim/tasks/<name>.yaml`` (see ``sim/README.md`` for every field). This module
reads those files into frozen :class:`TaskSpec` objects and validates them strictly: a task file
with a missing or ill-typed field is rejected with a ``ValueError`` that names the file and field.

The oracle's noiseless class for a simulator state is :meth:`TaskSpec.bin_truth`: success gives the
top class; otherwise the task progress (MetaWorld's dense reward / 10, in [0, 1]) is binned by the
task's increasing thresholds for that number of classes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, MAX_CLASSES, MIN_CLASSES, check_num_classes
from ros2_erl_vlm.paths import sim_dir as _default_sim_dir

TASKS_SUBDIR = "tasks"
#: MetaWorld raises when stepped past this many steps in one episode.
METAWORLD_MAX_PATH_LENGTH = 500

_REQUIRED = ("name", "metaworld_env", "instruction", "num_classes", "camera", "oracle")
_OPTIONAL = ("class_names", "image_size", "max_episode_steps", "appearance", "description")


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
class OracleSpec:
    """How simulator truth becomes a class: ``thresholds_by_n[n]`` has ``n - 1`` increasing
    values in (0, 1); progress below the first is class 0, at or above the last is class ``n - 1``.
    """

    thresholds_by_n: tuple[tuple[int, tuple[float, ...]], ...]

    def thresholds(self, n: int) -> tuple[float, ...]:
        """The ``n - 1`` progress thresholds used with ``n`` classes."""
        n = check_num_classes(n)
        for k, values in self.thresholds_by_n:
            if k == n:
                return values
        raise ValueError(f"no oracle thresholds for {n} classes")


@dataclass(frozen=True)
class TaskSpec:
    """One MetaWorld task as erl_vlm uses it (one ``sim/tasks/<name>.yaml`` file).

    Attributes:
        name: task id (file stem), e.g. ``"drawer-open-v3"``.
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

    def class_names(self, n: int | None = None) -> tuple[str, ...]:
        """Class names for ``n`` classes (default: the task's ``num_classes``), worst first."""
        n = check_num_classes(self.num_classes if n is None else n)
        for k, names in self.class_name_overrides:
            if k == n:
                return names
        return DEFAULT_CLASS_NAMES[n]

    def bin_truth(self, progress: float, success: bool, n: int | None = None) -> int:
        """The oracle's noiseless class in ``0..n-1`` for one simulator state.

        ``success`` gives ``n - 1``; otherwise ``progress`` (clipped to [0, 1]) counts how many of
        the ``n - 1`` thresholds it reaches.
        """
        n = check_num_classes(self.num_classes if n is None else n)
        if success:
            return n - 1
        p = float(progress)
        if not math.isfinite(p):
            raise ValueError(f"progress must be finite, got {progress!r}")
        p = min(max(p, 0.0), 1.0)
        return sum(1 for t in self.oracle.thresholds(n) if p >= t)


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


def _tasks_dir(sim_dir: str | Path | None) -> Path:
    return (Path(sim_dir) if sim_dir is not None else _default_sim_dir()) / TASKS_SUBDIR


def available_tasks(sim_dir: str | Path | None = None) -> list[str]:
    """Names of the task files in ``<sim_dir>/tasks`` (default: the installed ``sim/``), sorted."""
    d = _tasks_dir(sim_dir)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml"))


def load_task(name: str, sim_dir: str | Path | None = None) -> TaskSpec:
    """Read and validate ``<sim_dir>/tasks/<name>.yaml``.

    Raises:
        ValueError: unknown task (the message lists the known ones), unreadable YAML, or a
            missing/ill-typed field (the message names the file and the field).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"task name must be a non-empty string, got {name!r}")
    known = available_tasks(sim_dir)
    path = _tasks_dir(sim_dir) / f"{name}.yaml"
    if name not in known or not path.is_file():
        raise ValueError(
            f"unknown task {name!r}; known tasks: {', '.join(known) or '(none)'} "
            f"(looked in {path.parent})"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    return _parse_task(raw, path)


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
    f.reject_unknown(("thresholds",))
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
    missing = [n for n in range(MIN_CLASSES, MAX_CLASSES + 1) if n not in by_n]
    if missing:
        raise t.fail(str(missing[0]), f"is missing (need thresholds for every n in "
                     f"{MIN_CLASSES}..{MAX_CLASSES})")
    return OracleSpec(thresholds_by_n=tuple(sorted(by_n.items())))


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


def _parse_task(raw: Any, path: Path) -> TaskSpec:
    f = _Fields(raw, path)
    f.reject_unknown(_REQUIRED + _OPTIONAL)
    name = f.str_("name")
    if name != path.stem:
        raise f.fail("name", f"must match the file name {path.stem!r}, got {name!r}")
    num_classes = f.int_("num_classes", MIN_CLASSES, MAX_CLASSES)
    return TaskSpec(
        name=name,
        metaworld_env=f.str_("metaworld_env"),
        instruction=f.str_("instruction"),
        num_classes=num_classes,
        camera=_parse_camera(f.sub("camera")),
        oracle=_parse_oracle(f.sub("oracle")),
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
    )
