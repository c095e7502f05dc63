"""Start the node graph without a ROS install: ``python -m ros2_erl_vlm.runner`` (``erl_vlm_run``).

The pip-mode twin of ``ros2 launch erl_vlm train_sim.launch.py``: the same nodes from the same
graph description (``config/graph.yaml``) and params file, one process per node, their output
forwarded with a ``[node]`` prefix. The params file and the arguments are checked before anything
starts. The graph stops when Ctrl-C / SIGTERM arrives (every node gets SIGINT, then SIGTERM, then
SIGKILL after grace periods), when the node that ends the graph (sac_agent, after ``total_steps``)
exits, or when any node dies; the exit code is 0 only for a normal end.

    python -m ros2_erl_vlm.runner --task drawer-open-v3 --total-steps 5000 --seed 1
    python -m ros2_erl_vlm.runner --rater transformers --rater-config my_vlm.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ros2_erl_vlm.graph import (
    Graph,
    GraphError,
    check_params,
    is_deploy,
    is_sim,
    load_graph,
    node_command,
    parse_bool,
    write_overrides,
)

_PR_SET_PDEATHSIG = 1
DISCOVERY_RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Children get SIGTERM if the runner itself dies (even by SIGKILL); SIGINT/SIGTERM are not
    inherited as ignored (background jobs of non-interactive shells ignore SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def node_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of node processes: headless MuJoCo, unbuffered output, one OpenMP thread."""
    env = dict(os.environ if base is None else base)
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
    return env


