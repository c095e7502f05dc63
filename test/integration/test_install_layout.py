"""The installed package is a proper ROS package, both ways it can be installed.

- The running environment (the venv from ``./erl setup``, or a sourced colcon install) is a ROS
  prefix for ``erl_vlm``: ament index entry, ``share/erl_vlm``, executables in ``lib/erl_vlm``,
  importable ``erl_vlm.msg``.
- ``colcon build`` of this repository (the "ROS 2 installed" path) works against a ROS prefix; here
  the venv's PyPI ROS wheels stand in for /opt/ros.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "erl_vlm"
EXECUTABLES = (
    "sim_bridge",
    "camera_capture",
    "vlm_rater",
    "reward_learner",
    "sac_agent",
    "rating_viz",
    "erl_vlm_run",
    "erl_vlm_train",
)
#: Every interface in msg/ must be built and installed.
MSG_TYPES = tuple(sorted(p.stem for p in (REPO / "msg").glob("*.msg")))
DATA_DIRS = ("launch", "config", "sim", "rviz")


def _source_files(top: str) -> list[str]:
    """Files under the repository's ``top`` directory, relative to it."""
    root = REPO / top
    if not root.is_dir():
        return []
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def check_prefix(prefix: Path) -> None:
    """Assert that ``prefix`` holds a complete erl_vlm install (ament_cmake layout)."""
    marker = prefix / "share/ament_index/resource_index/packages" / PACKAGE
    assert marker.is_file(), f"ament index marker missing: {marker}"
    share = prefix / "share" / PACKAGE
    assert (share / "package.xml").is_file()
    for name in MSG_TYPES:
        assert (share / "msg" / f"{name}.msg").is_file(), name
    for top in DATA_DIRS:
        for rel in _source_files(top):
            assert (share / top / rel).is_file(), f"share/{PACKAGE}/{top}/{rel} not installed"
    lib = prefix / "lib" / PACKAGE
    for name in EXECUTABLES:
        exe = lib / name
        assert exe.is_file(), f"missing executable {exe}"
        assert os.access(exe, os.X_OK), f"not executable: {exe}"
        lines = exe.read_text().splitlines()
        interpreter = lines[0].removeprefix("#!").strip()
        assert lines[0].startswith("#!"), f"{exe}: {lines[0]}"
        assert os.access(interpreter, os.X_OK), f"{exe}: {lines[0]}"
        assert any(line.startswith("from ros2_erl_vlm.") for line in lines), exe


@pytest.mark.ros
def test_package_is_in_the_ament_index() -> None:
    """ament_index_python finds erl_vlm's prefix and share directory."""
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    share = Path(get_package_share_directory(PACKAGE))
    prefix = Path(get_package_prefix(PACKAGE))
    assert share == prefix / "share" / PACKAGE
    check_prefix(prefix)


@pytest.mark.ros
def test_messages_are_registered_interfaces() -> None:
    """The rosidl_interfaces index lists every message (what ``ros2 interface`` reads)."""
    from ament_index_python import get_resource

    content, _ = get_resource("rosidl_interfaces", PACKAGE)
    listed = set(content.split())
    for name in MSG_TYPES:
        assert f"msg/{name}.msg" in listed, name


def test_messages_import() -> None:
    """``erl_vlm.msg`` imports and has every type, with its type support loaded."""
    import erl_vlm.msg as msgs
    from rclpy.type_support import check_for_type_support

    for name in MSG_TYPES:
        cls = getattr(msgs, name)
        check_for_type_support(cls)  # loads the compiled type support (raises if broken)
        assert cls._TYPE_SUPPORT is not None, name
        cls()
    assert msgs.Rating.ABSTAINED == -1


def test_venv_is_the_ros_prefix() -> None:
    """In the ./erl venv, erl_vlm's prefix is the venv itself and its scripts use its Python."""
    from ament_index_python.packages import get_package_prefix

    if sys.prefix == sys.base_prefix:
        pytest.skip("not running in a venv")
    prefix = Path(get_package_prefix(PACKAGE))
    if prefix.resolve() != Path(sys.prefix).resolve():
        pytest.skip(f"erl_vlm comes from another prefix ({prefix})")
    exe = prefix / "lib" / PACKAGE / "sim_bridge"
    interpreter = Path(exe.read_text().splitlines()[0][2:].strip())
    assert interpreter.parent.resolve() == Path(sys.prefix, "bin").resolve()
    # The Python package is the checkout (editable install), not a copy.
    import ros2_erl_vlm

    assert Path(ros2_erl_vlm.__file__).resolve().parent == REPO / "ros2_erl_vlm"


def _colcon() -> str | None:
    exe = Path(sys.executable).parent / "colcon"
    return str(exe) if exe.is_file() else shutil.which("colcon")


@pytest.mark.integration
def test_colcon_build_ros_installed_path(tmp_path: Path) -> None:
    """``colcon build`` + ``source install/setup.bash`` gives a working erl_vlm overlay.

    A full build of msg/ (about 60 s of CPU: ~35 s on an idle 2-core machine); deselect with
    ``-k 'not colcon'`` for quick local runs.
    """
    colcon = _colcon()
    if colcon is None:
        pytest.skip("colcon is not installed (pip install colcon-common-extensions)")
    from ament_index_python.packages import get_package_prefix

    ros_prefix = os.environ.get("ERL_TEST_ROS_PREFIX") or get_package_prefix("rclpy")
    env = os.environ.copy()
    env["AMENT_PREFIX_PATH"] = ros_prefix
    env["CMAKE_PREFIX_PATH"] = ros_prefix
    env.pop("COLCON_PREFIX_PATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [
        colcon,
        "--log-base",
        str(tmp_path / "log"),
        "build",
        "--paths",
        str(REPO),
        "--build-base",
        str(tmp_path / "build"),
        "--install-base",
        str(tmp_path / "install"),
        "--event-handlers",
        "console_cohesion+",
        "--cmake-args",
        f"-DPython3_EXECUTABLE={sys.executable}",
        "-DBUILD_TESTING=OFF",
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]

    prefix = tmp_path / "install" / PACKAGE
    check_prefix(prefix)
    assert (prefix / "share" / PACKAGE / "launch").is_dir() or not _source_files("launch")
    site = prefix / sysconfig.get_path("purelib", vars={"base": "", "platbase": ""}).lstrip("/")
    assert (site / "erl_vlm" / "msg" / "__init__.py").is_file()
    assert (site / "ros2_erl_vlm" / "__init__.py").is_file(), "ament_python_install_package"

    # The overlay works once sourced: messages, package and share dir all come from it.
    probe = (
        "import erl_vlm.msg, ros2_erl_vlm\n"
        "from ament_index_python.packages import get_package_share_directory as g\n"
        "print(erl_vlm.msg.__file__); print(ros2_erl_vlm.__file__); print(g('erl_vlm'))\n"
        "erl_vlm.msg.Rating(label=erl_vlm.msg.Rating.ABSTAINED)\n"
    )
    script = f'source "{tmp_path}/install/setup.bash" && exec "{sys.executable}" -c "$PROBE"'
    env_run = {k: v for k, v in env.items() if k != "_ROS_WHEELS_BOOTSTRAP_COMPLETE"}
    env_run["PROBE"] = probe
    out = subprocess.run(
        ["bash", "-c", script],
        env=env_run,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.split()
    assert all(line.startswith(str(prefix)) for line in lines[-3:]), out.stdout
