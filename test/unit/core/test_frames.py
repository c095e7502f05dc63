"""Frames for rating: crop/resize, compact storage with eviction, stamp pairing."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core.frames import FrameCodec, FrameStore, StampMatcher, StepKey, crop_resize


def _frame() -> np.ndarray:
    f = np.zeros((40, 60, 3), np.uint8)
    f[:, 10:50] = 200  # the centre square of the width
    return f


def test_crop_resize_takes_the_centre_square() -> None:
    out = crop_resize(_frame(), 16)
    assert out.shape == (16, 16, 3)
    assert out.min() == 200


def test_crop_resize_takes_a_given_box() -> None:
    f = _frame()
    f[5:15, 20:30] = 7
    assert crop_resize(f, 10, (20, 5, 10, 10)).max() == 7


def test_crop_resize_refuses_a_box_outside_the_frame() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        crop_resize(_frame(), 10, (55, 0, 10, 10))


def test_crop_resize_refuses_non_uint8_frames() -> None:
    with pytest.raises(ValueError, match="uint8"):
        crop_resize(_frame().astype(np.float32), 10)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "raw"])
def test_codecs_round_trip(fmt: str) -> None:
    rng = np.random.default_rng(0)
    f = np.repeat(np.repeat(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), 4, 0), 4, 1)
    c = FrameCodec(fmt, 95)
    out = c.decode(c.encode(f))
    assert out.shape == f.shape
    assert out.dtype == np.uint8
    tol = 40 if fmt == "jpeg" else 0
    assert np.abs(out.astype(int) - f.astype(int)).mean() <= tol
    if fmt == "png":
        assert np.array_equal(out, f)


FRAME = np.ones((10, 10, 3), np.uint8)  # 300 bytes


def test_store_evicts_the_oldest_episodes_by_count() -> None:
    s = FrameStore(FrameCodec("raw"), max_episodes=2, max_bytes=10_000)
    for ep in range(3):
        for t in range(2):
            s.put(ep, t, FRAME * ep)
    assert s.episodes == [1, 2]
    assert s.evicted_episodes == 1
    assert s.get(0, 0) is None
    assert s.get(2, 1).max() == 2
    assert s.get(2, 5) is None
    assert s.nbytes == 4 * 300


def test_store_evicts_the_oldest_episodes_then_frames_by_bytes() -> None:
    small = FrameStore(FrameCodec("raw"), max_episodes=10, max_bytes=700)
    for ep in range(3):
        small.put(ep, 0, FRAME)
        small.put(ep, 1, FRAME)
    assert small.episodes == [2]  # the episode being written goes last
    for t in range(2, 10):  # ... and only its oldest frames: it cannot grow past max_bytes
        small.put(2, t, FRAME)
    assert small.nbytes <= 700
    assert small.get(2, 9) is not None
    assert small.get(2, 0) is None
    assert small.evicted_frames == 8


def test_stamp_matcher_pairs_an_image_arriving_after_its_observation() -> None:
    m = StampMatcher(tolerance_ns=0)
    assert m.add_observation(StepKey(100, 0, 0)) == []
    pairs = m.add_image(100, "img100")
    assert [(k.step, img) for k, img in pairs] == [(0, "img100")]


def test_stamp_matcher_pairs_an_image_arriving_before_its_observation() -> None:
    m = StampMatcher(tolerance_ns=0)
    assert m.add_image(200, "img200") == []
    assert [img for _, img in m.add_observation(StepKey(200, 0, 1))] == ["img200"]


def test_stamp_matcher_counts_an_observation_whose_frame_was_lost() -> None:
    m = StampMatcher(tolerance_ns=0)
    m.add_observation(StepKey(100, 0, 0))
    m.add_image(100, "img100")
    m.add_image(200, "img200")
    m.add_observation(StepKey(200, 0, 1))
    m.add_observation(StepKey(300, 0, 2))
    m.add_image(400, "img400")  # the frame of 300 was lost
    assert m.unmatched == 1


def test_stamp_matcher_pairs_the_nearest_image_within_its_tolerance() -> None:
    t = StampMatcher(tolerance_ns=50)
    t.add_image(1000, "a")
    t.add_image(1070, "b")
    assert [img for _, img in t.add_observation(StepKey(1060, 1, 0))] == ["b"]
