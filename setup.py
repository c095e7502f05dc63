"""Python packaging of ``ros2_erl_vlm`` (the ROS package ``erl_vlm``).

Dependency versions live in ``requirements*.txt`` only; this file reads them.

- ``./erl setup`` installs this package editable (``pip install -e . --no-deps``) into a venv that
  is also a ROS prefix (the messages in ``msg/`` are built there with CMake).
- ``pip install .`` (non-editable) also installs ``share/erl_vlm`` (package.xml, ament index marker,
  launch/config/sim/rviz) so the prefix resolves the package; it does not build ``msg/``.
- With ROS installed, ``colcon build`` uses CMakeLists.txt instead and never runs this file.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE_NAME = "erl_vlm"
HERE = Path(__file__).resolve().parent
NODES = ("sim_bridge", "camera_capture", "vlm_rater", "reward_learner", "sac_agent", "rating_viz",
         "arm_bridge", "fake_arm", "deploy_agent", "teleop", "recorder")


def read_requirements(name: str) -> list[str]:
    """Requirement lines of ``name`` (comments, blanks and ``-r`` includes dropped)."""
    path = HERE / name
    if not path.is_file():
        return []
    out: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(line)
    return out


def share_data_files() -> list[tuple[str, list[str]]]:
    """``data_files`` entries mirroring what CMakeLists.txt installs into ``share/erl_vlm``."""
    share = f"share/{PACKAGE_NAME}"
    files: list[tuple[str, list[str]]] = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE_NAME}"]),
        (share, ["package.xml"]),
    ]
    for top in ("launch", "config", "sim", "rviz", "msg"):
        for dirpath, dirnames, filenames in os.walk(HERE / top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            rel = Path(dirpath).relative_to(HERE)
            chosen = sorted(f for f in filenames if not f.endswith(".pyc"))
            if chosen:
                files.append((f"{share}/{rel.as_posix()}", [(rel / f).as_posix() for f in chosen]))
    return files


def console_scripts() -> list[str]:
    """Entry points in ``bin/``; ``lib/erl_vlm/`` gets the same ones from CMake for ``ros2 run``."""
    scripts = [f"erl_vlm_{node}=ros2_erl_vlm.nodes.{node}:main" for node in NODES]
    scripts += ["erl_vlm_run=ros2_erl_vlm.runner:main", "erl_vlm_train=ros2_erl_vlm.train:main",
                "erl_vlm_report=ros2_erl_vlm.report.cli:main",
                "erl_vlm_offline_train=ros2_erl_vlm.offline.train:main",
                "erl_vlm_offline_reward=ros2_erl_vlm.offline.reward:main"]
    return scripts


setup(
    name="ros2-erl-vlm",
    version="0.1.0",
    description="ERL-VLM: robot learning from vision-language-model ratings, as a ROS 2 package",
    long_description=(HERE / "package.xml").read_text().split("<description>")[1].split("<")[0],
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=("ros2_erl_vlm", "ros2_erl_vlm.*")),
    include_package_data=False,
    install_requires=read_requirements("requirements.txt"),
    extras_require={
        "ros": read_requirements("requirements-ros.txt"),
        "dev": read_requirements("requirements-dev.txt"),
    },
    data_files=share_data_files(),
    entry_points={"console_scripts": console_scripts()},
    zip_safe=False,
)
