"""Export a folder of recorded episodes (one MCAP bag each) to the flat offline dataset.

    python -m ros2_erl_vlm.recording.export <bags_dir> --out <name>.npz [--task drawer-open-v3]

Writes ``<name>.npz`` + ``<name>.json`` + ``<name>_frames/`` beside each other (format
``erl_vlm.offline/1``, docs/recording.md): one row per transition, episodes in id order, steps in
order; ``frame_files`` are the JPEGs (as recorded, PNG frames re-encoded) of each row's
``next_observations``, relative to the npz's folder. Every episode is checked first (readable bag,
all topics, steps 0..T without gaps, finite states and actions, actions in [-1, 1], one state and
action size for all, frames unless ``--no-frames``, one task, distinct episode ids unless
``--renumber``); a problem stops the export with an error naming the episode and its bag, before
anything is written. The bags are only read; an existing export is not replaced unless
``--overwrite``. Exit status 2 on bad input, 0 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.atomic_write import fsync_dir, write_text_atomic
from ros2_erl_vlm.recording.mcap_episode import (
    EpisodeBagError,
    EpisodeRecording,
    find_bags,
    read_episode,
)

FORMAT = "erl_vlm.offline/1"
#: Slack on the [-1, 1] bound of applied actions (float32 rounding).
ACTION_BOUND_SLACK = 1e-6


class ExportError(ValueError):
    """The bags cannot be exported (the message names the episode and its bag)."""


@dataclass(frozen=True)
class ExportPaths:
    """Where an export goes: ``<name>.npz``, ``<name>.json`` and ``<name>_frames/``."""

    npz: Path
    json: Path
    frames: Path

    @classmethod
    def of(cls, out: str | Path) -> ExportPaths:
        """The three paths of ``--out <name>.npz``."""
        npz = Path(out)
        if npz.suffix != ".npz":
            raise ExportError(f"--out must name a .npz file, got {out}")
        return cls(npz, npz.with_suffix(".json"), npz.with_name(npz.stem + "_frames"))

    def existing(self) -> list[Path]:
        """The paths that exist already."""
        return [p for p in (self.npz, self.json, self.frames) if p.exists()]


def check_episode(rec: EpisodeRecording, frames: bool = True) -> tuple[int, int]:
    """Validate one episode for export; returns its ``(obs_dim, action_dim)``.

    Raises:
        ExportError: too short, steps with gaps, NaN/inf or mixed sizes in states or actions,
            actions outside [-1, 1], or no frames (with ``frames``).
    """
    where = rec.where
    steps = [s.step for s in rec.steps]
    if len(steps) < 2:
        raise ExportError(f"{where}: {len(steps)} observation(s): an episode needs at least one step")
    if steps != list(range(len(steps))):
        gaps = sorted(set(range(steps[-1] + 1)) - set(steps))
        raise ExportError(f"{where}: steps do not run 0..{steps[-1]} without gaps (starts at "
                          f"{steps[0]}; missing {gaps[:10]}{' ...' if len(gaps) > 10 else ''})")
    dims = {s.state.size for s in rec.steps}
    if len(dims) != 1 or 0 in dims:
        raise ExportError(f"{where}: state sizes differ within the episode ({sorted(dims)})")
    for s in rec.steps:
        if not np.all(np.isfinite(s.state)):
            raise ExportError(f"{where}: NaN/inf in the state of step {s.step}")
    adims = {a.size for a in rec.actions}
    if len(adims) != 1 or 0 in adims:
        raise ExportError(f"{where}: action sizes differ within the episode ({sorted(adims)})")
    for t, a in enumerate(rec.actions):
        if not np.all(np.isfinite(a)):
            raise ExportError(f"{where}: NaN/inf in the action applied at step {t}")
        if np.any(np.abs(a) > 1.0 + ACTION_BOUND_SLACK):
            raise ExportError(f"{where}: the action applied at step {t} is outside [-1, 1] "
                              f"({a.tolist()}); the bridge reports the clipped action it applied")
    if frames and not rec.frames:
        raise ExportError(f"{where}: no camera frames recorded (export with --no-frames for a "
                          "state-only dataset)")
    return dims.pop(), adims.pop()


def load_episodes(bags_dir: str | Path, task: str | None = None, obs_dim: int | None = None,
                  action_dim: int | None = None, frames: bool = True, renumber: bool = False,
                  sync_tolerance_s: float = 0.0) -> tuple[list[tuple[int, EpisodeRecording]], str, int, int]:
    """Read and check every bag of ``bags_dir``: ``([(export id, recording)], task, D, A)`` in
    export order.

    Raises:
        ExportError: any problem (see :func:`check_episode`; also mixed tasks or sizes between
            episodes, sizes other than ``obs_dim``/``action_dim``, a repeated episode id).
    """
    try:
        recs = [read_episode(b, sync_tolerance_s) for b in find_bags(bags_dir)]
    except EpisodeBagError as exc:
        raise ExportError(str(exc)) from exc
    ref: tuple[int, int, EpisodeRecording] | None = None
    tasks = {}
    for rec in recs:
        d, a = check_episode(rec, frames)
        ref = ref or (d, a, rec)
        for what, got, asked, option, first in (("state", d, obs_dim, "--obs-dim", ref[0]),
                                                 ("action", a, action_dim, "--action-dim", ref[1])):
            if asked is not None and got != asked:
                raise ExportError(f"{rec.where}: {what} size {got}, expected {asked} ({option})")
            if got != first:
                raise ExportError(f"{rec.where}: {what} size {got} does not match episode "
                                  f"{ref[2].episode}'s {first} ({ref[2].path})")
        for key, size in (("obs_dim", d), ("action_dim", a)):
            if rec.meta.get(key) not in (None, size):
                raise ExportError(f"{rec.where}: metadata says {key} {rec.meta[key]}, the recorded "
                                  f"messages have {size}")
        if rec.task:
            tasks.setdefault(rec.task, rec)
        if task and rec.task and rec.task != task:
            raise ExportError(f"{rec.where}: recorded task {rec.task!r}, not {task!r}")
    if len(tasks) > 1:
        raise ExportError("episodes of several tasks: " + "; ".join(
            f"{t!r} ({r.where})" for t, r in tasks.items()))
    name = task or next(iter(tasks), "")
    if not name:
        raise ExportError(f"{bags_dir}: the bags do not say which task they show: give --task")
    recs.sort(key=lambda r: (r.episode, str(r.path)))
    if renumber:
        numbered = list(enumerate(recs))
    else:
        numbered = [(r.episode, r) for r in recs]
        for (e1, r1), (e2, r2) in itertools.pairwise(numbered):
            if e1 == e2:
                raise ExportError(f"episode {e1} is recorded twice ({r1.path} and {r2.path}): "
                                  "export with --renumber to number the episodes 0..n-1")
    assert ref is not None
    return numbered, name, ref[0], ref[1]


def _jpeg(frame: Any) -> bytes:
    if frame.format == "jpeg":
        return frame.data
    from ros2_erl_vlm.core.frames import FrameCodec

    data = FrameCodec("jpeg", 95).encode(frame.rgb())
    assert isinstance(data, bytes)
    return data


def build_arrays(episodes: list[tuple[int, EpisodeRecording]], frames_rel: str | None
                 ) -> tuple[dict[str, np.ndarray], list[tuple[str, Any]]]:
    """The npz arrays and the frames to write (``(relative path, FrameRecord)``) of checked
    episodes; ``frames_rel``: the frames folder's name relative to the npz (None: no frames)."""
    cols: dict[str, list[Any]] = {k: [] for k in (
        "observations", "actions", "next_observations", "terminals", "timeouts", "episode_ids",
        "steps", "success", "rewards", "frame_files")}
    to_write: list[tuple[str, Any]] = []
    for eid, rec in episodes:
        folder = f"episode_{eid:06d}"
        if frames_rel is not None:
            for step, frame in sorted(rec.frames.items()):
                to_write.append((f"{frames_rel}/{folder}/step_{step:04d}.jpg", frame))
        n = len(rec.steps) - 1
        for t in range(n):
            nxt = rec.steps[t + 1]
            cols["observations"].append(rec.steps[t].state)
            cols["actions"].append(rec.actions[t])
            cols["next_observations"].append(nxt.state)
            cols["terminals"].append(nxt.terminated)
            cols["timeouts"].append(t == n - 1)
            cols["episode_ids"].append(eid)
            cols["steps"].append(t)
            cols["success"].append(rec.success)
            cols["rewards"].append(nxt.true_reward if nxt.has_truth else np.nan)
            has = frames_rel is not None and nxt.step in rec.frames
            cols["frame_files"].append(f"{frames_rel}/{folder}/step_{nxt.step:04d}.jpg" if has else "")
    arrays = {
        "observations": np.asarray(cols["observations"], dtype=np.float32),
        "actions": np.asarray(cols["actions"], dtype=np.float32),
        "next_observations": np.asarray(cols["next_observations"], dtype=np.float32),
        "terminals": np.asarray(cols["terminals"], dtype=bool),
        "timeouts": np.asarray(cols["timeouts"], dtype=bool),
        "episode_ids": np.asarray(cols["episode_ids"], dtype=np.int64),
        "steps": np.asarray(cols["steps"], dtype=np.int64),
        "success": np.asarray(cols["success"], dtype=bool),
        "rewards": np.asarray(cols["rewards"], dtype=np.float32),
        "frame_files": np.asarray(cols["frame_files"], dtype=str),
    }
    return arrays, to_write


