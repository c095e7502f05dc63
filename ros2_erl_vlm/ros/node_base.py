"""What every erl_vlm node shares: declared parameters, counters, a status file, wall-clock timers,
and :func:`run_node`, the ``main`` of every node executable (exit codes, Ctrl-C / SIGTERM).

Exit codes: 0 (stopped by a signal, or finished its work), 1 (bad parameter or params file, or an
error while starting), 2 (crashed while running).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.checkpoint import CheckpointError
from ros2_erl_vlm.core.record_log import RecordLogError
from ros2_erl_vlm.ros.node_params import NODE_PARAMS, all_param_names
from ros2_erl_vlm.ros.params import ParamError, ParamSpec, declare_parameters, fail
from ros2_erl_vlm.stop_signals import StopSignals


class Closable(Protocol):
    """Anything a node closes at shutdown."""

    def close(self) -> None:
        """Release the resource."""
        ...


class ErlNode(Node):
    """Base class of the graph's nodes.

    Args:
        name: default node name (remappable with ``__node:=``).
        specs: the node's parameter table (default: ``NODE_PARAMS[name]``).
    """

    #: Counter names shown in the status file from the start (zero until they happen).
    COUNTERS: tuple[str, ...] = ()

    def __init__(self, name: str, specs: Sequence[ParamSpec] | None = None) -> None:
        super().__init__(name)
        self.p: dict[str, Any] = declare_parameters(
            self, specs if specs is not None else NODE_PARAMS[name], known_elsewhere=all_param_names())
        self.counters: Counter[str] = Counter(dict.fromkeys(self.COUNTERS, 0))
        self._closables: list[Closable] = []
        self.done = False
        self.exit_code = 0
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._t0 = time.monotonic()
        run_dir = str(self.p.get("run_dir", ""))
        self.node_dir: Path | None = Path(run_dir) / self.get_name() if run_dir else None
        if self.node_dir is not None:
            self.node_dir.mkdir(parents=True, exist_ok=True)
        if "torch_threads" in self.p:
            import torch

            torch.set_num_threads(int(self.p["torch_threads"]))
        if "status_period_s" in self.p and self.node_dir is not None:
            self.wall_timer(float(self.p["status_period_s"]), self.write_status)

    # -- helpers --------------------------------------------------------------------------------
    def wall_timer(self, period_s: float, callback: Callable[[], None]) -> Any:
        """A timer on the steady (wall) clock: it fires even when sim time stands still."""
        return self.create_timer(period_s, callback, clock=self._steady)

    def count(self, key: str, warning: str | None = None) -> None:
        """Bump counter ``key``; log ``warning`` (throttled per key) when given."""
        self.counters[key] += 1
        if warning:
            self.get_logger().warning(f"{warning} [{key}: {self.counters[key]}]",
                                      throttle_duration_sec=5.0)

    def warn(self, message: str, key: str) -> None:
        """Log ``message`` (throttled per ``key``) without counting: for events a core object counts."""
        self.get_logger().warning(f"{message} [{key}]", throttle_duration_sec=5.0)

    def require_run_dir(self) -> Path:
        """The node's directory; ParamError when ``run_dir`` is empty."""
        if self.node_dir is None:
            raise ParamError("parameter 'run_dir': must be set (the runner and the launch file set it)")
        return self.node_dir

    def status(self) -> dict[str, Any]:
        """Node-specific status (extended by subclasses)."""
        return {}

    def write_status(self) -> None:
        """Atomically rewrite ``<run_dir>/<node>/status.json`` (counters and :meth:`status`)."""
        if self.node_dir is None:
            return
        data = {"node": self.get_fully_qualified_name(), "pid": os.getpid(), "time": time.time(),
                "uptime_s": time.monotonic() - self._t0, "counters": dict(self.counters),
                **self.status()}
        path = self.node_dir / "status.json"
        write_text_atomic(path, json.dumps(data, indent=1, default=str))

    def finish(self, code: int = 0) -> None:
        """Ask :func:`run_node` to stop this node with exit code ``code``."""
        self.done, self.exit_code = True, code

    def close_at_exit(self, resource: Closable) -> None:
        """Close ``resource`` (anything with ``close()``) at shutdown, after the last status write,
        in the order registered."""
        self._closables.append(resource)

    def close(self) -> None:
        """Release resources at shutdown: the last status, then what :meth:`close_at_exit` was
        given (subclasses may extend; called once)."""
        self.write_status()
        for resource in self._closables:
            resource.close()


def run_node(factory: Callable[[], ErlNode], args: Sequence[str] | None = None) -> int:
    """Init rclpy, build the node, spin until Ctrl-C / SIGTERM or :meth:`ErlNode.finish`, clean up.

    Teardown happens on the main thread in a fixed order (executor, node, context). A bad parameter
    or params file exits 1 with ``error: ...`` on stderr naming the problem.
    """
    argv = list(sys.argv if args is None else args)
    # rclpy's own handlers are not installed: they shut the context down from a helper thread
    # while the main thread tears the node down, a race that segfaulted a node at exit in CI.
    stop = StopSignals()
    try:
        return _run(factory, argv, stop)
    finally:
        stop.restore()


def _run(factory: Callable[[], ErlNode], argv: list[str], stop: StopSignals) -> int:
    try:
        rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # rcl raises RCLError for unreadable params files / bad --ros-args
        return fail(f"cannot start ROS (bad --ros-args or params file?): {exc}")
    node: ErlNode | None = None
    executor: SingleThreadedExecutor | None = None
    code = 0
    try:
        try:
            node = factory()
        except (ParamError, ValueError, FileNotFoundError, RecordLogError, CheckpointError) as exc:
            return fail(str(exc))  # bad settings or damaged run files: a message, no traceback
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        node.get_logger().info("ready")
        while rclpy.ok() and not node.done and not stop.received:
            executor.spin_once(timeout_sec=0.1)
        code = 0 if stop.received else node.exit_code
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    except Exception:
        traceback.print_exc()
        code = 2
    finally:
        stop.tearing_down = True
        if executor is not None:
            # Shut the executor down while the context lives: left to the garbage collector, its
            # __del__ would destroy its SIGINT guard condition after rclpy.shutdown and print an
            # InvalidHandle traceback on an otherwise clean exit.
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            try:
                node.close()
            except Exception:
                traceback.print_exc()
                code = code or 2
            node.destroy_node()
        rclpy.try_shutdown()
    return code
