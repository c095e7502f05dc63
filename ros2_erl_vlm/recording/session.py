"""The recorder node's bookkeeping, ROS-free: which bag a message goes to, when a bag closes, which
episode a success mark belongs to.

:class:`RecordingSession` is fed plain values (the node converts messages) and writes through
:class:`~ros2_erl_vlm.recording.mcap_episode.EpisodeWriter`, one bag per episode under
``out_dir``. Rules (docs/recording.md):

* an episode starts with its first observation; it ends with an observation that is truncated or
  terminated, or when the next episode's first observation arrives (``next_episode``);
* re-published observations (same episode and step) are recorded once; observations of an episode
  whose bag is closed are not recorded (counted);
* a camera image is paired with a step by stamp (:class:`~ros2_erl_vlm.core.frames.StampMatcher`:
  exact, or nearest within the tolerance) and encoded only then;
* intervention flags and safety statuses go to the newest open episode, at its latest step;
* a mark applies to the newest episode, while it runs and after it ended until the next one starts;
  the last mark wins;
* an ended episode's bag closes ``close_delay_s`` after its end (frames in flight) once it is
  marked, the next episode started, or ``mark_timeout_s`` passed; :meth:`close_all` closes the rest.
  An unmarked episode is recorded ``success: false, marked: false``;
* a bag name in use gets a suffix (``episode_000003_1``): nothing recorded is overwritten.

Write failures (:class:`~ros2_erl_vlm.recording.mcap_episode.EpisodeBagError`, ``OSError``)
propagate: the caller decides (the node stops with exit code 2).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.frames import StampMatcher, StepKey
from ros2_erl_vlm.recording.mcap_episode import EpisodeWriter, StepRecord, episode_dir_name

#: An image waiting for its step: called once paired, it returns ``(bytes, "jpeg" | "png")``.
Encoder = Callable[[], tuple[bytes, str]]

COUNTERS = ("observations", "duplicate_observations", "stale_observations", "missing_steps",
            "images", "frames", "bad_images", "late_frames", "interventions", "safety_status",
            "unrecorded_messages", "marks", "marks_refused", "episodes_recorded", "episodes_unmarked",
            "name_collisions")


@dataclass
class SessionConfig:
    """Where and how a session records (the recorder node's parameters)."""

    out_dir: Path
    task: str = ""
    layout: str = ""
    namespace: str = "/"
    close_delay_s: float = 1.0
    mark_timeout_s: float = 30.0
    sync_tolerance_s: float = 0.0
    image_buffer: int = 30


@dataclass
class OpenEpisode:
    """An episode whose bag is open."""

    writer: EpisodeWriter
    episode: int
    ended_at: float | None = None
    end_reason: str = ""
    mark: bool | None = None
    mark_source: str = ""
    superseded: bool = False


@dataclass
class _Pending:
    encode: Encoder
    header_stamp_ns: int
    frame_id: str


@dataclass
class RecordingSession:
    """Episodes in, one closed bag per episode out (see module docstring).

    Args:
        cfg: the settings.
        clock: monotonic seconds (tests pass a fake).
        info: receives a line per opened/closed bag and per mark.
        warn: receives ``(message, counter key)`` for each counted problem.
    """

    cfg: SessionConfig
    clock: Callable[[], float] = time.monotonic
    info: Callable[[str], None] = lambda _msg: None
    warn: Callable[[str, str], None] = lambda _msg, _key: None
    counters: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(COUNTERS, 0)))
    current: OpenEpisode | None = None
    ending: list[OpenEpisode] = field(default_factory=list)
    closed_episodes: set[int] = field(default_factory=set)
    recorded: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cfg.out_dir = Path(self.cfg.out_dir)
        self.cfg.out_dir.mkdir(parents=True, exist_ok=True)
        self.matcher = StampMatcher(int(self.cfg.sync_tolerance_s * 1e9), int(self.cfg.image_buffer),
                                    max_pending=1000)

    def _count(self, key: str, message: str) -> None:
        self.counters[key] += 1
        self.warn(message, key)

    # -- episodes -------------------------------------------------------------------------------
    def _bag_path(self, episode: int) -> Path:
        path = self.cfg.out_dir / episode_dir_name(episode)
        n = 0
        while path.exists():
            n += 1
            path = self.cfg.out_dir / f"{episode_dir_name(episode)}_{n}"
        if n:
            self._count("name_collisions", f"episode {episode} was recorded before in "
                        f"{self.cfg.out_dir}; recording it as {path.name}")
        return path

    def slot(self, episode: int) -> OpenEpisode | None:
        """The open bag of ``episode``, if any."""
        if self.current is not None and self.current.episode == episode:
            return self.current
        return next((s for s in self.ending if s.episode == episode), None)

    def open_slots(self) -> list[OpenEpisode]:
        """Every open bag, oldest first."""
        return [*self.ending, *([self.current] if self.current is not None else [])]

    def observation(self, episode: int, rec: StepRecord) -> bool:
        """Record one observation of ``episode``; returns whether it was written."""
        slot = self.slot(episode)
        if slot is None:
            if episode in self.closed_episodes:
                self._count("stale_observations", f"observation of episode {episode} step {rec.step} "
                            "after its bag closed: not recorded")
                return False
            if self.current is not None:
                self._supersede(self.current)
            writer = EpisodeWriter(self._bag_path(episode), episode, task=self.cfg.task,
                                   layout=self.cfg.layout, source="recorder", namespace=self.cfg.namespace)
            slot = self.current = OpenEpisode(writer, episode)
            self.info(f"episode {episode}: recording to {writer.path}")
        last = slot.writer.last_step
        if last is not None and rec.step <= last:
            self.counters["duplicate_observations"] += 1  # re-published by a waiting bridge
            return False
        if rec.step != (0 if last is None else last + 1):
            self._count("missing_steps", f"episode {episode}: step {rec.step} follows step {last} "
                        "(the export refuses an episode with gaps)")
        slot.writer.write_step(rec)
        self.counters["observations"] += 1
        if (rec.truncated or rec.terminated) and slot.ended_at is None:
            slot.ended_at = self.clock()
            slot.end_reason = rec.truncation_reason or ("terminated" if rec.terminated else "truncated")
        self._write_frames(self.matcher.add_observation(StepKey(rec.stamp_ns, episode, rec.step)))
        return True

    def _supersede(self, slot: OpenEpisode) -> None:
        if slot.ended_at is None:
            slot.ended_at = self.clock()
            slot.end_reason = "next_episode"
        slot.superseded = True
        self.ending.append(slot)
        self.current = None

    def tick(self) -> list[Path]:
        """Close the bags that are due; returns their directories."""
        now, out = self.clock(), []
        for slot in self.open_slots():
            if slot.ended_at is None or now - slot.ended_at < self.cfg.close_delay_s:
                continue
            waited = now - slot.ended_at >= self.cfg.mark_timeout_s
            if slot.superseded or slot.mark is not None or waited:
                out.append(self._close(slot))
        return out

    def close_all(self) -> list[Path]:
        """Close every open bag (an episode that never ended ends with ``shutdown``)."""
        return [self._close(slot, "shutdown") for slot in self.open_slots()]

    def _close(self, slot: OpenEpisode, reason: str = "") -> Path:
        if slot is self.current:
            self.current = None
        elif slot in self.ending:
            self.ending.remove(slot)
        self.closed_episodes.add(slot.episode)
        w = slot.writer
        w.close(slot.mark, mark_source=slot.mark_source, end_reason=slot.end_reason or reason)
        self.counters["episodes_recorded"] += 1
        self.counters["episodes_unmarked"] += slot.mark is None
        self.recorded.append(w.path)
        verdict = ("unmarked (recorded as a failure)" if slot.mark is None
                   else "success" if slot.mark else "failure")
        self.info(f"episode {slot.episode}: {w.last_step} steps, {w.frame_count} frames, {verdict}, "
                  f"ended by {slot.end_reason or reason} -> {w.path}")
        return w.path

    # -- frames and side channels ---------------------------------------------------------------
    def image(self, stamp_ns: int, encode: Encoder, header_stamp_ns: int | None = None,
              frame_id: str = "") -> None:
        """A camera image stamped ``stamp_ns``; ``encode`` is called once it is paired with a step
        (ValueError from it: a bad image, counted and dropped)."""
        self.counters["images"] += 1
        pending = _Pending(encode, int(stamp_ns if header_stamp_ns is None else header_stamp_ns), frame_id)
        self._write_frames(self.matcher.add_image(int(stamp_ns), pending))

    def _write_frames(self, pairs: list[tuple[StepKey, Any]]) -> None:
        for key, pending in pairs:
            slot = self.slot(key.episode)
            if slot is None:
                self._count("late_frames", f"frame of episode {key.episode} step {key.step} arrived "
                            "after its bag closed (raise close_delay_s)")
                continue
            try:
                data, fmt = pending.encode()
            except ValueError as exc:
                self._count("bad_images", f"dropped a camera image: {exc}")
                continue
            slot.writer.write_frame(key.step, data, fmt, pending.header_stamp_ns, pending.frame_id)
            self.counters["frames"] += 1

    def _newest(self, what: str) -> OpenEpisode | None:
        slot = self.current
        if slot is None or slot.writer.last_step is None:
            self._count("unrecorded_messages", f"{what} between episodes: not recorded")
            return None
        return slot

    def intervention(self, active: bool) -> None:
        """Teleop's intervention flag, recorded at the newest episode's latest step."""
        slot = self._newest("an intervention flag")
        if slot is not None:
            assert slot.writer.last_step is not None
            slot.writer.write_intervention(slot.writer.last_step, active)
            self.counters["interventions"] += 1

    def safety_status(self, text: str) -> None:
        """The bridge's safety status (JSON), recorded at the newest episode's latest step."""
        slot = self._newest("a safety status")
        if slot is not None:
            assert slot.writer.last_step is not None
            slot.writer.write_safety_status(slot.writer.last_step, text)
            self.counters["safety_status"] += 1

    def mark(self, success: bool, source: str) -> tuple[bool, str]:
        """Mark the newest episode; returns ``(accepted, message)``."""
        slot = self.current
        if slot is None:
            self._count("marks_refused", f"{source}: no episode is being recorded; mark refused")
            return False, ("no episode is being recorded (a mark applies to the running episode, or to "
                           "the one that just ended until the next one starts)")
        slot.mark, slot.mark_source = bool(success), source
        self.counters["marks"] += 1
        word = "success" if success else "failure"
        self.info(f"episode {slot.episode} marked {word} ({source})")
        return True, f"episode {slot.episode} marked {word}"

    def status(self) -> dict[str, Any]:
        """The open bags and the last recorded ones."""
        cur = self.current
        return {"recording": None if cur is None else {
                    "episode": cur.episode, "steps": cur.writer.last_step,
                    "frames": cur.writer.frame_count, "ended": cur.ended_at is not None,
                    "mark": cur.mark},
                "closing": [s.episode for s in self.ending], "episodes_dir": str(self.cfg.out_dir),
                "recorded": [str(p) for p in self.recorded[-5:]],
                "unmatched_observations": self.matcher.unmatched}
