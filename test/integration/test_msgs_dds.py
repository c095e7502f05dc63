"""Every erl_vlm message crosses real DDS between two processes with every field intact.

A publisher runs in a separate Python process (this file run as a script) and publishes fully
populated samples of each message type on topics unique to the test; this process subscribes and
compares each received message field by field with the same samples built locally.

Run the publisher by hand: ``python test/integration/test_msgs_dds.py publish /some_prefix 30``.
"""

from __future__ import annotations

import array
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MSG_TYPES = (
    "Observation",
    "Action",
    "StepFrame",
    "RatingRequest",
    "Rating",
    "RewardModelUpdate",
    "EpisodeSummary",
)
PUBLISH_PERIOD_S = 0.2
RECEIVE_TIMEOUT_S = 60.0


# ------------------------------------------------------------------------------------------------
# Samples (built identically in both processes)
# ------------------------------------------------------------------------------------------------
def _header(frame_id: str, sec: int = 1_700_000_123, nanosec: int = 456_789_012) -> Any:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _image(height: int, width: int, seed: int) -> Any:
    from sensor_msgs.msg import Image

    n = height * width * 3
    data = bytes((i * 7 + seed * 31) % 251 for i in range(min(n, 4096))) * (n // 4096 + 1)
    return Image(
        header=_header(f"camera_{seed}", sec=1_700_000_000 + seed, nanosec=1_000 + seed),
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=1,
        step=width * 3,
        data=data[:n],
    )


def _floats(n: int, scale: float = 0.25, offset: float = -2.0) -> list[float]:
    """Values exactly representable in float32, all non-zero."""
    return [offset + scale * i + (0.125 if offset + scale * i == 0 else 0.0) for i in range(n)]


def build_samples() -> dict[str, list[Any]]:
    """Sample messages per type; the first of each type has every field set to a non-default value."""
    from erl_vlm.msg import (
        Action,
        EpisodeSummary,
        Observation,
        Rating,
        RatingRequest,
        RewardModelUpdate,
        StepFrame,
    )

    big_episode = 2**40 + 7  # needs all 64 bits
    samples: dict[str, list[Any]] = {
        "Observation": [
            Observation(
                header=_header("Observation-0"),
                episode=big_episode,
                step=499,
                state=_floats(39),
                action_taken=[0.25, -0.5, 0.75, -1.0],
                terminated=True,
                truncated=True,
                truncation_reason="time_limit",
                has_truth=True,
                true_reward=4.5,
                progress=0.75,
                success=True,
                # float64 values a float32 would change: the MuJoCo state must arrive bit for bit.
                sim_state=[math.pi, -1e-300, 0.1, 123456789.123456789, *_floats(34)],
            )
        ],
        "Action": [
            Action(
                header=_header("Action-0"),
                episode=big_episode,
                step=12,
                action=[-1.0, 0.5, 0.25, 1.0],
            )
        ],
        "StepFrame": [
            StepFrame(header=_header("StepFrame-0"), episode=big_episode, step=3, image=_image(84, 84, 1)),
            # A full VGA frame: several DDS fragments.
            StepFrame(header=_header("StepFrame-1"), episode=1, step=4, image=_image(480, 640, 2)),
        ],
        "RatingRequest": [
            RatingRequest(
                header=_header("RatingRequest-0"),
                request_id="req-0-αβγ",
                episode=big_episode,
                steps=[10, 11, 4_000_000_000],
                frames=[_image(32, 48, 3), _image(32, 48, 4), _image(32, 48, 5)],
                states=_floats(12, 0.5),
                state_dim=4,
                instruction="open the drawer",
                class_names=["bad", "average", "good"],
                has_truth=True,
                true_rewards=[0.5, 1.0, 1.5],
                successes=[True, False, True],
                progress=[0.25, 0.5, 0.75],
            )
        ],
        "Rating": [
            Rating(
                header=_header("Rating-0"),
                request_id="req-0-αβγ",
                episode=big_episode,
                steps=[10, 11, 4_000_000_000],
                label=2,
                num_classes=3,
                probabilities=[0.125, 0.25, 0.625],
                rationale="The drawer is fully open — good.",
                abstain_reason="(not abstained)",
                backend="oracle",
                latency_s=1.5,
                attempts=2,
            ),
            Rating(
                header=_header("Rating-1"),
                request_id="req-1",
                episode=5,
                steps=[7],
                label=Rating.ABSTAINED,
                num_classes=3,
                abstain_reason="backend timeout",
                backend="http:test",
                latency_s=30.0,
                attempts=3,
            ),
        ],
        "RewardModelUpdate": [
            RewardModelUpdate(
                header=_header("RewardModelUpdate-0"),
                version=3,
                input_kind="state",
                path="/tmp/reward_model_v3.pt",
                sha256="0123456789abcdef" * 4,
                weights=bytes(range(1, 256)) * 40,
                num_ratings=150,
                train_accuracy=0.875,
            )
        ],
        "EpisodeSummary": [
            EpisodeSummary(
                header=_header("EpisodeSummary-0"),
                episode=big_episode,
                length=500,
                true_return=123.5,
                success=True,
                learned_return=-7.25,
            )
        ],
    }
    return samples


def sample_key(msg: Any) -> str:
    """Key identifying a sample: its header frame_id."""
    return msg.header.frame_id


# ------------------------------------------------------------------------------------------------
# Field-by-field comparison
# ------------------------------------------------------------------------------------------------
def _is_msg(value: Any) -> bool:
    return hasattr(type(value), "get_fields_and_field_types")


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """(path, value) for every non-message field, recursing into nested messages and arrays."""
    if _is_msg(value):
        out: list[tuple[str, Any]] = []
        for name in type(value).get_fields_and_field_types():
            out += _leaves(getattr(value, name), f"{path}.{name}" if path else name)
        return out
    if isinstance(value, (list, tuple)) and value and _is_msg(value[0]):
        out = []
        for i, item in enumerate(value):
            out += _leaves(item, f"{path}[{i}]")
        return out
    return [(path, value)]


def _plain(value: Any) -> Any:
    """Comparable form of a field value (arrays, numpy arrays and bytes become lists)."""
    if isinstance(value, (bytes, bytearray, array.array)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def diff_messages(expected: Any, received: Any) -> list[str]:
    """Human-readable differences between two messages (empty when equal)."""
    exp, got = dict(_leaves(expected)), dict(_leaves(received))
    problems = [f"missing field {p}" for p in exp if p not in got]
    problems += [f"unexpected field {p}" for p in got if p not in exp]
    for path, value in exp.items():
        if path not in got:
            continue
        a, b = _plain(value), _plain(got[path])
        if a != b:
            problems.append(f"{path}: sent {str(a)[:80]!r}, received {str(b)[:80]!r}")
    return problems


def unset_fields(msg: Any) -> list[str]:
    """Fields of ``msg`` still at their default value (a fully populated sample has none)."""
    default = dict(_leaves(type(msg)()))
    out = []
    for path, value in _leaves(msg):
        plain = _plain(value)
        if plain in ([], "", 0, 0.0, False) or plain == _plain(default.get(path)):
            out.append(path)
    return out


# ------------------------------------------------------------------------------------------------
# Publisher process
# ------------------------------------------------------------------------------------------------
def _qos() -> Any:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)


def publish(prefix: str, duration_s: float) -> int:
    """Publish every sample on ``<prefix>/<Type>`` periodically for ``duration_s`` seconds."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node(f"erl_msgs_publisher_{os.getpid()}")
    samples = build_samples()
    pubs = {
        name: node.create_publisher(type(msgs[0]), f"{prefix}/{name}", _qos())
        for name, msgs in samples.items()
    }
    print("publisher ready", flush=True)
    deadline = time.monotonic() + duration_s
    try:
        while time.monotonic() < deadline and rclpy.ok():
            for name, msgs in samples.items():
                for msg in msgs:
                    pubs[name].publish(msg)
            rclpy.spin_once(node, timeout_sec=PUBLISH_PERIOD_S)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------
def test_every_message_type_has_a_sample() -> None:
    """A new file in msg/ must get a sample here."""
    in_repo = sorted(p.stem for p in (REPO / "msg").glob("*.msg"))
    assert in_repo == sorted(MSG_TYPES)
    assert sorted(build_samples()) == sorted(MSG_TYPES)


def test_samples_are_fully_populated() -> None:
    """The first sample of each type sets every field (so a lost field cannot go unnoticed)."""
    for name, msgs in build_samples().items():
        assert unset_fields(msgs[0]) == [], name


def test_rating_abstained_constant() -> None:
    """Rating.ABSTAINED is the int8 constant -1."""
    from erl_vlm.msg import Rating

    assert Rating.ABSTAINED == -1
    assert Rating(label=Rating.ABSTAINED).label == -1


@pytest.mark.ros
@pytest.mark.integration
def test_messages_round_trip_between_processes(tmp_path: Path) -> None:
    """Each sample published by another process arrives here over DDS with every field intact."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    prefix = f"/erl_vlm_test_{uuid.uuid4().hex[:12]}"
    expected = {sample_key(m): m for msgs in build_samples().values() for m in msgs}
    received: dict[str, Any] = {}

    stderr_path = tmp_path / "publisher.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, __file__, "publish", prefix, str(RECEIVE_TIMEOUT_S + 30)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=os.environ.copy(),
        )
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("erl_msgs_subscriber", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        def on_message(msg: Any) -> None:
            received.setdefault(sample_key(msg), msg)

        for name in MSG_TYPES:
            msg_type = type(build_samples()[name][0])
            node.create_subscription(msg_type, f"{prefix}/{name}", on_message, _qos())

        deadline = time.monotonic() + RECEIVE_TIMEOUT_S
        while set(received) != set(expected) and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"publisher exited early ({proc.returncode}):\n{stderr_path.read_text()}")
            executor.spin_once(timeout_sec=0.1)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    missing = sorted(set(expected) - set(received))
    assert not missing, f"never received {missing}; publisher stderr:\n{stderr_path.read_text()}"
    problems = {k: diff_messages(expected[k], received[k]) for k in expected}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems
    for key, msg in expected.items():
        assert received[key] == msg, key
    # Spot checks that are easy to get wrong in transport/type support.
    rating = received["Rating-1"]
    assert rating.label == -1
    assert math.isclose(rating.latency_s, 30.0)
    assert received["Observation-0"].episode == 2**40 + 7
    assert list(received["Observation-0"].sim_state[:4]) == [math.pi, -1e-300, 0.1, 123456789.123456789]
    assert len(received["StepFrame-1"].image.data) == 480 * 640 * 3


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "publish":
        sys.exit(publish(sys.argv[2], float(sys.argv[3])))
    print(__doc__)
    sys.exit(2)
