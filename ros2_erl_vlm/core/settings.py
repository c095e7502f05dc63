"""Declared settings: the one statement of each config field's range, and the settings helpers.

The config dataclasses (:class:`~ros2_erl_vlm.core.config.LoopConfig`,
:class:`~ros2_erl_vlm.core.rl.sac.SACConfig`,
:class:`~ros2_erl_vlm.core.reward.reward_model.RewardModelConfig`,
:class:`~ros2_erl_vlm.raters.oracle.OracleConfig`) declare every numeric field's valid range and
every string field's choices with :func:`setting`. Their ``validate()`` checks the declaration
(:func:`check_declared`) and the node parameters (``ros/node_params.py``) take their default, type
and range from the same field (:func:`declared`), so the in-process runner and the node graph
accept and refuse the same values.

Also here, one implementation each, used by both starters: dotted overrides of a dataclass tree
(:func:`apply_overrides`, from ``--set a.b=c`` via :func:`parse_assignments`, a ``--config`` file
or node parameters), nested mappings to dotted names (:func:`flatten`, params files) and reading
a YAML settings file (:func:`read_settings_file`). ROS-free and torch-free.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BOUNDS_KEY = "bounds"


def fmt_number(v: float) -> str:
    """``3`` for integral values, else the shortest ``%g`` form."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


@dataclass(frozen=True)
class Bounds:
    """Valid values of one setting: a number range (each edge closed unless ``*_open``; None:
    unbounded) and/or allowed strings."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def is_range(self) -> bool:
        """Whether a number range is declared."""
        return self.low is not None or self.high is not None

    def interval(self) -> str:
        """``[0, 1)``-style text of the range."""
        lo = "(-inf" if self.low is None else ("(" if self.low_open else "[") + fmt_number(self.low)
        hi = "inf)" if self.high is None else fmt_number(self.high) + (")" if self.high_open else "]")
        return f"{lo}, {hi}"

    def text(self) -> str:
        """Human-readable limits (``one of a, b``; ``in [0, 1)``)."""
        parts = []
        if self.choices:
            parts.append("one of " + ", ".join(self.choices))
        if self.is_range:
            parts.append(f"in {self.interval()}")
        return "; ".join(parts)

    def in_range(self, v: float) -> bool:
        """Whether the finite number ``v`` lies in the range."""
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return not (self.high is not None and (v > self.high or (self.high_open and v == self.high)))

    def problem(self, value: Any, integer: bool = False) -> str | None:
        """Why ``value`` is not allowed (``must be in [0, 1), got 1.0``), or None when it is."""
        if self.choices is not None and value not in self.choices:
            return f"must be one of {self.choices}, got {value!r}"
        if not self.is_range:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:  # numpy numbers
                value = value.item()
            except AttributeError:
                return f"must be a number, got {value!r}"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, got {value!r}"
        if not math.isfinite(value):
            return f"must be a finite number in {self.interval()}, got {value!r}"
        if integer and not float(value).is_integer():
            return f"must be an integer, got {value!r}"
        if not self.in_range(value):
            return f"must be in {self.interval()}, got {value!r}"
        return None


def setting(default: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False,
            choices: Iterable[str] | None = None) -> Any:
    """A dataclass field with its default and declared valid values (see :class:`Bounds`)."""
    bounds = Bounds(low, high, low_open, high_open, None if choices is None else tuple(choices))
    return field(default=default, metadata={BOUNDS_KEY: bounds})


def declared(owner: Any, name: str) -> Bounds | None:
    """The declared valid values of field ``name`` of dataclass ``owner`` (class or instance)."""
    for f in dataclasses.fields(owner):
        if f.name == name:
            return f.metadata.get(BOUNDS_KEY)
    raise KeyError(f"{getattr(owner, '__name__', type(owner).__name__)} has no field {name!r}")


def field_default(owner: type, name: str) -> Any:
    """The default value of field ``name`` of dataclass ``owner``."""
    for f in dataclasses.fields(owner):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{owner.__name__}.{name} has no default")
    raise KeyError(f"{owner.__name__} has no field {name!r}")


def _is_int_field(f: dataclasses.Field[Any]) -> bool:
    return f.type in ("int", int) or (isinstance(f.default, int) and not isinstance(f.default, bool))


def check_declared(obj: Any, prefix: str = "") -> None:
    """Raise ``ValueError`` (``<prefix><field> must be in [0, 1), got 1.0``) for the first field
    of dataclass ``obj`` outside its declared values (nested dataclasses are not visited)."""
    for f in dataclasses.fields(obj):
        bounds = f.metadata.get(BOUNDS_KEY)
        if bounds is None:
            continue
        problem = bounds.problem(getattr(obj, f.name), integer=_is_int_field(f))
        if problem:
            raise ValueError(f"{prefix}{f.name} {problem}")


# -- dotted overrides ------------------------------------------------------------------------------
def _typed(current: Any, value: Any, key: str, where: str, error: type[Exception]) -> Any:
    """``value`` checked against the type of the field's current value (int -> float allowed)."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise error(f"{where}: {key} must be true/false, got {value!r}")
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise error(f"{where}: {key} must be an integer, got {value!r}")
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{where}: {key} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(current, str) and not isinstance(value, str):
        raise error(f"{where}: {key} must be a string, got {value!r}")
    return value


