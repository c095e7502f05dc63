"""The recorder node's bookkeeping, ROS-free: which bag a message goes to, when a bag closes, which
episode a success mark belongs to.

:class:`RecordingSession` is fed plain values (the node converts messages) and writes through
:class:`~ros2_erl_vlm.recording.mcap_episode.EpisodeWriter`, one bag per episode under
``out_dir``. Rules (docs/recording.md):

* an episode starts with its first observation; it ends with an observation that is truncated or
  terminated, or when the next episode's first observation arrives (``next_episode``);
* re-published observations (same episode, step and stamp) are recorded once; a step 0 of an
  episode id already recorded (a restarted bridge numbering from 0 again) starts a new bag
  (``episode_<id>_1``; the open one of that id ends with ``bridge_restart``); only continuations
  (step > 0) of an episode whose bag is closed are not recorded (counted ``stale_observations``);
* a camera image is paired with a step by stamp (:class:`~ros2_erl_vlm.core.frames.StampMatcher`:
  exact, or nearest within the tolerance; ``sync_tolerance_s`` < 0: exact for simulator
  observations, :data:`ARM_SYNC_TOLERANCE_S` otherwise) and encoded only then; images arriving
  while :data:`UNPAIRED_ALARM_OBSERVATIONS` observations in a row got no frame raise an error
  (``frame_sync_alarms``: the tolerance is wrong for this camera);
* intervention flags and safety statuses go to the newest open episode, at its latest step;
* a mark applies to the newest episode, while it runs and after it ended until the next one starts;
  a mark within ``mark_grace_s`` of an episode's end, with the next episode already running
  (``auto_reset``), goes to the ended episode (logged); the last mark wins;
* an ended episode's bag closes ``close_delay_s`` after its end (frames in flight) once it is
  marked, the next episode started (and ``mark_grace_s`` passed), or ``mark_timeout_s`` passed;
  :meth:`close_all` closes the rest. An unmarked episode is recorded ``success: false, marked: false``;
* a bag name in use gets a suffix (``episode_000003_1``): nothing recorded is overwritten;
* every bag is closed on its own: a bag that fails to close stays open (listed in the status) and
  the others still close; the failures are raised together (:class:`BagsNotClosedError`).

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
from ros2_erl_vlm.recording.mcap_episode import (
    EpisodeBagError,
    EpisodeWriter,
    StepRecord,
    episode_dir_name,
)

#: An image waiting for its step: called once paired, it returns ``(bytes, "jpeg" | "png")``.
Encoder = Callable[[], tuple[bytes, str]]

COUNTERS = ("observations", "duplicate_observations", "stale_observations", "restarted_episodes",
            "missing_steps", "images", "frames", "bad_images", "late_frames", "frame_sync_alarms",
            "interventions", "safety_status", "unrecorded_messages", "marks", "marks_after_end",
            "marks_refused", "episodes_recorded", "episodes_unmarked", "name_collisions",
            "close_failures")
#: ``sync_tolerance_s`` meaning "auto" (the default): decided by the first observation.
AUTO_SYNC_TOLERANCE = -1.0
#: The auto tolerance for observations without simulator truth (an arm; half its 10 Hz period):
#: each observation takes the nearest camera image within it.
ARM_SYNC_TOLERANCE_S = 0.05
#: Observations in a row without a frame, while images arrive, before the tolerance alarm.
UNPAIRED_ALARM_OBSERVATIONS = 50


class BagsNotClosedError(EpisodeBagError):
    """Bags that failed to close (each one tried on its own; the others closed).

    Attributes:
        failures: ``(bag directory, error)`` per bag left unclosed (still open in the session).
        closed: the bags that did close in the same call.
    """

    def __init__(self, failures: list[tuple[Path, BaseException]], closed: list[Path]) -> None:
        self.failures, self.closed = failures, closed
        super().__init__(f"{len(failures)} bag(s) could not be closed (no metadata.yaml; "
                         f"{len(closed)} other(s) closed): "
                         + "; ".join(f"{path}: {exc}" for path, exc in failures))


@dataclass
class SessionConfig:
    """Where and how a session records (the recorder node's parameters)."""

    out_dir: Path
    task: str = ""
    layout: str = ""
    namespace: str = "/"
    close_delay_s: float = 1.0
    mark_timeout_s: float = 30.0
    mark_grace_s: float = 2.0
    sync_tolerance_s: float = AUTO_SYNC_TOLERANCE
    image_buffer: int = 30

    def validate(self) -> SessionConfig:
        """Check the values (ValueError naming the parameter)."""
        for name in ("close_delay_s", "mark_timeout_s", "mark_grace_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"parameter {name!r}: must be >= 0, got {getattr(self, name)}")
        if self.sync_tolerance_s < 0 and self.sync_tolerance_s != AUTO_SYNC_TOLERANCE:
            raise ValueError(f"parameter 'sync_tolerance_s': >= 0, or {AUTO_SYNC_TOLERANCE:g} for "
                             f"auto, got {self.sync_tolerance_s}")
        if self.image_buffer < 1:
            raise ValueError(f"parameter 'image_buffer': must be >= 1, got {self.image_buffer}")
        return self


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
    #: Why the last close failed ("" when none did); the bag stays open until a close succeeds.
    close_error: str = ""


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
        error: receives a line for each problem that loses data unless someone acts (frames that
            never pair with observations).
    """

    cfg: SessionConfig
    clock: Callable[[], float] = time.monotonic
    info: Callable[[str], None] = lambda _msg: None
    warn: Callable[[str, str], None] = lambda _msg, _key: None
    error: Callable[[str], None] = lambda _msg: None
    counters: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(COUNTERS, 0)))
    current: OpenEpisode | None = None
    ending: list[OpenEpisode] = field(default_factory=list)
    closed_episodes: set[int] = field(default_factory=set)
    recorded: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cfg.validate()
        self.cfg.out_dir = Path(self.cfg.out_dir)
        self.cfg.out_dir.mkdir(parents=True, exist_ok=True)
        #: The pairing tolerance in use (None until the first observation decides an auto one).
        self.sync_tolerance_s: float | None = (None if self.cfg.sync_tolerance_s == AUTO_SYNC_TOLERANCE
                                               else float(self.cfg.sync_tolerance_s))
        self.matcher = StampMatcher(int((self.sync_tolerance_s or 0.0) * 1e9), int(self.cfg.image_buffer),
                                    max_pending=1000)
        self._obs_without_frame = 0
        self._images_without_frame = 0

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
        """The newest open bag of ``episode``, if any."""
        if self.current is not None and self.current.episode == episode:
            return self.current
        return next((s for s in reversed(self.ending) if s.episode == episode), None)

    def _slot_of_key(self, key: StepKey) -> OpenEpisode | None:
        """The open bag holding the observation ``key`` (episode, step and stamp: two bags of one
        episode id are open after a bridge restart)."""
        return next((s for s in reversed(self.open_slots()) if s.episode == key.episode
                     and s.writer.stamp(key.step) == key.stamp_ns), None)

    def open_slots(self) -> list[OpenEpisode]:
        """Every open bag, oldest first."""
        return [*self.ending, *([self.current] if self.current is not None else [])]

    def _restarts(self, slot: OpenEpisode, rec: StepRecord) -> bool:
        """Whether ``rec`` (step 0 of ``slot``'s id) starts a new episode rather than repeating the
        recorded step 0: the bag has later steps, or the stamp differs (a waiting bridge
        re-publishes the same message; a restarted one stamps its new reset later)."""
        last = slot.writer.last_step
        if rec.step != 0 or last is None:
            return False
        return last > 0 or slot.writer.stamp(0) != int(rec.stamp_ns)

    def _decide_tolerance(self, rec: StepRecord) -> None:
        if self.sync_tolerance_s is not None:
            return
        self.sync_tolerance_s = 0.0 if rec.has_truth else ARM_SYNC_TOLERANCE_S
        self.matcher.tolerance_ns = int(self.sync_tolerance_s * 1e9)
        self.info("sync_tolerance_s auto: " + (
            "0 (simulator observations: each frame carries its observation's stamp)" if rec.has_truth
            else f"{ARM_SYNC_TOLERANCE_S:g} s (no simulator truth, a real camera: each observation "
                 "takes the nearest image within it; set sync_tolerance_s to choose)"))

    def observation(self, episode: int, rec: StepRecord) -> bool:
        """Record one observation of ``episode``; returns whether it was written."""
        self._decide_tolerance(rec)
        slot = self.slot(episode)
        restarted = slot is not None and self._restarts(slot, rec)
        if slot is not None and restarted:
            self.counters["restarted_episodes"] += 1
            self.info(f"episode {episode}: step 0 again after step {slot.writer.last_step} (a restarted "
                      f"bridge numbering from {episode} again): a new episode, a new bag")
            if slot is self.current:
                self._supersede(slot, "bridge_restart")
            slot = None
        if slot is None:
            if episode in self.closed_episodes and rec.step > 0:
                self._count("stale_observations", f"observation of episode {episode} step {rec.step} "
                            "after its bag closed: not recorded")
                return False
            if episode in self.closed_episodes and not restarted:
                self.counters["restarted_episodes"] += 1
                self.info(f"episode {episode}: step 0 of an episode recorded before (a restarted "
                          "bridge numbering from 0 again): a new bag")
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
        self._obs_without_frame += 1
        self._write_frames(self.matcher.add_observation(StepKey(rec.stamp_ns, episode, rec.step)))
        self._check_frame_sync()
        return True

    def _check_frame_sync(self) -> None:
        n, images = self._obs_without_frame, self._images_without_frame
        if n == 0 or n % UNPAIRED_ALARM_OBSERVATIONS or images == 0:
            return
        self.counters["frame_sync_alarms"] += 1
        self.error(f"{n} observations in a row got no camera frame while {images} images arrived: no "
                   f"image stamp is within sync_tolerance_s = {self.sync_tolerance_s:g} s of an "
                   "observation stamp (a real camera never stamps like the bridge; 0 pairs equal stamps "
                   "only): set sync_tolerance_s (e.g. 0.05) or these episodes have no frames and the "
                   "export refuses them")

    def _supersede(self, slot: OpenEpisode, reason: str = "next_episode") -> None:
        if slot.ended_at is None:
            slot.ended_at = self.clock()
            slot.end_reason = reason
        slot.superseded = True
        self.ending.append(slot)
        self.current = None

    def _due(self, slot: OpenEpisode, now: float) -> bool:
        if slot.ended_at is None or slot.close_error:  # a failed close is retried by close_all
            return False
        age = now - slot.ended_at
        if age < self.cfg.close_delay_s:
            return False
        if slot.superseded:  # kept for a mark pressed on seeing the end (mark_grace_s)
            return age >= self.cfg.mark_grace_s
        return slot.mark is not None or age >= self.cfg.mark_timeout_s

    def tick(self) -> list[Path]:
        """Close the bags that are due; returns their directories.

        Raises:
            BagsNotClosedError: some could not be closed (the others are closed).
        """
        now = self.clock()
        return self._close_each([s for s in self.open_slots() if self._due(s, now)])

    def close_all(self) -> list[Path]:
        """Close every open bag (an episode that never ended ends with ``shutdown``), each on its
        own; returns their directories.

        Raises:
            BagsNotClosedError: some could not be closed (the others are closed; the failed ones
                stay open).
        """
        return self._close_each(self.open_slots(), "shutdown")

    def _close_each(self, slots: list[OpenEpisode], reason: str = "") -> list[Path]:
        closed: list[Path] = []
        failures: list[tuple[Path, BaseException]] = []
        for slot in slots:
            try:
                closed.append(self._close(slot, reason))
            except Exception as exc:  # every bag gets its close, whatever the others did
                slot.close_error = f"{type(exc).__name__}: {exc}"
                self.counters["close_failures"] += 1
                failures.append((slot.writer.path, exc))
        if failures:
            raise BagsNotClosedError(failures, closed)
        return closed

    def _close(self, slot: OpenEpisode, reason: str = "") -> Path:
        w = slot.writer
        w.close(slot.mark, mark_source=slot.mark_source, end_reason=slot.end_reason or reason)
        # forgotten only once closed: a failed close leaves the bag open (status, close_all)
        if slot is self.current:
            self.current = None
        elif slot in self.ending:
            self.ending.remove(slot)
        self.closed_episodes.add(slot.episode)
        slot.close_error = ""
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
        self._images_without_frame += 1
        pending = _Pending(encode, int(stamp_ns if header_stamp_ns is None else header_stamp_ns), frame_id)
        self._write_frames(self.matcher.add_image(int(stamp_ns), pending))

    def _write_frames(self, pairs: list[tuple[StepKey, Any]]) -> None:
        for key, pending in pairs:
            slot = self._slot_of_key(key)
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
            self._obs_without_frame = self._images_without_frame = 0

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

    def _just_ended(self, now: float) -> OpenEpisode | None:
        """The episode that ended within ``mark_grace_s``, if the next one already runs."""
        cur = self.current
        if cur is not None and cur.ended_at is not None:
            return None  # the newest episode has ended itself: marks are its own
        recent = [s for s in self.ending if s.ended_at is not None and not s.close_error
                  and now - s.ended_at <= self.cfg.mark_grace_s]
        return max(recent, key=lambda s: s.ended_at or 0.0) if recent else None

    def mark(self, success: bool, source: str) -> tuple[bool, str]:
        """Mark the newest episode, or the one that ended within ``mark_grace_s`` while the next
        one already runs; returns ``(accepted, message)``."""
        now = self.clock()
        word = "success" if success else "failure"
        slot = self._just_ended(now)
        if slot is not None:
            ago = now - (slot.ended_at or now)
            running = f"episode {self.current.episode} runs" if self.current is not None else "none runs"
            self.counters["marks_after_end"] += 1
            note = (f" (ended {ago:.1f} s ago, within mark_grace_s {self.cfg.mark_grace_s:g} s; {running} "
                    "and is not marked)")
        else:
            slot, note = self.current, ""
        if slot is None:
            self._count("marks_refused", f"{source}: no episode is being recorded; mark refused")
            return False, ("no episode is being recorded (a mark applies to the running episode, or to "
                           "the one that just ended until the next one starts)")
        slot.mark, slot.mark_source = bool(success), source
        self.counters["marks"] += 1
        self.info(f"episode {slot.episode} marked {word} ({source}){note}")
        return True, f"episode {slot.episode} marked {word}{note}"

    def status(self) -> dict[str, Any]:
        """The open bags and the last recorded ones."""
        cur = self.current
        return {"recording": None if cur is None else {
                    "episode": cur.episode, "steps": cur.writer.last_step,
                    "frames": cur.writer.frame_count, "ended": cur.ended_at is not None,
                    "mark": cur.mark},
                "closing": [s.episode for s in self.ending], "episodes_dir": str(self.cfg.out_dir),
                "recorded": [str(p) for p in self.recorded[-5:]],
                "not_closed": {str(s.writer.path): s.close_error for s in self.open_slots() if s.close_error},
                "unmatched_observations": self.matcher.unmatched,
                "sync_tolerance_s": self.sync_tolerance_s,
                "observations_without_frame": self._obs_without_frame,
                "images_since_last_frame": self._images_without_frame}
