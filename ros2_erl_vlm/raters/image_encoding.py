"""Frames (``(T, H, W, 3)`` uint8 RGB) to what VLM backends take: PIL images, data URLs."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

IMAGE_FORMATS = ("png", "jpeg")


def to_pil(frames: np.ndarray) -> list[Image.Image]:
    """One RGB PIL image per frame."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    return [Image.fromarray(np.ascontiguousarray(f)) for f in arr]


def encode_image(frame: np.ndarray, fmt: str = "png", quality: int = 90) -> bytes:
    """Encode one frame as PNG (lossless) or JPEG."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"image format must be one of {IMAGE_FORMATS}, got {fmt!r}")
    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(frame))
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def data_url(frame: np.ndarray, fmt: str = "png", quality: int = 90) -> str:
    """``data:image/<fmt>;base64,...`` for one frame."""
    payload = base64.b64encode(encode_image(frame, fmt, quality)).decode("ascii")
    return f"data:image/{fmt};base64,{payload}"
