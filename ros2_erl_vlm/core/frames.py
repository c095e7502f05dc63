"""Camera frames for rating: align to env steps, crop/resize to the rating resolution, store compactly.

ROS-free helpers of the ``camera_capture`` node:

* :func:`crop_resize`: optional crop box, then a centre crop to a square and a resize to ``size``;
* :class:`FrameCodec`: JPEG, PNG or raw storage of RGB frames;
* :class:`StampMatcher`: pairs step observations with camera images by timestamp (exact under
  lock-step sim time, nearest within a tolerance for a real camera), with bounded buffers;
* :class:`FrameStore`: frames of the most recent episodes, bounded by episodes and bytes.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMATS = ("jpeg", "png", "raw")


def crop_resize(frame: np.ndarray, size: int, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(size, size, 3)`` uint8.

    ``crop = (x, y, w, h)`` in pixels is applied first (it must lie inside the frame); then the
    largest centred square is kept and resized (area interpolation when shrinking).
    """
    import cv2

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if crop is not None:
        x, y, w, h = (int(v) for v in crop)
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > frame.shape[1] or y + h > frame.shape[0]:
            raise ValueError(f"crop box {crop} does not fit a {frame.shape[1]}x{frame.shape[0]} frame")
        frame = frame[y : y + h, x : x + w]
    h, w = frame.shape[:2]
    if h != w:
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        frame = frame[y0 : y0 + s, x0 : x0 + s]
    if frame.shape[0] != size:
        interp = cv2.INTER_AREA if frame.shape[0] > size else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (size, size), interpolation=interp)
    return np.ascontiguousarray(frame)


@dataclass(frozen=True)
class FrameCodec:
    """Compact storage of RGB frames: ``jpeg`` (lossy, quality 1-100), ``png`` or ``raw``."""

    fmt: str = "jpeg"
    quality: int = 90

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"frame format must be one of {FORMATS}, got {self.fmt!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"jpeg quality must be in [1, 100], got {self.quality}")

    def encode(self, frame: np.ndarray) -> bytes | np.ndarray:
        """Encoded frame (raw keeps the array)."""
        if self.fmt == "raw":
            return np.array(frame, dtype=np.uint8, copy=True)
        import cv2

        bgr = np.ascontiguousarray(frame[..., ::-1])
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality] if self.fmt == "jpeg" else []
        ok, buf = cv2.imencode(".jpg" if self.fmt == "jpeg" else ".png", bgr, params)
        if not ok:
            raise ValueError("frame encoding failed")
        return buf.tobytes()

    def decode(self, data: bytes | np.ndarray) -> np.ndarray:
        """RGB ``(H, W, 3)`` uint8 from :meth:`encode` output."""
        if isinstance(data, np.ndarray):
            return data
        import cv2

        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError("cannot decode stored frame")
        return np.ascontiguousarray(bgr[..., ::-1])

    @staticmethod
    def nbytes(data: bytes | np.ndarray) -> int:
        """Stored size of one encoded frame."""
        return int(data.nbytes if isinstance(data, np.ndarray) else len(data))


