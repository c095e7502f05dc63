"""Declared, described, range-checked node parameters.

A node lists its parameters as :class:`ParamSpec` rows (name, default, description, range or
choices); a row for a field of a config dataclass comes from :meth:`ParamSpec.from_field` (the
field's default, type and declared range, see :mod:`ros2_erl_vlm.core.settings`), so a node and
the in-process runner accept the same values. :func:`declare_parameters` declares them on the
node with a ``ParameterDescriptor`` (description, integer/floating-point range, allowed values in
``additional_constraints``), reads
the values (defaults < params file < command line), validates every one and raises
:class:`ParamError` naming the first bad parameter, so the node can exit 1 with a readable message.
A parameter given to the node that no node of the graph declares (a typo in the params file) is an
error too. :meth:`ParamSpec.check` is ROS-free (the runner validates a params file before starting
anything).
"""

from __future__ import annotations

import math
import sys
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ros2_erl_vlm.core.settings import Bounds, declared, field_default

#: Parameters every rclpy node has or may be given.
ROS_BUILTIN_PARAMS = ("use_sim_time", "start_type_description_service")
ROS_BUILTIN_PREFIXES = ("qos_overrides.",)

_INT_MAX = 2**62
_FLOAT_MAX = 1e300


class ParamError(ValueError):
    """A parameter has a bad value (the message names it)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (its type fixes the parameter's type), description, limits.

    ``low``/``high`` bound numbers (inclusive unless ``low_open``/``high_open``); ``choices``
    lists allowed strings; ``length`` fixes the length of list parameters.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    length: int | None = None
    low_open: bool = False
    high_open: bool = False

    @classmethod
    def from_field(cls, owner: type, field_name: str, description: str, name: str) -> ParamSpec:
        """The parameter ``name`` for field ``field_name`` of config dataclass ``owner``: the
        field's default, type and declared range or choices, and ``description``."""
        default = field_default(owner, field_name)
        hint = typing.get_type_hints(owner).get(field_name)
        if hint is float and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)
        b = declared(owner, field_name) or Bounds()
        return cls(name, default, description, b.low, b.high, b.choices, low_open=b.low_open,
                   high_open=b.high_open)

    @property
    def bounds(self) -> Bounds:
        """The declared range and choices."""
        return Bounds(self.low, self.high, self.low_open, self.high_open, self.choices)

    @property
    def kind(self) -> str:
        """``bool``, ``int``, ``float``, ``str``, ``int_list``, ``float_list`` or ``str_list``."""
        d = self.default
        if isinstance(d, bool):
            return "bool"
        if isinstance(d, int):
            return "int"
        if isinstance(d, float):
            return "float"
        if isinstance(d, str):
            return "str"
        if isinstance(d, (list, tuple)) and d:
            first = d[0]
            if isinstance(first, bool):
                raise TypeError(f"{self.name}: bool lists are not supported")
            if isinstance(first, int):
                return "int_list"
            if isinstance(first, float):
                return "float_list"
            if isinstance(first, str):
                return "str_list"
        raise TypeError(f"{self.name}: unsupported default {d!r} (lists must be non-empty)")

    def constraint_text(self) -> str:
        """Human-readable limits (for descriptors and docs)."""
        text = self.bounds.text()
        parts = [text] if text else []
        if self.length is not None:
            parts.append(f"{self.length} values")
        return "; ".join(parts)

    def _fail(self, msg: str) -> ParamError:
        return ParamError(f"parameter '{self.name}': {msg}")

    def _number(self, value: Any, integer: bool) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(f"must be {'an integer' if integer else 'a number'}, got {value!r}")
        if integer and not float(value).is_integer():
            raise self._fail(f"must be an integer, got {value!r}")
        v: int | float = int(value) if integer else float(value)
        if not integer and not math.isfinite(v):
            raise self._fail(f"must be finite, got {value!r}")
        if not self.bounds.in_range(v):
            raise self._fail(f"{v!r} is out of range ({self.constraint_text()})")
        return v

    def check(self, value: Any) -> Any:
        """The validated (and coerced: int -> float, tuple -> list) value; raises ParamError."""
        kind = self.kind
        if kind == "bool":
            if not isinstance(value, bool):
                raise self._fail(f"must be true or false, got {value!r}")
            return value
        if kind in ("int", "float"):
            return self._number(value, kind == "int")
        if kind == "str":
            if not isinstance(value, str):
                raise self._fail(f"must be a string, got {value!r}")
            if self.choices and value not in self.choices:
                raise self._fail(f"{value!r} is not allowed ({self.constraint_text()})")
            return value
        if not isinstance(value, (list, tuple)):
            raise self._fail(f"must be a list, got {value!r}")
        if self.length is not None and len(value) != self.length:
            raise self._fail(f"must have {self.length} values, got {len(value)}")
        if kind == "str_list":
            if not all(isinstance(v, str) for v in value):
                raise self._fail(f"must be a list of strings, got {value!r}")
            return list(value)
        return [self._number(v, kind == "int_list") for v in value]


