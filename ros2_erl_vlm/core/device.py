"""Which torch device the learning code runs on: the ``device`` setting.

``auto`` is the first CUDA GPU when torch sees one, else the CPU; ``cpu``; ``cuda`` (the first
visible GPU, ``cuda:0``) or ``cuda:N``. Asking for CUDA where torch has none is a ``ValueError``
that says what torch reports (a CPU-only build, no GPU visible, too few GPUs), never a silent
fallback. Resolving a name creates no CUDA context (a process that only validates a config, such
as the graph runner, takes no GPU memory).

Tensors that leave a process or a run (checkpoints, model bytes) are moved to the CPU first
(:func:`to_cpu`) and every loader maps them to the CPU, so a file written on a GPU loads on a
machine without one. ROS-free.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import torch

#: The ``device`` values besides ``cuda:N``.
DEVICE_CHOICES = ("auto", "cpu", "cuda")
DEVICE_HELP = "auto (a CUDA GPU when there is one, else the CPU) | cpu | cuda | cuda:N"
_CUDA_INDEX = re.compile(r"cuda:(\d+)")


def cuda_report() -> str:
    """What torch says about CUDA on this machine, in words (for error messages and reports)."""
    build = f"torch {torch.__version__}"
    if torch.version.cuda is None:
        return f"{build} is built without CUDA (a CPU-only build)"
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hint = "" if visible is None else f"; CUDA_VISIBLE_DEVICES={visible!r}"
        return (f"{build} (built for CUDA {torch.version.cuda}) finds no usable GPU "
                f"(torch.cuda.is_available() is False{hint})")
    n = torch.cuda.device_count()
    names = ", ".join(f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(n))
    return f"{build} (CUDA {torch.version.cuda}) sees {n} GPU{'s' if n != 1 else ''}: {names}"


def _parse(name: str | torch.device) -> tuple[str, int | None]:
    """``("auto"|"cpu"|"cuda", index or None)``; ValueError for anything else."""
    text = str(name).strip().lower()
    if text in DEVICE_CHOICES:
        return text, None
    m = _CUDA_INDEX.fullmatch(text)
    if m:
        return "cuda", int(m.group(1))
    raise ValueError(f"device must be {DEVICE_HELP}, got {str(name)!r}")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a ``device`` setting (see the module docstring).

    Raises:
        ValueError: an unknown name, or CUDA asked for where torch cannot use it (the message
            says what torch reports).
    """
    kind, index = _parse(name)
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r}: CUDA is not available: {cuda_report()}; "
                         f"use device cpu (or auto, the CPU when there is no GPU)")
    index = 0 if index is None else index
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {str(name)!r}: no such GPU: {cuda_report()}")
    return torch.device("cuda", index)


def check_device(name: str) -> None:
    """Raise ``ValueError`` (as :func:`resolve_device`) unless ``name`` is usable here."""
    resolve_device(name)


def tree_to(value: Any, device: str | torch.device) -> Any:
    """``value`` with every tensor in it (nested dicts, lists, tuples) moved to ``device``;
    tensors already there are returned as they are (no copy)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return type(value)((k, tree_to(v, device)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(tree_to(v, device) for v in value)
    return value


def tensors_in(value: Any) -> list[torch.Tensor]:
    """Every tensor in ``value`` (nested dicts, lists, tuples), in order: to check where they live."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in tensors_in(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


def to_cpu(value: Any) -> Any:
    """:func:`tree_to` the CPU: what checkpoints and model bytes hold, whatever device trained."""
    return tree_to(value, "cpu")