class FrameStore:
    """Encoded frames by ``(episode, step)`` for the most recent episodes.

    Oldest episodes are evicted beyond ``max_episodes`` or ``max_bytes``; the episode being
    written is evicted last, and only its oldest frames (an episode that never ends cannot grow
    past ``max_bytes``).
    """

    def __init__(self, codec: FrameCodec, max_episodes: int = 100, max_bytes: int = 1 << 30) -> None:
        if max_episodes <= 0 or max_bytes <= 0:
            raise ValueError("max_episodes and max_bytes must be positive")
        self.codec, self.max_episodes, self.max_bytes = codec, int(max_episodes), int(max_bytes)
        self._eps: OrderedDict[int, dict[int, Any]] = OrderedDict()
        self._bytes = 0
        self.evicted_episodes = 0
        self.evicted_frames = 0

    def __len__(self) -> int:
        return sum(len(v) for v in self._eps.values())

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self._bytes

    @property
    def episodes(self) -> list[int]:
        """Stored episode ids, oldest first."""
        return list(self._eps)

    def put(self, episode: int, step: int, frame: np.ndarray) -> None:
        """Store one frame (replacing an older frame of the same step)."""
        data = self.codec.encode(frame)
        ep = self._eps.get(int(episode))
        if ep is None:
            ep = self._eps[int(episode)] = {}
        old = ep.get(int(step))
        if old is not None:
            self._bytes -= self.codec.nbytes(old)
        ep[int(step)] = data
        self._bytes += self.codec.nbytes(data)
        self._evict(keep=int(episode))

    def _evict(self, keep: int) -> None:
        while len(self._eps) > 1 and (len(self._eps) > self.max_episodes or self._bytes > self.max_bytes):
            oldest = next(iter(self._eps))
            if oldest == keep:
                break
            for data in self._eps.pop(oldest).values():
                self._bytes -= self.codec.nbytes(data)
            self.evicted_episodes += 1
        current = self._eps.get(keep)
        while current is not None and len(current) > 1 and self._bytes > self.max_bytes:
            self._bytes -= self.codec.nbytes(current.pop(next(iter(current))))
            self.evicted_frames += 1

    def has_episode(self, episode: int) -> bool:
        """Whether any frame of ``episode`` is stored."""
        return int(episode) in self._eps

    def get(self, episode: int, step: int) -> np.ndarray | None:
        """The decoded frame, or None when it is not stored."""
        ep = self._eps.get(int(episode))
        if ep is None or int(step) not in ep:
            return None
        return self.codec.decode(ep[int(step)])


@dataclass(frozen=True)
class StepKey:
    """An observation waiting for its frame."""

    stamp_ns: int
    episode: int
    step: int


class StampMatcher:
    """Pairs observations ``(stamp, episode, step)`` with images ``(stamp, image)``.

    Each observation takes the image nearest in time if it is within ``tolerance_ns`` (0: exact
    stamps, the lock-step case). Both buffers are bounded; an observation is given up once an
    image newer than ``stamp + tolerance`` arrived without a match, or when pushed out of its
    buffer (counted in :attr:`unmatched`).
    """

    def __init__(self, tolerance_ns: int = 0, max_images: int = 30, max_pending: int = 100) -> None:
        if tolerance_ns < 0 or max_images <= 0 or max_pending <= 0:
            raise ValueError("tolerance must be >= 0 and buffer sizes positive")
        self.tolerance_ns = int(tolerance_ns)
        self._images: deque[tuple[int, Any]] = deque(maxlen=max_images)
        self._pending: deque[StepKey] = deque()
        self.max_pending = int(max_pending)
        self.unmatched = 0

    def _best(self, key: StepKey) -> Any | None:
        best, best_d = None, None
        for stamp, img in self._images:
            d = abs(stamp - key.stamp_ns)
            if d <= self.tolerance_ns and (best_d is None or d < best_d):
                best, best_d = img, d
        return best

    def add_observation(self, key: StepKey) -> list[tuple[StepKey, Any]]:
        """Queue an observation; returns the pairs made now."""
        self._pending.append(key)
        while len(self._pending) > self.max_pending:
            self._pending.popleft()
            self.unmatched += 1
        return self._match()

    def add_image(self, stamp_ns: int, image: Any) -> list[tuple[StepKey, Any]]:
        """Buffer an image; returns the pairs made now."""
        self._images.append((int(stamp_ns), image))
        return self._match()

    def _match(self) -> list[tuple[StepKey, Any]]:
        out, keep = [], deque()
        newest = self._images[-1][0] if self._images else None
        for key in self._pending:
            img = self._best(key)
            if img is not None:
                out.append((key, img))
            elif newest is not None and newest > key.stamp_ns + self.tolerance_ns:
                self.unmatched += 1  # no image will come for it any more
            else:
                keep.append(key)
        self._pending = keep
        return out
