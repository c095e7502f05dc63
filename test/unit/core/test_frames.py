"""Frames for rating: crop/resize, compact storage with eviction, stamp pairing."""

from __future__ import annotations

import numpy as np
import pytest

from ros2_erl_vlm.core.frames import FrameCodec, FrameStore, StampMatcher, StepKey, crop_resize


def test_crop_resize() -> None:
    f = np.zeros((40, 60, 3), np.uint8)
    f[:, 10:50] = 200  # the centre square of the width
    out = crop_resize(f, 16)
    assert out.shape == (16, 16, 3) and out.min() == 200
    f[5:15, 20:30] = 7
    assert crop_resize(f, 10, (20, 5, 10, 10)).max() == 7
    with pytest.raises(ValueError, match="does not fit"):
        crop_resize(f, 10, (55, 0, 10, 10))
    with pytest.raises(ValueError, match="uint8"):
        crop_resize(f.astype(np.float32), 10)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "raw"])
def test_codecs_round_trip(fmt: str) -> None:
    rng = np.random.default_rng(0)
    f = np.repeat(np.repeat(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), 4, 0), 4, 1)
    c = FrameCodec(fmt, 95)
    out = c.decode(c.encode(f))
    assert out.shape == f.shape and out.dtype == np.uint8
    tol = 40 if fmt == "jpeg" else 0
    assert np.abs(out.astype(int) - f.astype(int)).mean() <= tol
    if fmt == "png":
        assert np.array_equal(out, f)


def test_store_evicts_oldest_episodes_by_count_and_bytes() -> None:
    s = FrameStore(FrameCodec("raw"), max_episodes=2, max_bytes=10_000)
    frame = np.ones((10, 10, 3), np.uint8)  # 300 bytes
    for ep in range(3):
        for t in range(2):
            s.put(ep, t, frame * ep)
    assert s.episodes == [1, 2] and s.evicted_episodes == 1 and s.get(0, 0) is None
    assert s.get(2, 1).max() == 2 and s.get(2, 5) is None and s.nbytes == 4 * 300
    small = FrameStore(FrameCodec("raw"), max_episodes=10, max_bytes=700)
    for ep in range(3):
        small.put(ep, 0, frame)
        small.put(ep, 1, frame)
    assert small.episodes == [2]  # the episode being written goes last
    for t in range(2, 10):  # ... and only its oldest frames: it cannot grow past max_bytes
        small.put(2, t, frame)
    assert small.nbytes <= 700 and small.get(2, 9) is not None and small.get(2, 0) is None
    assert small.evicted_frames == 8


def test_stamp_matcher_exact_and_tolerance() -> None:
    m = StampMatcher(tolerance_ns=0)
    assert m.add_observation(StepKey(100, 0, 0)) == []
    pairs = m.add_image(100, "img100")
    assert [(k.step, img) for k, img in pairs] == [(0, "img100")]
    assert m.add_image(200, "img200") == []
    assert [img for _, img in m.add_observation(StepKey(200, 0, 1))] == ["img200"]
    m.add_observation(StepKey(300, 0, 2))
    m.add_image(400, "img400")  # the frame of 300 was lost
    assert m.unmatched == 1
    t = StampMatcher(tolerance_ns=50)
    t.add_image(1000, "a")
    t.add_image(1070, "b")
    assert [img for _, img in t.add_observation(StepKey(1060, 1, 0))] == ["b"]
