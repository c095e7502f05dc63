"""Atomic, validated checkpoints (agent, reward model, replay, counters) with ``torch.save``.

A checkpoint is a file users exchange, so loading it must never run code: it holds plain values
only (dict/list/tuple/str/int/float/bool/None/bytes and torch tensors) and is read with
``torch.load(weights_only=True)``. :func:`save_checkpoint` also accepts numpy arrays and numpy
scalars: an array is stored as a tagged dict (``{"__erl_vlm_ndarray__": 1, "dtype": ...,
"shape": ..., "data": tensor}``, the data a tensor of the same dtype, or its raw bytes as a uint8
tensor for dtypes torch lacks) that :func:`load_checkpoint` turns back into an array of the same
dtype and shape; a numpy scalar is stored as the Python number it equals. Anything else raises
``TypeError`` naming its key path, so no file is written that could not be read back.

The file is written with :func:`~ros2_erl_vlm.core.atomic_write.atomic_open` (a crash leaves
either the old or the new file). Loading checks the format tag and raises
:class:`CheckpointError` naming the file on anything unreadable.
"""

from __future__ import annotations

import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ros2_erl_vlm.core.atomic_write import atomic_open

FORMAT = "erl_vlm.checkpoint.v2"
OLD_FORMATS = ("erl_vlm.checkpoint.v1",)
NDARRAY_TAG = "__erl_vlm_ndarray__"

_SCALARS = (type(None), bool, int, float, str, bytes)
_DICTS = (dict, OrderedDict)
# numpy dtypes whose arrays torch.from_numpy stores exactly (others go as raw bytes).
_TORCH_KINDS = "biufc"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or of another format."""


def _encode_array(arr: np.ndarray, where: str) -> dict[str, Any]:
    if arr.dtype.hasobject:
        raise TypeError(f"{where}: numpy array of dtype {arr.dtype} holds Python objects; "
                        "store plain values or a numeric array")
    flat = np.ascontiguousarray(arr)
    try:
        if arr.dtype.kind not in _TORCH_KINDS or not arr.dtype.isnative:
            raise TypeError
        data = torch.from_numpy(flat)
        raw = False
    except TypeError:  # a dtype torch cannot hold (strings, datetimes, records, byte-swapped)
        data = torch.from_numpy(flat.reshape(-1).view(np.uint8).copy())
        raw = True
    return {NDARRAY_TAG: 1, "dtype": np.lib.format.dtype_to_descr(arr.dtype),
            "shape": list(arr.shape), "raw": raw, "data": data}


def _encode(value: Any, where: str) -> Any:
    """``value`` as plain containers and tensors, or ``TypeError`` naming ``where``."""
    t = type(value)
    if t in _SCALARS or t in (torch.Tensor, torch.nn.Parameter):
        return value
    if isinstance(value, np.generic):
        item = value.item()
        if type(item) not in _SCALARS:
            raise TypeError(f"{where}: numpy scalar of dtype {value.dtype} has no plain Python value")
        return item
    if isinstance(value, np.ndarray):
        return _encode_array(value, where)
    if t in _DICTS:
        if NDARRAY_TAG in value:
            raise TypeError(f"{where}: the key {NDARRAY_TAG!r} is reserved for checkpoint encoding")
        out = t()
        for k, v in value.items():
            if type(k) not in _SCALARS and type(k) is not tuple:
                raise TypeError(f"{where}: key {k!r} ({type(k).__name__}) is not a plain value")
            out[_encode(k, where) if type(k) is tuple else k] = _encode(v, f"{where}[{k!r}]")
        return out
    if t in (list, tuple):
        return t(_encode(v, f"{where}[{i}]") for i, v in enumerate(value))
    hint = "; convert it with its to_state()" if hasattr(value, "to_state") else \
        ("; convert it to plain values first (dict/list/tuple/str/numbers/bytes/tensors/numpy "
         "arrays), e.g. with a to_state() method")
    raise TypeError(f"{where}: {t.__name__} is not a plain value{hint}")


def _decode_array(node: dict[str, Any]) -> np.ndarray:
    dtype = np.lib.format.descr_to_dtype(node["dtype"])
    data = node["data"].numpy()
    arr = data.view(dtype) if node["raw"] else data.astype(dtype, copy=False)
    return arr.reshape(tuple(node["shape"]))


def _decode(value: Any) -> Any:
    t = type(value)
    if t in _DICTS:
        if NDARRAY_TAG in value:
            return _decode_array(value)
        return t((k, _decode(v)) for k, v in value.items())
    if t in (list, tuple):
        return t(_decode(v) for v in value)
    return value


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` to ``path`` (parent directories are created).

    Raises ``TypeError`` naming the key path of the first value that is neither plain, a tensor,
    nor a numpy array/scalar (nothing is written then)."""
    if "format" in state:
        raise ValueError("checkpoint state must not have a 'format' key (it holds the format tag)")
    payload = _encode({"format": FORMAT, **state}, "state")
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def _format_in_pickle(path: Path) -> str | None:
    """The old format tag found in the zip's ``data.pkl`` bytes (read, never unpickled)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            blob = zf.read(names[0]) if names else b""
    except (OSError, zipfile.BadZipFile, KeyError, EOFError):
        return None
    return next((tag for tag in OLD_FORMATS if tag.encode() in blob), None)


def _old_format_error(path: Path, tag: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is from an older erl_vlm release ({tag}), in a format that could "
        "execute code when loaded, so it is not loaded; start a new run directory")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (numpy arrays come back as arrays).

    Never unpickles objects: a file holding anything but plain values and tensors is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol is refused below anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/pickle/zip raise many types on damaged or foreign files
        tag = _format_in_pickle(path)
        if tag is not None:
            raise _old_format_error(path, tag) from None
        if "Weights only load failed" in str(exc):
            raise CheckpointError(
                f"{path} is not an erl_vlm checkpoint: it holds objects other than plain values "
                "and tensors, which are refused without loading them") from exc
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {exc}") from exc
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt in OLD_FORMATS:
        raise _old_format_error(path, fmt)
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is not an erl_vlm checkpoint (format tag missing)")
    try:
        return _decode(state)
    except Exception as exc:  # a tagged array whose fields do not fit together
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {exc}") from exc
