"""``recorder``: every episode the robot side publishes, recorded to its own MCAP bag.

Subscribes to ``observation`` (erl_vlm/Observation, the bridge's QoS), the camera
(``camera/image_raw``, sensor_msgs/Image, JPEG-encoded here; or with ``camera.transport:
compressed`` ``camera/image_raw/compressed``, JPEG/PNG recorded as received; sensor-data QoS),
``intervention`` (std_msgs/Bool from teleop), ``safety_status`` (std_msgs/String JSON from
arm_bridge, transient-local) and ``success`` (std_msgs/Bool, a gamepad button: true marks the
episode a success, false a failure); services ``mark_success`` and ``mark_failure``
(std_srvs/Trigger). Writes ``<run_dir>/recorder/episodes/episode_<id>/`` (a rosbag2 directory with
one ``.mcap``; topics and layout: :mod:`ros2_erl_vlm.recording.mcap_episode`, docs/recording.md).

Which bag a message goes to, when a bag closes and which episode a mark belongs to is
:class:`ros2_erl_vlm.recording.session.RecordingSession` (ROS-free): episodes end with a truncated
or terminated observation (or the next episode's first one; a step 0 of an id already recorded,
a restarted bridge, starts a new ``episode_<id>_1`` bag); a mark applies to the newest episode until
the next one starts, or within ``mark_grace_s`` of an episode's end to the ended one (auto_reset
starts the next at once); an ended episode's bag closes ``close_delay_s`` after its end once it is
marked, superseded (and ``mark_grace_s`` passed) or ``mark_timeout_s`` passed; at shutdown every
open bag is closed, each on its own. An episode without a mark records ``success: false, marked:
false``. Frames pair with observations by stamp (``sync_tolerance_s``, auto: exact in simulation,
nearest within 50 ms otherwise); images that never pair are logged as an error every 50
observations. A bag that cannot be written or closed stops the node with exit code 2 (at shutdown
too: the other bags are closed first): nothing is dropped silently.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from erl_vlm.msg import Observation
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from ros2_erl_vlm.core.frames import FrameCodec
from ros2_erl_vlm.recording.mcap_episode import INTERVENTION as INTERVENTION_TOPIC
from ros2_erl_vlm.recording.mcap_episode import SUCCESS as SUCCESS_TOPIC
from ros2_erl_vlm.recording.mcap_episode import EpisodeBagError, StepRecord
from ros2_erl_vlm.recording.session import (
    ARM_SYNC_TOLERANCE_S,
    AUTO_SYNC_TOLERANCE,
    COUNTERS,
    BagsNotClosedError,
    RecordingSession,
    SessionConfig,
)
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.convert import f32, stamp_ns
from ros2_erl_vlm.ros.images import image_to_rgb
from ros2_erl_vlm.ros.node_base import ErlNode, run_node
from ros2_erl_vlm.ros.node_params import LAYOUT, RUN_DIR, STATUS_PERIOD, TASK
from ros2_erl_vlm.ros.params import ParamSpec

P = ParamSpec
MARK_SUCCESS_SERVICE = "mark_success"
MARK_FAILURE_SERVICE = "mark_failure"
#: Operator inputs (teleop's intervention flag, the success button): reliable, volatile, keep last 10.
OPERATOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                          reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
#: The recorder's parameters (declared here: the recorder is no node of the learning graph).
RECORDER = (
    TASK, LAYOUT, RUN_DIR, STATUS_PERIOD,
    P("camera.enabled", True, "record the camera's frames"),
    P("camera.transport", "raw", "raw: sensor_msgs/Image on camera/image_raw (JPEG-encoded for the "
      "bag); compressed: sensor_msgs/CompressedImage on camera/image_raw/compressed, recorded as "
      "received", choices=("raw", "compressed")),
    P("camera.jpeg_quality", 90, "JPEG quality of raw frames encoded for the bag", 1, 100),
    P("sync_tolerance_s", AUTO_SYNC_TOLERANCE, "largest image/observation stamp difference that still "
      f"pairs them (s; 0: equal stamps only; {AUTO_SYNC_TOLERANCE:g}: auto, 0 for simulator observations, "
      f"{ARM_SYNC_TOLERANCE_S:g} for an arm's)", AUTO_SYNC_TOLERANCE, 10.0),
    P("image_buffer", 30, "camera images kept for pairing", 1, 10_000),
    P("close_delay_s", 1.0, "an ended episode's bag stays open this long for frames in flight (s)",
      0.0, 600.0),
    P("mark_timeout_s", 30.0, "an ended episode waits this long for its success mark before it is "
      "closed unmarked, unless the next episode starts first (s)", 0.0, 86_400.0),
    P("mark_grace_s", 2.0, "a mark this soon after an episode ended, with the next one already running "
      "(auto_reset), goes to the ended episode (s; 0: always to the newest)", 0.0, 600.0),
)


class RecorderShutdownError(RuntimeError):
    """Bags left unclosed at shutdown: raised from :meth:`Recorder.close` so that ``run_node``
    exits 2 (the exit code is decided before ``close`` runs; an exception is what still counts)."""


class Recorder(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = COUNTERS

    def __init__(self) -> None:
        super().__init__("recorder", RECORDER)
        p = self.p
        self.session = RecordingSession(
            SessionConfig(self.require_run_dir() / "episodes", task=str(p["task"]), layout=str(p["layout"]),
                          namespace=self.get_namespace(), close_delay_s=float(p["close_delay_s"]),
                          mark_timeout_s=float(p["mark_timeout_s"]), mark_grace_s=float(p["mark_grace_s"]),
                          sync_tolerance_s=float(p["sync_tolerance_s"]), image_buffer=int(p["image_buffer"])),
            info=lambda line: self.get_logger().info(line), warn=self.warn,
            error=lambda line: self.get_logger().error(line))
        self.counters = self.session.counters
        self.codec = FrameCodec("jpeg", int(p["camera.jpeg_quality"]))
        self.create_subscription(Observation, qos.OBSERVATION, self.on_observation, qos.OBSERVATION_QOS)
        if p["camera.enabled"]:
            if p["camera.transport"] == "compressed":
                self.create_subscription(CompressedImage, qos.CAMERA_IMAGE_COMPRESSED, self.on_image,
                                         qos.IMAGE_QOS)
            else:
                self.create_subscription(Image, qos.CAMERA_IMAGE, self.on_image, qos.IMAGE_QOS)
        self.create_subscription(Bool, INTERVENTION_TOPIC, self.on_intervention, OPERATOR_QOS)
        self.create_subscription(String, qos.SAFETY_STATUS, self.on_safety_status, qos.SAFETY_STATUS_QOS)
        self.create_subscription(Bool, SUCCESS_TOPIC, self.on_success_button, OPERATOR_QOS)
        self.create_service(Trigger, MARK_SUCCESS_SERVICE, lambda _req, resp: self.on_mark(True, resp))
        self.create_service(Trigger, MARK_FAILURE_SERVICE, lambda _req, resp: self.on_mark(False, resp))
        self.wall_timer(0.1, lambda: self._guard("closing a bag", self.session.tick))
        self.get_logger().info(
            f"recording episodes to {self.session.cfg.out_dir}; mark each one with the "
            f"{MARK_SUCCESS_SERVICE} / {MARK_FAILURE_SERVICE} services or the {SUCCESS_TOPIC} topic "
            "(an episode left unmarked is recorded as a failure, marked: false)")

    def _guard(self, what: str, fn: Any, *args: Any) -> None:
        """Run a session call; a bag that cannot be written stops the node (exit 2)."""
        try:
            fn(*args)
        except (EpisodeBagError, OSError) as exc:
            self.get_logger().error(f"{what}: {exc}; stopping the recorder (exit 2)")
            self.finish(2)

    def on_observation(self, msg: Observation) -> None:
        """Record the step in its episode's bag."""
        rec = StepRecord(step=int(msg.step), state=f32(msg.state), action_taken=f32(msg.action_taken),
                         stamp_ns=stamp_ns(msg.header.stamp), terminated=bool(msg.terminated),
                         truncated=bool(msg.truncated), truncation_reason=str(msg.truncation_reason),
                         has_truth=bool(msg.has_truth), true_reward=float(msg.true_reward),
                         progress=float(msg.progress), success=bool(msg.success),
                         frame_id=str(msg.header.frame_id),
                         sim_state=np.array(msg.sim_state, dtype=np.float64).reshape(-1))
        self._guard(f"episode {msg.episode} step {msg.step}", self.session.observation,
                    int(msg.episode), rec)

    def on_image(self, msg: Image | CompressedImage) -> None:
        """Hand a camera image to the session (encoded once it is paired with a step)."""
        if isinstance(msg, CompressedImage):
            fmt = str(msg.format).lower()
            if not any(k in fmt for k in ("jpeg", "jpg", "png")) or not len(msg.data):
                self.session.counters["bad_images"] += 1
                self.warn(f"dropped a compressed image of format {msg.format!r} (recorded: jpeg, png)",
                          "bad_images")
                return

            def encode() -> tuple[bytes, str]:
                return bytes(msg.data), "png" if "png" in fmt else "jpeg"
        else:
            def encode() -> tuple[bytes, str]:
                data = self.codec.encode(image_to_rgb(msg))  # ImageError is a ValueError
                assert isinstance(data, bytes)
                return data, "jpeg"
        stamp = stamp_ns(msg.header.stamp)
        self._guard("a camera frame", self.session.image, stamp, encode, stamp, str(msg.header.frame_id))

    def on_intervention(self, msg: Bool) -> None:
        """Record teleop's intervention flag."""
        self._guard("an intervention flag", self.session.intervention, bool(msg.data))

    def on_safety_status(self, msg: String) -> None:
        """Record the bridge's safety status."""
        self._guard("a safety status", self.session.safety_status, str(msg.data))

    def on_mark(self, success: bool, resp: Trigger.Response) -> Trigger.Response:
        """Services ``mark_success`` / ``mark_failure``."""
        name = MARK_SUCCESS_SERVICE if success else MARK_FAILURE_SERVICE
        resp.success, resp.message = self.session.mark(success, f"service:{name}")
        return resp

    def on_success_button(self, msg: Bool) -> None:
        """Topic ``success``: true marks success, false failure."""
        self.session.mark(bool(msg.data), f"topic:{SUCCESS_TOPIC}")

    def status(self) -> dict[str, Any]:
        """The session's open and recorded bags."""
        return self.session.status()

    def close(self) -> None:
        """Close every open bag (each on its own), then write the last status.

        Raises:
            RecorderShutdownError: a bag could not be closed (``run_node`` then exits 2).
        """
        failed: BagsNotClosedError | None = None
        try:
            self.session.close_all()
        except BagsNotClosedError as exc:
            failed = exc
            for path, err in exc.failures:
                self.get_logger().error(f"closing {path} at shutdown: {err}")
        super().close()  # the last status lists the bags left unclosed ("not_closed")
        if failed is not None:
            self.finish(2)
            raise RecorderShutdownError(
                f"{len(failed.failures)} bag(s) left without metadata.yaml at shutdown "
                f"({', '.join(str(p) for p, _ in failed.failures)}); {len(failed.closed)} other(s) "
                "closed; exit 2")


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``recorder`` executable."""
    return run_node(Recorder, args)


if __name__ == "__main__":
    sys.exit(main())
