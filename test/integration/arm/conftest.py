"""Fixtures for the real-arm tests: an arm config written from ``config/arms/fake_sawyer.yaml`` with
changes, and a ``fake_arm`` node in its own process with an in-test rclpy probe node in the same
namespace (real DDS; the session's ROS_DOMAIN_ID and ROS_HOME come from test/conftest.py)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ros2_erl_vlm.paths import config_dir
from ros2_erl_vlm.ros.node_process import node_and_probe


def write_arm_config(path: Path, **changes: Any) -> Path:
    """``config/arms/fake_sawyer.yaml`` with ``changes`` merged into its ``arm:`` mapping (one level
    deep for mappings: ``servo={"timeout_s": 0.2}`` keeps the other servo fields)."""
    data = yaml.safe_load((config_dir() / "arms" / "fake_sawyer.yaml").read_text())
    arm = data["arm"]
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(arm.get(key), dict):
            arm[key] = {**arm[key], **value}
        else:
            arm[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class ArmProbe:
    """A node process under test, a probe node in its namespace, and the node's run directory."""

    proc: subprocess.Popen[str]
    node: Any
    executor: Any
    run_dir: Path
    output: str = ""

    def spin_for(self, seconds: float) -> None:
        """Spin the probe for ``seconds`` (the node under test must stay alive)."""
        self.spin_until(lambda: False, seconds, allow_timeout=True)

    def spin_until(self, cond: Callable[[], bool], timeout_s: float, what: str = "",
                   allow_timeout: bool = False) -> None:
        """Spin until ``cond()``; fail (with the node's output) if it dies or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while not cond() and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the node exited ({self.proc.returncode}) while waiting for {what}:\n"
                            f"{self.proc.communicate()[0][-3000:]}")
            self.executor.spin_once(timeout_sec=0.01)
        if not allow_timeout:
            assert cond(), f"timed out after {timeout_s:g} s waiting for {what or 'the condition'}"

    def call(self, client: Any, request: Any, timeout_s: float = 10.0) -> Any:
        """Call a service and return its response."""
        self.spin_until(client.service_is_ready, timeout_s, f"service {client.srv_name}")
        future = client.call_async(request)
        self.spin_until(future.done, timeout_s, f"the reply of {client.srv_name}")
        return future.result()

    def counters(self, node_name: str) -> dict[str, int]:
        """The node's status.json counters ({} until written)."""
        try:
            return json.loads((self.run_dir / node_name / "status.json").read_text())["counters"]
        except (OSError, ValueError, KeyError):
            return {}


@contextlib.contextmanager
def arm_probe(module: str, namespace: str, run_dir: Path, ros_args: list[str]) -> Iterator[ArmProbe]:
    """Start ``python -m <module> --ros-args -r __ns:=/<namespace> -p run_dir:=... <ros_args>`` and a
    probe node; on exit stop the probe and SIGINT the node (its output lands in ``probe.output``)."""
    with node_and_probe(module, namespace, ros_args, run_dir,
                        lambda proc, node, ex: ArmProbe(proc, node, ex, run_dir)) as probe:
        yield probe


@pytest.fixture
def arm_node_probe() -> Callable[..., Any]:
    """:func:`arm_probe` (``with arm_node_probe(module, namespace, run_dir, ros_args) as probe:``)."""
    return arm_probe


@pytest.fixture
def arm_config_file(tmp_path: Path) -> Callable[..., Path]:
    """``make(name, **changes)`` -> an arm config file (see :func:`write_arm_config`)."""

    def make(name: str = "arm.yaml", **changes: Any) -> Path:
        return write_arm_config(tmp_path / name, **changes)

    return make
