"""Bad parameters: the runner refuses a bad params file before starting anything, and a node given a
bad value, an unknown name or an unreadable file exits 1 with a message naming the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ros2_erl_vlm.runner import main as runner_main

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize(("section", "values", "expect"), [
    ("/**/sac_agent", {"sac.batch_size": -5}, "sac_agent: parameter 'sac.batch_size'"),
    ("/**/vlm_rater", {"rater.noise": 1.5}, "vlm_rater: parameter 'rater.noise'"),
    ("/**/camera_capture", {"storage": "gif"}, "camera_capture: parameter 'storage'"),
    ("/**/reward_learner", {"reward.hidden_dimm": 8}, "unknown parameter 'reward.hidden_dimm'"),
    ("/**", {"seed": "abc"}, "parameter 'seed': must be an integer"),
    ("/**/sac_agent", {"num_seed_steps": 1}, "num_seed_steps is too small"),
])
def test_runner_check_names_the_bad_parameter(small_params: Any, capsys: pytest.CaptureFixture[str],
                                              section: str, values: dict[str, Any], expect: str) -> None:
    params = small_params(f"bad-{abs(hash(expect))}.yaml", {section: values})
    assert runner_main(["--params-file", str(params), "--check"]) == 2
    assert expect in capsys.readouterr().err


def test_runner_rejects_unreadable_files_and_bad_arguments(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("/**:\n  ros__parameters: [unclosed\n")
    assert runner_main(["--params-file", str(bad), "--check"]) == 2
    assert "broken.yaml" in capsys.readouterr().err
    assert runner_main(["--params-file", str(tmp_path / "missing.yaml"), "--check"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert runner_main(["--seed", "-3", "--check"]) == 2
    assert "argument 'seed'" in capsys.readouterr().err
    assert runner_main(["--use-sim", "false", "--check"]) == 2
    assert "needs arm_config" in capsys.readouterr().err
    assert runner_main(["--check"]) == 0


@pytest.mark.ros
def test_nodes_exit_1_naming_the_problem(small_params: Any, tmp_path: Path) -> None:
    """Each case starts a real node process; they run in parallel."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("/**:\n  ros__parameters: {seed: [unclosed\n")
    cases = {
        "camera_capture": (small_params("cam.yaml", {"/**/camera_capture": {"jpeg_quality": 500}}), [],
                           "parameter 'jpeg_quality'"),
        "vlm_rater": (small_params("rater.yaml"), ["-p", "bogus_param:=1"], "unknown parameter 'bogus_param'"),
        "sim_bridge": (small_params("sim.yaml"), ["-p", 'task:="no-such-task"'], "no-such-task"),
        "reward_learner": (broken, [], "error:"),
        "sac_agent": (small_params("agent.yaml"), ["-p", 'run_dir:=""'], "parameter 'run_dir'"),
    }
    procs = {}
    for node, (params, extra, _) in cases.items():
        cmd = [sys.executable, "-m", f"ros2_erl_vlm.nodes.{node}", "--ros-args", "--params-file", str(params),
               "-p", f'run_dir:="{tmp_path / "run"}"', *extra]
        procs[node] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for node, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        expect = cases[node][2]
        assert proc.returncode == 1, (node, proc.returncode, out[-2000:], err[-2000:])
        assert expect in err, (node, err[-2000:])
        assert "Traceback" not in err, (node, err[-2000:])


