"""Fixtures for rater tests: queries with random frames, and tiny random-weight VLMs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, RatingQuery


@pytest.fixture
def make_query() -> Callable[..., RatingQuery]:
    """``make_query(i, n=3, frames=1, size=32)``: a query with seeded random frames."""

    def build(i: int = 0, n: int = 3, frames: int = 1, size: int = 32,
              instruction: str = "open the drawer") -> RatingQuery:
        rng = np.random.default_rng(1000 + i)
        return RatingQuery(episode=i, steps=tuple(range(frames)), instruction=instruction,
                           class_names=DEFAULT_CLASS_NAMES[n], query_id=f"q{i}",
                           frames=rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8))

    return build


@pytest.fixture(scope="session")
def tiny_vlms() -> Callable[[str], tuple[Any, Any]]:
    """``tiny_vlms(arch)`` -> ``(model, processor)``, built once per architecture and session."""
    from ros2_erl_vlm.raters.random_weight_vlms import BUILDERS

    built: dict[str, tuple[Any, Any]] = {}

    def get(arch: str) -> tuple[Any, Any]:
        if arch not in built:
            built[arch] = BUILDERS[arch]()
        return built[arch]

    return get
