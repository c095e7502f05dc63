"""Checks of a policy's action before anything acts on it: the right size and finite (NaN/inf
rejected, never clipped into a command), then clipped to the normalised range [-1, 1]."""

from __future__ import annotations

import numpy as np


class BadActionError(ValueError):
    """An action that must not be applied (the message says why)."""


def checked_action(action: object, dim: int) -> np.ndarray:
    """The action as float32 clipped to [-1, 1].

    Raises:
        BadActionError: wrong size, or NaN/inf in it.
    """
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (dim,):
        raise BadActionError(f"an action with {a.size} values (need {dim})")
    if not np.all(np.isfinite(a)):
        raise BadActionError("an action with NaN/inf")
    return np.clip(a, -1.0, 1.0).astype(np.float32)