class GraphProcesses:
    """The node processes of one graph run (also used by tests to kill and restart nodes).

    Args:
        graph: the graph description.
        values: resolved argument values (:meth:`Graph.resolve`).
        out: where node output goes (lines prefixed with ``[node]``); None: inherit.
        env: environment of the nodes (default :func:`node_env`).
    """

    def __init__(self, graph: Graph, values: dict[str, str], out: IO[str] | None = sys.stdout,
                 env: dict[str, str] | None = None) -> None:
        self.graph, self.values, self.out = graph, values, out
        self.env = env if env is not None else node_env()
        if not is_sim(values):
            # Anything on the DDS domain can publish `action`: an arm listens on this host only
            # unless the user chose otherwise (docs/real_arm.md).
            self.env.setdefault(DISCOVERY_RANGE, "LOCALHOST")
        self.overrides = graph.node_overrides(values)
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.starts: dict[str, int] = {}
        self._lock = threading.Lock()

    def nodes(self) -> list[str]:
        """Names of the nodes this run starts (the robot side chosen by ``use_sim``)."""
        return [n.name for n in self.graph.started(self.values)]

    def command(self, name: str) -> list[str]:
        """The command line of node ``name`` (its argument overrides are written to
        ``<run_dir>/params/<name>.yaml``)."""
        node = self.graph.node(name)
        folder = Path(self.values["run_dir"]) / "params"
        path = write_overrides(node, self.values, self.overrides[name], folder)
        return node_command(node, self.values, path)

    def _emit(self, line: str) -> None:
        if self.out is None:
            return
        with self._lock:
            self.out.write(line if line.endswith("\n") else line + "\n")
            self.out.flush()

    def _pump(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            self._emit(f"[{name}] {line}")
        stream.close()

    def start(self, name: str) -> subprocess.Popen[str]:
        """Start (or restart) node ``name``."""
        old = self.procs.get(name)
        if old is not None and old.poll() is None:
            raise RuntimeError(f"{name} is still running (pid {old.pid})")
        proc = subprocess.Popen(self.command(name), env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE if self.out is not None else None,
                                stderr=subprocess.STDOUT if self.out is not None else None,
                                text=True, bufsize=1, start_new_session=True,
                                preexec_fn=_die_with_parent)
        self.procs[name] = proc
        self.starts[name] = self.starts.get(name, 0) + 1
        if proc.stdout is not None:
            threading.Thread(target=self._pump, args=(name, proc.stdout), daemon=True).start()
        self._emit(f"[runner] started {name} (pid {proc.pid})")
        return proc

    def start_all(self) -> None:
        """Start every node of the run (robot side last)."""
        names = self.nodes()
        for name in sorted(names, key=lambda n: self.graph.node(n).layer != "top"):
            self.start(name)

    def signal(self, name: str, sig: int) -> None:
        """Send ``sig`` to a running node."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    def exited(self) -> list[tuple[str, int]]:
        """Nodes whose process has ended, with return codes."""
        return [(n, p.returncode) for n, p in self.procs.items() if p.poll() is not None]

    def running(self) -> list[str]:
        """Nodes still running."""
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop_all(self, grace_s: float = 15.0) -> dict[str, int]:
        """SIGINT every node, then SIGTERM and SIGKILL after grace periods; return codes."""
        for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            live = self.running()
            if not live:
                break
            if sig != signal.SIGINT:
                self._emit(f"[runner] {', '.join(live)} still running: sending {signal.Signals(sig).name}")
            for name in live:
                self.signal(name, sig)
            deadline = time.monotonic() + wait
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.05)
        return {n: p.returncode for n, p in self.procs.items()}

    def wait(self, should_stop: Callable[[], bool] = lambda: False,
             poll_s: float = 0.1) -> tuple[str, int] | None:
        """Block until a node exits (returns it) or ``should_stop()`` (returns None)."""
        while not should_stop():
            done = self.exited()
            if done:
                return done[0]
            time.sleep(poll_s)
        return None


def start_rviz(values: dict[str, str], emit: Callable[[str], None]) -> subprocess.Popen[bytes] | None:
    """rviz2 with the package's view (not part of the graph: closing it does not stop training);
    None, with a note, where rviz2 is not installed (it is not on PyPI)."""
    from ros2_erl_vlm.ros.qos import RATING_MARKERS

    exe = shutil.which("rviz2")
    ns = values.get("namespace", "").strip("/")
    topic = f"/{ns}/{RATING_MARKERS}" if ns else f"/{RATING_MARKERS}"
    if exe is None:
        emit(f"[runner] rviz: rviz2 is not installed here (it comes with a ROS 2 desktop install, not "
             f"PyPI); the rated states are published on {topic} (visualization_msgs/MarkerArray)")
        return None
    from ros2_erl_vlm.paths import share_dir

    emit(f"[runner] started rviz2 ({topic})")
    return subprocess.Popen([exe, "-d", str(share_dir() / "rviz" / "erl_vlm.rviz")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: More option names of graph arguments (``--steps``, as the in-process ``ros2_erl_vlm.train``).
ALIASES: dict[str, tuple[str, ...]] = {"total_steps": ("--steps",)}


def build_parser(graph: Graph) -> argparse.ArgumentParser:
    """One option per graph argument (``--total-steps`` for ``total_steps`` ..., plus
    :data:`ALIASES`)."""
    p = argparse.ArgumentParser(prog="python -m ros2_erl_vlm.runner",
                                description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for arg in graph.arguments.values():
        extra = f" [default: {arg.default}]" if arg.default else ""
        p.add_argument("--" + arg.name.replace("_", "-"), *ALIASES.get(arg.name, ()), dest=arg.name,
                       default=None, metavar=arg.name.upper(), help=arg.description + extra)
    p.add_argument("--check", action="store_true", help="only check the params file and arguments")
    p.add_argument("--print-commands", action="store_true", help="print each node's command line and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    try:
        graph = load_graph()
    except (GraphError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = build_parser(graph).parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k in graph.arguments and v is not None}
    try:
        values = graph.resolve(given)
        check_params(graph, values)
        procs = GraphProcesses(graph, values)
    except GraphError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"ok: {values['params_file']}")
        return 0
    if args.print_commands:
        for name in procs.nodes():
            print(" ".join(procs.command(name)))
        return 0
    os.makedirs(values["run_dir"], exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        procs._emit(f"[runner] {signal.Signals(signum).name}: stopping the graph")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    procs._emit(f"[runner] run directory: {values['run_dir']}")
    procs.start_all()
    viewer = start_rviz(values, procs._emit) if parse_bool(values.get("rviz") or "false", "rviz") else None
    ended = procs.wait(stop.is_set)
    code = 0
    if ended is not None:
        name, rc = ended
        if graph.node(name).ends_graph and rc == 0:
            procs._emit(f"[runner] {name} finished: stopping the graph")
        else:
            procs._emit(f"[runner] {name} exited with code {rc}: stopping the graph")
            code = rc if rc > 0 else 1
    codes = procs.stop_all()
    if viewer is not None and viewer.poll() is None:
        viewer.terminate()
    bad = {n: c for n, c in codes.items() if c not in (0, None) and (ended is None or n != ended[0])}
    if bad:
        procs._emit(f"[runner] unclean exits: {bad}")
        code = code or 1
    procs._emit(f"[runner] done (exit {code}); run directory: {values['run_dir']}")
    if not is_deploy(values):  # a training run (a deployment has no learning to report)
        from ros2_erl_vlm.report import report_hint

        procs._emit(f"[runner] {report_hint(values['run_dir'])}")
    return code


if __name__ == "__main__":
    sys.exit(main())