def apply_overrides(obj: Any, values: Mapping[str, Any], where: str,
                    error: type[Exception] = ValueError, prefix: str = "") -> Any:
    """Set fields of the dataclass tree ``obj`` from ``values`` and return ``obj``.

    Keys are dotted paths (``sac.batch_size``); a mapping given for a dataclass field sets its
    fields (``sac: {batch_size: 256}``). Values must match the field's type (ints are accepted for
    floats). An unknown key or a wrong type raises ``error`` naming ``where`` and the key; ranges
    are left to ``validate()``.
    """
    for key, value in values.items():
        full = f"{prefix}{key}"
        target = obj
        parts = str(key).split(".")
        for part in parts[:-1]:
            sub = getattr(target, part, None)
            if not dataclasses.is_dataclass(sub) or isinstance(sub, type):
                raise error(f"{where}: unknown setting {full!r}")
            target = sub
        name = parts[-1]
        names = {f.name for f in dataclasses.fields(target)}
        if name not in names:
            raise error(f"{where}: unknown setting {full!r} (known: {', '.join(sorted(names))})")
        current = getattr(target, name)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            apply_overrides(current, value, where, error, prefix=f"{full}.")
            continue
        setattr(target, name, _typed(current, value, full, where, error))
    return obj


def leaf_fields(obj: Any, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field[Any]]]:
    """``{dotted name: (owning dataclass instance, field)}`` of every non-dataclass field of the
    tree ``obj``."""
    out: dict[str, tuple[Any, dataclasses.Field[Any]]] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(leaf_fields(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (obj, f)
    return out


def parse_value(raw: str) -> Any:
    """A command-line value as YAML (``3`` -> 3, ``true`` -> True); unparsable text stays a string."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def parse_assignments(items: Iterable[str], where: str,
                      error: type[Exception] = ValueError) -> dict[str, Any]:
    """``["a.b=3", ...]`` -> ``{"a.b": 3, ...}`` (values parsed by :func:`parse_value`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise error(f"{where} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(raw)
    return out


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (ROS parameter names from nested YAML)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


# -- files -----------------------------------------------------------------------------------------
def read_settings_file(path: str | Path, what: str, error: type[Exception] = ValueError,
                       empty_ok: bool = True, expected: str = "a mapping") -> dict[str, Any]:
    """The mapping in the YAML file ``path``.

    Raises ``error`` with ``cannot read <what> <path>: <reason>`` when the file is missing or not
    YAML, and ``<what> <path>: expected <expected>`` when it holds something else than a mapping
    (an empty file is ``{}`` when ``empty_ok``).
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"cannot read {what} {p}: {exc}") from exc
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise error(f"{what} {p}: expected {expected}")
    return data


def settings_diff(saved: Mapping[str, Any], now: Mapping[str, Any], may_change: frozenset[str] = frozenset(),
                  defaults: Mapping[str, Any] | None = None) -> list[str]:
    """``"key: saved (now value)"`` for every flat setting that differs between what a run was
    started with and what a resume asks for, except ``may_change``; a key added after the run
    started counts as unchanged while it keeps its value in ``defaults``."""
    defaults = defaults or {}
    return [f"{k}: {saved.get(k)!r} (now {now.get(k)!r})" for k in sorted(set(saved) | set(now))
            if k not in may_change and saved.get(k) != now.get(k)
            and not (k not in saved and k in defaults and now.get(k) == defaults[k])]
