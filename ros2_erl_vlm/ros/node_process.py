"""A node in its own process, and an in-process probe node beside it: what the multi-process tests
and the benchmarks (``bench/safety.py``) start nodes with.

:func:`start_node` runs ``python -m <module> --ros-args -r __ns:=/<namespace> [-p run_dir:=<dir>]
<args>`` with stdout and stderr together (a pipe by default, or a file); :func:`stop_node` sends
SIGINT (the nodes' graceful stop), waits, kills after ``timeout_s`` and returns what the node
printed. :func:`probe_node` is an rclpy node in its own context (so several can coexist with the
process's default one) in the same namespace, with a single-threaded executor to spin it;
:func:`node_and_probe` is both (the node's output lands in the probe's ``output`` at exit).
rclpy is imported only by :func:`probe_node`.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar


class _HasOutput(Protocol):
    output: str


P = TypeVar("P", bound=_HasOutput)


def node_command(module: str, namespace: str, args: Sequence[str] = (),
                 run_dir: str | Path | None = None) -> list[str]:
    """The command line that starts ``module`` as a node in ``/<namespace>``."""
    cmd = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:=/{namespace}"]
    if run_dir is not None:
        cmd += ["-p", f"run_dir:={run_dir}"]
    return cmd + list(args)


def start_node(module: str, namespace: str, args: Sequence[str] = (), run_dir: str | Path | None = None,
               stdout: int | IO[Any] = subprocess.PIPE) -> subprocess.Popen[str]:
    """Start the node (stderr joins stdout: a pipe, or an open file for long runs)."""
    return subprocess.Popen(node_command(module, namespace, args, run_dir), stdout=stdout,
                            stderr=subprocess.STDOUT, text=True)


def stop_node(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> str:
    """SIGINT the node if it still runs, wait (kill after ``timeout_s``); its output ("" when it
    went to a file)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out = proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
    return out or ""


@contextlib.contextmanager
def node_process(module: str, namespace: str, args: Sequence[str] = (),
                 run_dir: str | Path | None = None,
                 stdout: int | IO[Any] = subprocess.PIPE) -> Iterator[subprocess.Popen[str]]:
    """:func:`start_node`, stopped with :func:`stop_node` on exit."""
    proc = start_node(module, namespace, args, run_dir, stdout)
    try:
        yield proc
    finally:
        stop_node(proc)


@contextlib.contextmanager
def probe_node(namespace: str, name: str = "probe") -> Iterator[tuple[Any, Any]]:
    """``(node, executor)``: an rclpy node ``name`` in ``/<namespace>``, in a context of its own,
    shut down on exit."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node(name, namespace=f"/{namespace}", context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        yield node, executor
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


@contextlib.contextmanager
def node_and_probe(module: str, namespace: str, args: Sequence[str], run_dir: str | Path | None,
                   make_probe: Callable[[subprocess.Popen[str], Any, Any], P]) -> Iterator[P]:
    """The node (:func:`start_node`) and ``make_probe(proc, node, executor)`` around a
    :func:`probe_node`; on exit the probe stops, the node is SIGINT-ed (:func:`stop_node`) and its
    output is set as ``probe.output``."""
    proc = start_node(module, namespace, args, run_dir)
    probe = None
    try:
        with probe_node(namespace) as (node, executor):
            probe = make_probe(proc, node, executor)
            yield probe
    finally:
        out = stop_node(proc)
        if probe is not None:
            probe.output = out