@pytest.mark.ros
def test_runner_check_validates_the_rater_config_and_model(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    uncached = tmp_path / "uncached.yaml"
    uncached.write_text("backend: transformers\ntransformers:\n  model: no-such-org/no-such-vlm\n")
    assert runner_main(["--rater", "transformers", "--rater-config", str(uncached), "--check"]) == 2
    err = capsys.readouterr().err
    assert "uncached.yaml" in err and "no-such-org/no-such-vlm" in err and "Hugging Face cache" in err
    not_a_model = tmp_path / "empty-dir"
    not_a_model.mkdir()
    bad_dir = tmp_path / "dir.yaml"
    bad_dir.write_text(f"backend: transformers\nmodel: {not_a_model}\n")
    assert runner_main(["--rater", "transformers", "--rater-config", str(bad_dir), "--check"]) == 2
    assert "has no config.json" in capsys.readouterr().err
    typo = tmp_path / "typo.yaml"
    typo.write_text("backend: openai\nopenai:\n  model: m\n  temprature: 0\n")
    assert runner_main(["--rater", "openai", "--rater-config", str(typo), "--check"]) == 2
    assert "temprature" in capsys.readouterr().err
    assert runner_main(["--rater", "transformers", "--rater-config", str(tmp_path / "none.yaml"),
                        "--check"]) == 2
    assert "none.yaml" in capsys.readouterr().err


def test_a_node_with_a_damaged_checkpoint_exits_1_and_leaves_it(small_params: Any, tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "sac_agent" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 half a checkpoint")
    cmd = [sys.executable, "-m", "ros2_erl_vlm.nodes.sac_agent", "--ros-args", "--params-file",
           str(small_params("agent.yaml")), "-p", f'run_dir:="{tmp_path / "run"}"', "-p", "resume:=true"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, (out.stdout[-2000:], out.stderr[-2000:])
    assert "truncated or corrupt" in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert ckpt.read_bytes() == b"PK\x03\x04 half a checkpoint"


@pytest.mark.ros
def test_runner_stops_the_graph_when_a_node_dies(small_params: Any, tmp_path: Path) -> None:
    """The runner CLI: all five nodes come up; SIGKILL one and the runner stops the others
    cleanly (SIGINT) and exits non-zero."""
    import contextlib
    import json
    import os
    import signal
    import time

    params = small_params("runner.yaml", {"/**/sac_agent": {"total_steps": 10**6}})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ros2_erl_vlm.runner", "--params-file", str(params),
                             "--run-dir", str(run_dir), "--task", "reach-v3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    nodes = ("sim_bridge", "camera_capture", "vlm_rater", "reward_learner", "sac_agent", "rating_viz")
    deadline = time.monotonic() + 90
    pids = {}
    while time.monotonic() < deadline and len(pids) < len(nodes) and proc.poll() is None:
        for n in nodes:
            with contextlib.suppress(OSError, ValueError, KeyError):
                pids[n] = json.loads((run_dir / n / "status.json").read_text())["pid"]
        time.sleep(0.3)
    assert len(pids) == len(nodes), proc.communicate(timeout=60)[0][-3000:]
    os.kill(pids["camera_capture"], signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out[-3000:]
    assert "camera_capture exited with code -9: stopping the graph" in out
    assert "unclean exits" not in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


@pytest.mark.ros
def test_a_node_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "ros2_erl_vlm.nodes.camera_capture", "--ros-args",
                             "-p", f'run_dir:="{tmp_path}"'], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "camera_capture" / "status.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-2000:]


_EXECUTOR_LEFT_BEHIND = """
import gc, os, signal
from rclpy.executors import Executor
from ros2_erl_vlm.ros.node_base import ErlNode, run_node

class Interrupted(ErlNode):
    def __init__(self):
        super().__init__("camera_capture")
        self.create_timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))

code = run_node(Interrupted, ["node"])
left = [o for o in gc.get_objects() if isinstance(o, Executor) and o._sigint_gc is not None]
print("exit", code, "executors holding a SIGINT guard:", len(left))
"""


@pytest.mark.ros
def test_run_node_releases_its_executor_before_rclpy_shutdown() -> None:
    """An executor left to the garbage collector destroys its SIGINT guard condition in an arbitrary
    order with the guard's own finaliser (they form a cycle) and prints an InvalidHandle traceback on
    a clean Ctrl-C (seen in CI). run_node shuts its executor down itself."""
    out = subprocess.run([sys.executable, "-c", _EXECUTOR_LEFT_BEHIND], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exit 0 executors holding a SIGINT guard: 0" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]


_SIGNALLED_MID_CALLBACK = """
import os, signal, sys, time
import rclpy.signals
from ros2_erl_vlm.ros.node_base import ErlNode, run_node

SIGNALS = [getattr(signal, s) for s in sys.argv[1].split(",")]
GAP_S = float(sys.argv[2])

class Busy(ErlNode):
    def __init__(self):
        super().__init__("camera_capture")
        self.create_timer(0.2, self.work)

    def work(self):
        print("rclpy handlers:", rclpy.signals.get_current_signal_handlers_options().name, flush=True)
        for s in SIGNALS:
            os.kill(os.getpid(), s)
            time.sleep(GAP_S)  # the signal is handled here, mid-callback
        print("callback finished", flush=True)
        time.sleep(2.0)

# Compared with what was there before run_node, not with Python's default: started under nohup or
# as a background job, SIGINT is ignored (SIG_IGN) from the start and must stay so afterwards.
before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
code = run_node(Busy, ["node"])
changed = [s.name for s, h in before.items() if signal.getsignal(s) is not h]
print("exit", code, "handlers not restored:", changed, flush=True)
"""


@pytest.mark.ros
@pytest.mark.parametrize("signals, gap_s, finishes", [
    ("SIGINT", 0.3, True), ("SIGTERM", 0.3, True),
    ("SIGINT,SIGTERM", 1.2, False),  # ros2 launch escalating
    ("SIGINT,SIGINT", 0.05, True),  # Ctrl-C under ros2 launch: the terminal's and launch's SIGINT
])
def test_a_signal_stops_the_node_after_its_callback_and_a_later_one_at_once(
        signals: str, gap_s: float, finishes: bool) -> None:
    """run_node owns SIGINT/SIGTERM: rclpy's handlers would shut the context down from a helper
    thread while the main thread tears the node down (a node segfaulted at exit in CI). The first
    signal lets the callback in progress finish; one a second or more later stops at once. Exit 0
    either way."""
    out = subprocess.run([sys.executable, "-c", _SIGNALLED_MID_CALLBACK, signals, str(gap_s)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rclpy handlers: NO" in out.stdout, out.stdout
    assert ("callback finished" in out.stdout) is finishes, out.stdout
    assert "exit 0 handlers not restored: []" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]


_SIGNALLED_DURING_TEARDOWN = """
import os, signal, time
from ros2_erl_vlm.ros.node_base import ErlNode, run_node

class SlowToClose(ErlNode):
    def __init__(self):
        super().__init__("camera_capture")
        self.create_timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT))

    def close(self):
        time.sleep(1.2)  # past the repeat window: this SIGTERM would otherwise stop the node at once
        os.kill(os.getpid(), signal.SIGTERM)  # ros2 launch escalating while the node tears down
        time.sleep(0.3)
        super().close()
        print("closed", flush=True)

print("exit", run_node(SlowToClose, ["node"]))
"""


@pytest.mark.ros
def test_a_signal_during_teardown_does_not_cut_it_short() -> None:
    out = subprocess.run([sys.executable, "-c", _SIGNALLED_DURING_TEARDOWN], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "closed\nexit 0" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
