"""Locate the package's data directories (``sim/``, ``config/``, ``launch/``, ``rviz/``).

Three layouts are supported, tried in order:

1. ``ERL_VLM_SHARE`` environment variable pointing at a directory holding ``sim/`` etc.;
2. an installed ROS prefix (``<prefix>/share/erl_vlm``, found through the ament index);
3. the source checkout (the repository root next to this package), used by editable installs.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

PACKAGE_NAME = "erl_vlm"
_REPO_ROOT = Path(__file__).resolve().parent.parent


def _candidates() -> list[Path]:
    out: list[Path] = []
    env = os.environ.get("ERL_VLM_SHARE")
    if env:
        out.append(Path(env))
    # Source checkout first when running from it: edits to sim/ and config/ take effect at once.
    if (_REPO_ROOT / "package.xml").is_file():
        out.append(_REPO_ROOT)
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            out.append(Path(prefix) / "share" / PACKAGE_NAME)
    return out


@cache
def share_dir() -> Path:
    """Return the directory that holds ``sim/`` and ``config/`` for this installation."""
    for cand in _candidates():
        if (cand / "sim").is_dir() and (cand / "config").is_dir():
            return cand
    tried = ", ".join(str(c) for c in _candidates()) or "(none)"
    raise FileNotFoundError(
        f"cannot find the erl_vlm share directory (sim/, config/); tried: {tried}. "
        "Set ERL_VLM_SHARE or source the install's setup script."
    )


def sim_dir() -> Path:
    """Directory of task definitions and MuJoCo assets."""
    return share_dir() / "sim"


def config_dir() -> Path:
    """Directory of YAML parameter files."""
    return share_dir() / "config"
