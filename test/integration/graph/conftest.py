"""Fixtures for the node-graph tests: a small params file and a running graph (one process per node,
started by the runner's :class:`~ros2_erl_vlm.runner.GraphProcesses`, over real DDS).

The graph is kept small so a few thousand lock-step env steps take about a minute on 2 cores:
100-step episodes, tiny SAC/reward networks, 64 px camera frames.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ros2_erl_vlm.graph import load_graph
from ros2_erl_vlm.paths import config_dir
from ros2_erl_vlm.ros.node_process import node_and_probe
from ros2_erl_vlm.runner import GraphProcesses

SMALL = {
    "/**": {"num_seed_steps": 200, "num_unsup_steps": 200, "max_episode_steps": 100,
            "status_period_s": 0.5},
    "/**/sim_bridge": {"camera.image_size": 64, "action_timeout_s": 1.0},
    "/**/camera_capture": {"image_size": 64, "max_episodes": 30},
    "/**/vlm_rater": {"rater.noise": 0.1},
    "/**/reward_learner": {"query_every": 300, "queries_per_round": 20, "reward.hidden_dim": 32,
                           "reward.hidden_layers": 2, "reward.epochs": 3, "rating_timeout_s": 30.0,
                           "request_retry_s": 3.0},
    "/**/sac_agent": {"total_steps": 2000, "eval_every": 1000, "eval_episodes": 1,
                      "checkpoint_every": 1000, "replay_capacity": 10_000, "reset_updates": 20,
                      "sac.hidden_dim": 32, "sac.hidden_layers": 2, "sac.batch_size": 32},
}


def write_params(path: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """The shipped config/train_sim.yaml with the small settings and ``overrides`` applied."""
    data = yaml.safe_load((config_dir() / "train_sim.yaml").read_text())
    for section in (SMALL, overrides or {}):
        for key, values in section.items():
            data.setdefault(key, {"ros__parameters": {}})["ros__parameters"].update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def small_params(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make(name, overrides)`` -> a params file with the small settings."""
    root = tmp_path_factory.mktemp("params")

    def make(name: str = "small.yaml", overrides: dict[str, dict[str, Any]] | None = None) -> Path:
        return write_params(root / name, overrides)

    return make


@dataclass
class RunningGraph:
    """A started graph: its processes, run directory and output log."""

    procs: GraphProcesses
    run_dir: Path
    log: Path
    killed: set[str] = field(default_factory=set)

    def kill(self, node: str) -> None:
        """SIGKILL a node (its death does not fail :meth:`wait_for`)."""
        self.killed.add(node)
        self.procs.signal(node, signal.SIGKILL)
        self.procs.procs[node].wait(10)

    def restart(self, node: str) -> None:
        """Start a killed node again."""
        self.procs.start(node)
        self.killed.discard(node)

    def status(self, node: str) -> dict[str, Any]:
        """The node's status.json ({} until written)."""
        try:
            return json.loads((self.run_dir / node / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def output(self) -> str:
        """Everything the nodes printed so far."""
        return self.log.read_text(errors="replace")

    def wait_for(self, what: str, cond: Callable[[], bool], timeout_s: float = 120.0) -> None:
        """Poll ``cond`` until true; fail with the log tail on timeout or when the graph died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return
            dead = [(n, c) for n, c in self.procs.exited() if c != 0 and n not in self.killed]
            if dead:
                pytest.fail(f"waiting for {what}: node(s) died {dead}\n{self.output()[-6000:]}")
            time.sleep(0.25)
        pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{self.output()[-6000:]}")


@pytest.fixture(scope="module")
def start_graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningGraph]]:
    """``start(params_file, **arguments)`` -> a RunningGraph (all nodes stopped at teardown)."""
    started: list[RunningGraph] = []
    handles = []

    def start(params: Path, **arguments: str) -> RunningGraph:
        root = tmp_path_factory.mktemp("graph")
        graph = load_graph()
        values = graph.resolve({"params_file": str(params), "run_dir": str(root / "run"), **arguments})
        log = root / "output.log"
        fh = log.open("w")
        handles.append(fh)
        procs = GraphProcesses(graph, values, out=fh)
        procs.start_all()
        rg = RunningGraph(procs, Path(values["run_dir"]), log)
        started.append(rg)
        return rg

    yield start
    for rg in started:
        rg.procs.stop_all(grace_s=10.0)
    for fh in handles:
        fh.close()


@dataclass
class Probe:
    """One node process under test and an in-test rclpy node in its namespace to talk to it."""

    proc: subprocess.Popen[str]
    node: Any
    executor: Any
    output: str = ""

    def spin_until(self, cond: Callable[[], bool], timeout_s: float, what: str = "") -> None:
        """Spin the probe node until ``cond()``; fail (with the process output) if the node under
        test dies or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while not cond() and time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()[0][-3000:]
            self.executor.spin_once(timeout_sec=0.05)
        assert cond(), f"timed out waiting for {what or 'the condition'}"


@contextlib.contextmanager
def node_with_probe(module: str, namespace: str, ros_args: list[str]) -> Iterator[Probe]:
    """Start ``python -m <module>`` in ``namespace`` (one process, as the runner does) plus a probe
    node; on exit stop the probe and SIGINT the node (its output lands in ``probe.output``)."""
    with node_and_probe(module, namespace, ros_args, None, Probe) as probe:
        yield probe


@pytest.fixture
def node_probe() -> Callable[..., Any]:
    """:func:`node_with_probe` (``with node_probe(module, namespace, ros_args) as probe: ...``)."""
    return node_with_probe


@pytest.fixture(scope="module")
def vlm_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rater config for a tiny random-weight VLM checkpoint on disk (the real transformers path)."""
    from ros2_erl_vlm.raters.random_weight_vlms import BUILDERS, save_vlm

    root = tmp_path_factory.mktemp("vlm")
    model, processor = BUILDERS["idefics3"]()
    path = save_vlm(model, processor, root / "tiny-idefics3")
    cfg = root / "rater.yaml"
    # random weights put almost no probability on the class names: no class-mass floor
    cfg.write_text(f"model: {path}\ndtype: float32\nmin_class_mass: 0.0\n")
    return cfg
