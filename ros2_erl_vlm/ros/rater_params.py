"""The ``vlm_rater`` node's rater settings from its parameters (and ``rater.config_file``): used by
the node to build its rater and by the starters' ``--check`` to validate them before anything runs
(ROS-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ros2_erl_vlm.core import seeds
from ros2_erl_vlm.ros.params import ParamError


def rater_settings(p: dict[str, Any]) -> dict[str, Any]:
    """``make_rater`` settings from the node's parameters (and ``rater.config_file``)."""
    settings: dict[str, Any] = {}
    path = str(p["rater.config_file"])
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ParamError(f"parameter 'rater.config_file': cannot read {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ParamError(f"parameter 'rater.config_file': {path} must hold a mapping")
        settings.update(loaded)
    for key in ("log_path", "store_frames"):
        settings.pop(key, None)  # the node keeps its own log
    settings["backend"] = p["rater.backend"]
    if p["rater.backend"] == "oracle":
        settings.update(task=p["task"], noise=float(p["rater.noise"]), noise_mode=p["rater.noise_mode"],
                        abstain_rate=float(p["rater.abstain_rate"]),
                        seed=seeds.oracle_seed(int(p["seed"])))
    elif p["rater.backend"] == "simulated_vlm":  # settings from rater.config_file, the task from here
        settings.update(task=p["task"], seed=seeds.oracle_seed(int(p["seed"])))
    return settings