def check_values(specs: Sequence[ParamSpec], values: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``values``, every one validated (ROS-free); unknown keys raise."""
    by_name = {s.name: s for s in specs}
    for key in values:
        if key not in by_name:
            raise ParamError(f"unknown parameter '{key}'")
    return {s.name: s.check(values.get(s.name, s.default)) for s in specs}


def is_builtin(name: str) -> bool:
    """Whether ``name`` is a parameter rclpy itself handles."""
    return name in ROS_BUILTIN_PARAMS or name.startswith(ROS_BUILTIN_PREFIXES)


def _descriptor(spec: ParamSpec) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = ParameterDescriptor(description=spec.description, read_only=True, dynamic_typing=True)
    extra = spec.constraint_text()
    if extra:
        desc.additional_constraints = extra
    kind = spec.kind
    if spec.low is not None or spec.high is not None:
        if kind in ("int", "int_list"):
            desc.integer_range = [IntegerRange(
                from_value=int(spec.low) if spec.low is not None else -_INT_MAX,
                to_value=int(spec.high) if spec.high is not None else _INT_MAX, step=0)]
        elif kind in ("float", "float_list"):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(spec.low) if spec.low is not None else -_FLOAT_MAX,
                to_value=float(spec.high) if spec.high is not None else _FLOAT_MAX, step=0.0)]
    return desc


def declare_parameters(node: Any, specs: Sequence[ParamSpec],
                       known_elsewhere: Iterable[str] = ()) -> dict[str, Any]:
    """Declare ``specs`` on ``node`` and return their validated values.

    ``known_elsewhere``: parameter names other nodes of the graph declare; such names given to
    this node (e.g. from a params file's ``/**`` section) are ignored, any other undeclared name
    is an error.

    Raises:
        ParamError: a bad or unknown parameter (the message names it).
    """
    from rclpy.exceptions import (
        InvalidParameterTypeException,
        InvalidParameterValueException,
        ParameterException,
    )
    from rclpy.parameter import Parameter

    values: dict[str, Any] = {}
    for spec in specs:
        try:
            param = node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException, ParameterException) as exc:
            raise ParamError(f"parameter '{spec.name}': {exc}") from exc
        value = param.value
        if param.type_ in (Parameter.Type.INTEGER_ARRAY, Parameter.Type.DOUBLE_ARRAY,
                           Parameter.Type.STRING_ARRAY, Parameter.Type.BOOL_ARRAY,
                           Parameter.Type.BYTE_ARRAY):
            value = list(value)
        values[spec.name] = spec.check(value)
    declared = {s.name for s in specs}
    known = declared | set(known_elsewhere)
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    unknown = sorted(n for n in overrides if n not in known and not is_builtin(n))
    if unknown:
        raise ParamError(f"unknown parameter '{unknown[0]}' (this node takes: {', '.join(sorted(declared))})")
    return values


def fail(message: str, code: int = 1) -> int:
    """Print ``error: message`` to stderr and return ``code`` (for ``main`` functions)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
