"""``camera_capture``: camera frames aligned to env steps, at the rating resolution, kept compact.

Subscribes to ``camera/image_raw`` (any sensor_msgs/Image camera topic: remap it), or with
``transport: compressed`` to ``camera/image_raw/compressed`` (sensor_msgs/CompressedImage, JPEG or
PNG: image_transport's sibling topic of realsense2_camera, usb_cam), sensor-data QoS, and to
``observation``; pairs each observation with the image of the same stamp (or the nearest within
``sync_tolerance_s`` for a real camera), crops/resizes it to ``image_size`` and stores it
(JPEG/PNG/raw) for the last ``max_episodes`` episodes; publishes it on ``camera/frames``
(erl_vlm/StepFrame with episode and step).

Rating requests pass through here: ``rating_requests`` (from reward_learner, without frames) come
out on ``rating_requests/framed`` with the segment's frames attached. A request whose frames are not
stored (unknown or evicted episode) is counted and forwarded without frames: a VLM rater then
abstains with a reason, the oracle still rates from simulator truth.

Malformed images (wrong size, step or encoding) are counted and dropped.
"""

from __future__ import annotations

import sys
from typing import Any

from erl_vlm.msg import Observation, RatingRequest, StepFrame
from sensor_msgs.msg import CompressedImage, Image

from ros2_erl_vlm.core.frames import FrameCodec, FrameStore, StampMatcher, StepKey, crop_resize
from ros2_erl_vlm.ros import qos
from ros2_erl_vlm.ros.convert import stamp_ns
from ros2_erl_vlm.ros.images import ImageError, compressed_to_rgb, image_to_rgb, rgb_to_image
from ros2_erl_vlm.ros.node_base import ErlNode, run_node


class CameraCapture(ErlNode):
    """The node (see module docstring)."""

    COUNTERS = ("images", "bad_images", "frames_stored", "requests_framed", "requests_unknown_episode",
                "requests_missing_frames")

    def __init__(self) -> None:
        super().__init__("camera_capture")
        p = self.p
        crop = [int(v) for v in p["crop"]]
        self.crop = tuple(crop) if any(crop) else None
        if self.crop is not None and (crop[2] <= 0 or crop[3] <= 0):
            raise ValueError("parameter 'crop': width and height must be positive (or all zero)")
        self.size = int(p["image_size"])
        self.store = FrameStore(FrameCodec(p["storage"], int(p["jpeg_quality"])),
                                int(p["max_episodes"]), int(float(p["max_megabytes"]) * 2**20))
        self.matcher = StampMatcher(int(float(p["sync_tolerance_s"]) * 1e9), int(p["image_buffer"]),
                                    max_pending=1000)
        self.pub_frames = (self.create_publisher(StepFrame, qos.FRAMES, qos.FRAMES_QOS)
                           if p["publish_frames"] else None)
        self.pub_requests = self.create_publisher(RatingRequest, qos.RATING_REQUESTS_FRAMED, qos.RATING_QOS)
        if p["transport"] == "compressed":
            self.decode = compressed_to_rgb
            self.create_subscription(CompressedImage, qos.CAMERA_IMAGE_COMPRESSED, self.on_image,
                                     qos.IMAGE_QOS)
        else:
            self.decode = image_to_rgb
            self.create_subscription(Image, qos.CAMERA_IMAGE, self.on_image, qos.IMAGE_QOS)
        self.create_subscription(Observation, qos.OBSERVATION, self.on_observation, qos.OBSERVATION_QOS)
        self.create_subscription(RatingRequest, qos.RATING_REQUESTS, self.on_request, qos.RATING_QOS)

    def on_image(self, msg: Image | CompressedImage) -> None:
        """Decode (validating it) and buffer a camera image."""
        try:
            rgb = self.decode(msg)
        except ImageError as exc:
            self.count("bad_images", f"dropped a camera image: {exc}")
            return
        self.counters["images"] += 1
        self._store_pairs(self.matcher.add_image(stamp_ns(msg.header.stamp), (msg.header, rgb)))

    def on_observation(self, msg: Observation) -> None:
        """Queue the step for pairing with its image."""
        key = StepKey(stamp_ns(msg.header.stamp), int(msg.episode), int(msg.step))
        self._store_pairs(self.matcher.add_observation(key))

    def _store_pairs(self, pairs: list[tuple[StepKey, Any]]) -> None:
        for key, (header, rgb) in pairs:
            try:
                frame = crop_resize(rgb, self.size, self.crop)
            except ValueError as exc:
                self.count("bad_images", f"cannot use a camera image: {exc}")
                continue
            self.store.put(key.episode, key.step, frame)
            self.counters["frames_stored"] += 1
            if self.pub_frames is not None and self.pub_frames.get_subscription_count() > 0:
                image = rgb_to_image(frame, header.stamp, header.frame_id)
                out = StepFrame(header=header, episode=key.episode, step=key.step, image=image)
                self.pub_frames.publish(out)

    def on_request(self, msg: RatingRequest) -> None:
        """Attach the segment's frames and pass the request on to the rater."""
        if not self.store.has_episode(int(msg.episode)):
            self.count("requests_unknown_episode",
                       f"request {msg.request_id}: no frames of episode {msg.episode}; "
                       "forwarded without frames")
            msg.frames = []
        else:
            frames = [self.store.get(int(msg.episode), int(s)) for s in msg.steps]
            if any(f is None for f in frames):
                self.count("requests_missing_frames",
                           f"request {msg.request_id}: frames missing; forwarded without frames")
                msg.frames = []
            else:
                msg.frames = [rgb_to_image(f, msg.header.stamp) for f in frames]
                self.counters["requests_framed"] += 1
        self.pub_requests.publish(msg)

    def status(self) -> dict[str, Any]:
        """Store size and pairing stats."""
        return {"frames": len(self.store), "megabytes": self.store.nbytes / 2**20,
                "episodes": self.store.episodes[-3:], "evicted_episodes": self.store.evicted_episodes,
                "unmatched_observations": self.matcher.unmatched}


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``camera_capture`` executable."""
    return run_node(CameraCapture, args)


if __name__ == "__main__":
    sys.exit(main())