def export(bags_dir: str | Path, out: str | Path, task: str | None = None, obs_dim: int | None = None,
           action_dim: int | None = None, frames: bool = True, renumber: bool = False,
           overwrite: bool = False, sync_tolerance_s: float = 0.0) -> dict[str, Any]:
    """Export the bags of ``bags_dir`` to ``out`` (``<name>.npz``); returns a summary.

    Raises:
        ExportError: bad input (nothing is written), or the export exists and not ``overwrite``.
    """
    paths = ExportPaths.of(out)
    if paths.existing() and not overwrite:
        raise ExportError(f"{', '.join(map(str, paths.existing()))} exist(s) already; give --overwrite "
                          "to replace the export (the bags are never touched)")
    episodes, task_name, d, a = load_episodes(bags_dir, task, obs_dim, action_dim, frames, renumber,
                                              sync_tolerance_s)
    folder = paths.npz.parent
    for _, rec in episodes:
        if folder.resolve().is_relative_to(rec.path.resolve()):
            raise ExportError(f"{rec.where}: --out {paths.npz} lies inside the bag; a recording is "
                              "never written to")
    arrays, to_write = build_arrays(episodes, paths.frames.name if frames else None)
    folder.mkdir(parents=True, exist_ok=True)
    tmp_frames = folder / f".{paths.frames.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_frames, ignore_errors=True)
    try:
        if frames:
            for rel, frame in to_write:
                target = tmp_frames / Path(rel).relative_to(paths.frames.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_jpeg(frame))
        tmp_npz = folder / f".{paths.npz.name}.tmp-{os.getpid()}"
        with open(tmp_npz, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        if paths.frames.exists():
            shutil.rmtree(paths.frames)
        if frames:
            tmp_frames.rename(paths.frames)
        os.replace(tmp_npz, paths.npz)
        fsync_dir(folder)
    finally:
        shutil.rmtree(tmp_frames, ignore_errors=True)
    meta = {"format": FORMAT, "task": task_name, "obs_dim": d, "action_dim": a,
            "episodes": [{"episode": int(eid), "steps": len(rec.steps) - 1, "success": rec.success,
                          "source": str(rec.path)} for eid, rec in episodes],
            "frames": bool(frames)}
    write_text_atomic(paths.json, json.dumps(meta, indent=1))
    successes = sum(rec.success for _, rec in episodes)
    return {"npz": str(paths.npz), "json": str(paths.json),
            "frames_dir": str(paths.frames) if frames else None, "task": task_name,
            "episodes": len(episodes), "transitions": int(arrays["actions"].shape[0]),
            "obs_dim": d, "action_dim": a, "successes": successes,
            "unmarked": sum(not rec.marked for _, rec in episodes),
            "frames_written": len(to_write) if frames else 0,
            "rows_without_frame": int(np.sum(arrays["frame_files"] == "")) if frames else None}


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m ros2_erl_vlm.recording.export",
                                description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags_dir", help="folder of episode bags (e.g. <run_dir>/recorder/episodes)")
    p.add_argument("--out", required=True, help="<name>.npz (the .json and _frames/ go beside it)")
    p.add_argument("--task", help="the task (default: the bags'); bags of another task are refused")
    p.add_argument("--obs-dim", type=int, help="expected state size (default: the first episode's)")
    p.add_argument("--action-dim", type=int, help="expected action size (default: the first episode's)")
    p.add_argument("--no-frames", action="store_true", help="state-only export (no frame files)")
    p.add_argument("--renumber", action="store_true", help="number the episodes 0..n-1 in id order "
                   "(bags from several sessions with repeated ids)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export of that name")
    p.add_argument("--sync-tolerance-s", type=float, default=0.0,
                   help="bags from `ros2 bag record` only: pair a frame with the step whose stamp "
                   "is nearest within this many seconds (default 0: equal stamps)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        summary = export(args.bags_dir, args.out, args.task, args.obs_dim, args.action_dim,
                         not args.no_frames, args.renumber, args.overwrite, args.sync_tolerance_s)
    except ValueError as exc:  # ExportError, EpisodeBagError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
