"""``sensor_msgs/Image`` <-> numpy without cv_bridge (not available for ROS 2 on PyPI).

:func:`image_to_rgb` reads ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` and ``mono8`` (rows may be
padded: ``step >= width * channels``) into an ``(H, W, 3)`` uint8 RGB array and raises
:class:`ImageError` naming the problem for anything else (unknown encoding, a ``step`` too small
for the width, data of the wrong length, an empty image). :func:`compressed_to_rgb` reads a
``sensor_msgs/CompressedImage`` (JPEG or PNG, as image_transport's ``compressed`` plugin and
camera drivers publish it) with OpenCV. :func:`rgb_to_image` builds an ``rgb8`` message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Supported encodings and their channel counts.
ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
MAX_SIDE = 16384


class ImageError(ValueError):
    """A malformed or unsupported image message."""


def image_to_rgb(msg: Any) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB copy of an Image message (see module docstring)."""
    enc = str(msg.encoding).lower()
    channels = ENCODINGS.get(enc)
    if channels is None:
        raise ImageError(f"unsupported encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise ImageError(f"bad image size {w}x{h}")
    if step < w * channels:
        raise ImageError(f"step {step} is smaller than width * channels = {w * channels} ({enc})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * h:
        raise ImageError(f"data has {data.size} bytes, step * height = {step * h}")
    px = data.reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if enc == "mono8":
        return np.repeat(px, 3, axis=2)
    if enc in ("bgr8", "bgra8"):
        return np.ascontiguousarray(px[..., 2::-1])
    return np.ascontiguousarray(px[..., :3])


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a CompressedImage (JPEG/PNG); ImageError when it does not decode."""
    import cv2

    fmt = str(msg.format).lower()
    if fmt and not any(k in fmt for k in ("jpeg", "jpg", "png")):
        raise ImageError(f"unsupported compressed format {msg.format!r} (supported: jpeg, png)")
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if data.size == 0:
        raise ImageError("empty compressed image")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ImageError(f"compressed image ({data.size} bytes, format {msg.format!r}) does not decode")
    h, w = bgr.shape[:2]
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise ImageError(f"bad image size {w}x{h}")
    return np.ascontiguousarray(bgr[..., ::-1])


def rgb_to_image(frame: np.ndarray, stamp: Any = None, frame_id: str = "") -> Any:
    """An ``rgb8`` Image message of an ``(H, W, 3)`` uint8 array."""
    from sensor_msgs.msg import Image

    f = np.ascontiguousarray(frame)
    if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
        raise ImageError(f"frame must be (H, W, 3) uint8, got {f.shape} {f.dtype}")
    msg = Image(height=int(f.shape[0]), width=int(f.shape[1]), encoding="rgb8", is_bigendian=0,
                step=int(f.shape[1] * 3), data=f.tobytes())
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    return msg
