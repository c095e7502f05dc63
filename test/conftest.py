"""Session-wide test environment and markers.

Set before any test module imports rclpy, torch or mujoco:
- ``ROS_HOME`` / ``ROS_LOG_DIR`` in a temporary directory (ROS writes logs to ~/.ros otherwise);
- a ``ROS_DOMAIN_ID`` of this run's own and localhost-only discovery, so parallel runs on one
  machine do not see each other;
- ``MUJOCO_GL=egl`` (headless software rendering), one torch/OpenMP thread.
Existing values of these variables are kept. ``./erl test`` sets the same ones.

Markers: ``slow`` (skipped unless ``--runslow`` or ``ERL_TEST_SLOW=1``), ``ros`` (needs rclpy and
DDS), ``render`` (needs EGL rendering), ``integration`` (crosses process or package boundaries).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_TMP_ROS_HOME: str | None = None


def _setdefault_env() -> None:
    """Fill in the test environment variables that are not set yet."""
    global _TMP_ROS_HOME
    if "ROS_HOME" not in os.environ:
        _TMP_ROS_HOME = tempfile.mkdtemp(prefix="erl-ros-home-")
        os.environ["ROS_HOME"] = _TMP_ROS_HOME
    os.environ.setdefault("ROS_LOG_DIR", os.path.join(os.environ["ROS_HOME"], "log"))
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # every test on the CPU, also on a GPU machine
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")


_setdefault_env()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--runslow``."""
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    """Register markers and limit torch to one thread."""
    config.addinivalue_line("markers", "slow: long test; run with --runslow or ERL_TEST_SLOW=1")
    config.addinivalue_line("markers", "ros: needs rclpy and DDS (ROS 2 from a prefix or the venv)")
    config.addinivalue_line("markers", "render: needs headless rendering (MUJOCO_GL=egl)")
    config.addinivalue_line("markers", "integration: crosses process or package boundaries")
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` tests unless asked for."""
    if config.getoption("--runslow") or os.environ.get("ERL_TEST_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or ERL_TEST_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the temporary ROS_HOME this session created."""
    if _TMP_ROS_HOME is not None:
        shutil.rmtree(_TMP_ROS_HOME, ignore_errors=True)
