"""Image messages <-> numpy without cv_bridge: encodings, padded rows, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.ros.images import ImageError, compressed_to_rgb, image_to_rgb, rgb_to_image

pytestmark = pytest.mark.ros


def _img(h: int, w: int, enc: str, step: int, data: bytes):
    from sensor_msgs.msg import Image

    return Image(height=h, width=w, encoding=enc, step=step, data=data)


def test_rgb_round_trip_and_stamp() -> None:
    from builtin_interfaces.msg import Time

    f = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = rgb_to_image(f, Time(sec=3, nanosec=4), "cam")
    assert (msg.encoding, msg.step, msg.header.frame_id, msg.header.stamp.sec) == ("rgb8", 21, "cam", 3)
    assert np.array_equal(image_to_rgb(msg), f)


F = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
ALPHA = np.full((4, 6, 1), 9, np.uint8)


@pytest.mark.parametrize(("enc", "step", "pixels"), [
    ("bgr8", 18, F[..., ::-1]),
    ("rgba8", 24, np.concatenate([F, ALPHA], axis=2)),
    ("bgra8", 24, np.concatenate([F[..., ::-1], ALPHA], axis=2)),
])
def test_colour_encodings_convert_to_rgb(enc: str, step: int, pixels: np.ndarray) -> None:
    assert np.array_equal(image_to_rgb(_img(4, 6, enc, step, pixels.tobytes())), F)


def test_mono_becomes_grey_rgb() -> None:
    mono = F[..., 0]
    out = image_to_rgb(_img(4, 6, "mono8", 6, mono.tobytes()))
    assert out.shape == (4, 6, 3)
    assert np.array_equal(out[..., 2], mono)


def test_padded_rows_are_cut_to_the_width() -> None:
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :18] = F.reshape(4, 18)
    assert np.array_equal(image_to_rgb(_img(4, 6, "rgb8", 20, padded.tobytes())), F)


@pytest.mark.parametrize(("h", "w", "enc", "step", "n", "match"), [
    (4, 6, "yuv422", 12, 48, "unsupported encoding"),
    (4, 6, "32FC1", 24, 96, "unsupported encoding"),
    (4, 6, "rgb8", 17, 68, "step 17 is smaller"),
    (4, 6, "rgb8", 18, 70, "data has 70 bytes"),
    (0, 6, "rgb8", 18, 0, "bad image size"),
])
def test_malformed_images_raise_clear_errors(h, w, enc, step, n, match) -> None:
    with pytest.raises(ImageError, match=match):
        image_to_rgb(_img(h, w, enc, step, bytes(n)))


def test_rgb_to_image_rejects_non_rgb() -> None:
    with pytest.raises(ImageError, match="uint8"):
        rgb_to_image(np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("ext, fmt", [(".png", "png"), (".jpg", "rgb8; jpeg compressed bgr8"), (".png", "")])
def test_compressed_images_decode_to_rgb(ext: str, fmt: str) -> None:
    import cv2
    from sensor_msgs.msg import CompressedImage

    rgb = np.zeros((12, 16, 3), np.uint8)
    rgb[..., 0] = 200  # red
    ok, buf = cv2.imencode(ext, rgb[..., ::-1])
    assert ok
    out = compressed_to_rgb(CompressedImage(format=fmt, data=buf.tobytes()))
    assert out.shape == (12, 16, 3)
    assert abs(int(out[..., 0].mean()) - 200) <= 3 and out[..., 2].max() <= 5  # red stays red


@pytest.mark.parametrize("fmt, data, match", [
    ("jpeg", b"", "empty"), ("jpeg", b"not an image at all", "does not decode"),
    ("theora", b"\x00" * 10, "unsupported compressed format"),
])
def test_bad_compressed_images_raise_clear_errors(fmt: str, data: bytes, match: str) -> None:
    from sensor_msgs.msg import CompressedImage

    with pytest.raises(ImageError, match=match):
        compressed_to_rgb(CompressedImage(format=fmt, data=data))
