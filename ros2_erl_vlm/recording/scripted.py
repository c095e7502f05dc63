"""Record demonstrations of MetaWorld's scripted experts, with noise, through the recorder's writer.

    python -m ros2_erl_vlm.recording.scripted --task drawer-open-v3 --layout stock --episodes 50 \\
        --noise 0.3 --out demos/drawer [--seed 0]

Episode ``e`` (``--first-episode`` + 0, 1, ...) is reset with ``core.seeds.episode_seed(seed, e)``
(as the graph's sim_bridge numbers and seeds them) and runs the task's full length (500 steps; the
env never terminates); each step applies ``clip(expert(obs) + N(0, noise^2), -1, 1)`` (the noise
drawn from a generator seeded by ``(seed, e)``, so a run is reproducible). The bags hold the same
topics and messages as the ``recorder`` node's (:mod:`.mcap_episode`): every observation with the
simulator's truth and MuJoCo state (``sim_state``, as sim_bridge publishes it: the frame can be
re-rendered from it), the applied action, the task camera's frame of every step (JPEG), no
intervention flags (no operator) and no safety status (no arm); the episode's success mark is the
simulator's success at any step. Stamps are sim time, as sim_bridge's lock-step clock runs.
A bag that exists already is never overwritten: the run refuses to start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.seeds import episode_seed
from ros2_erl_vlm.recording.mcap_episode import EpisodeBagError, EpisodeWriter, StepRecord, episode_dir_name

#: Where the success mark of a scripted episode comes from (metadata ``mark_source``).
MARK_SOURCE = "scripted:sim_success_any_step"


@dataclass
class ScriptedConfig:
    """One scripted recording run (see module docstring)."""

    task: str
    out: Path
    episodes: int = 50
    noise: float = 0.3
    layout: str = ""
    seed: int = 0
    first_episode: int = 0
    max_steps: int = 0
    image_size: int = 0
    jpeg_quality: int = 90

    def validate(self) -> ScriptedConfig:
        """Check the ranges (ValueError naming the option)."""
        if self.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {self.episodes}")
        if not (np.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"--noise must be a finite standard deviation >= 0, got {self.noise}")
        if self.first_episode < 0:
            raise ValueError(f"--first-episode must be >= 0, got {self.first_episode}")
        if not 0 <= self.max_steps <= 500:
            raise ValueError(f"--max-steps must be in [0, 500] (0: the task's), got {self.max_steps}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg-quality must be in [1, 100], got {self.jpeg_quality}")
        return self


def noise_rng(seed: int, episode: int) -> np.random.Generator:
    """The action-noise generator of ``episode`` of a run with ``seed``."""
    return np.random.default_rng((int(seed), int(episode)))


def _step_record(step: int, obs: np.ndarray, action: np.ndarray, stamp_ns: int, info: dict[str, Any],
                 truncated: bool) -> StepRecord:
    return StepRecord(step=step, state=obs, action_taken=action, stamp_ns=stamp_ns, truncated=truncated,
                      truncation_reason="time_limit" if truncated else "", has_truth=True,
                      true_reward=float(info["true_reward"]), progress=float(info["progress"]),
                      success=bool(info["success"]),
                      sim_state=np.asarray(info["sim_state"], dtype=np.float64).reshape(-1))


def record_scripted(cfg: ScriptedConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Record ``cfg.episodes`` noisy expert episodes; returns one summary per episode.

    Raises:
        EpisodeBagError: a target bag exists already (checked before anything is recorded).
        ValueError: a bad option or an unknown task/layout.
    """
    cfg.validate()
    os.environ.setdefault("MUJOCO_GL", "egl")
    from ros2_erl_vlm.envs import expert_policy, load_task, make_env

    ids = range(cfg.first_episode, cfg.first_episode + cfg.episodes)
    out = Path(cfg.out)
    taken = [e for e in ids if (out / episode_dir_name(e)).exists()]
    if taken:
        raise EpisodeBagError(f"episode {taken[0]} ({out / episode_dir_name(taken[0])}): the bag exists "
                              f"already ({len(taken)} of the run's bags do); recorded bags are never "
                              "overwritten: choose another --out or --first-episode")
    spec = load_task(cfg.task, layout=cfg.layout or None)
    if cfg.max_steps:
        spec = replace(spec, max_episode_steps=int(cfg.max_steps))
    env = make_env(spec, seed=cfg.seed, render=True, image_size=cfg.image_size or spec.image_size)
    policy = expert_policy(spec)
    dt_ns = round(float(getattr(env.metaworld, "dt", 0.0125)) * 1e9)
    sim_ns = 0
    summaries = []
    try:
        for i, e in enumerate(ids):
            if i > 0:
                sim_ns += dt_ns  # a reset advances sim time by one period, as in sim_bridge
            rng = noise_rng(cfg.seed, e)
            t0 = time.monotonic()
            writer = EpisodeWriter(out / episode_dir_name(e), e, task=spec.name, layout=spec.layout,
                                   source="scripted", extra={"expert": {
                                       "policy": getattr(policy, "__name__", "expert"),
                                       "noise": float(cfg.noise), "seed": int(cfg.seed),
                                       "reset_seed": episode_seed(cfg.seed, e)}})
            success, ret, steps, end = False, 0.0, 0, "interrupted"
            try:
                obs, info = env.reset(seed=episode_seed(cfg.seed, e))
                writer.write_step(_step_record(0, obs, np.zeros(0, np.float32), sim_ns, info, False))
                writer.write_rgb_frame(0, env.render(), cfg.jpeg_quality)
                success = bool(info["success"])
                truncated = False
                while not truncated:
                    noise = rng.normal(0.0, cfg.noise, env.action_space.shape) if cfg.noise else 0.0
                    action = np.clip(policy(obs) + noise, -1.0, 1.0).astype(np.float32)
                    obs, reward, terminated, truncated, info = env.step(action)
                    sim_ns += dt_ns
                    steps += 1
                    ret += float(reward)
                    success = success or bool(info["success"])
                    rec = _step_record(steps, obs, action, sim_ns, info, bool(truncated))
                    rec.terminated = bool(terminated)
                    writer.write_step(rec)
                    writer.write_rgb_frame(steps, env.render(), cfg.jpeg_quality)
                    truncated = bool(truncated or terminated)
                end = "time_limit"
            finally:
                # An interrupted episode is kept (nothing recorded is lost), unmarked, and says so.
                writer.close(success if end == "time_limit" else None,
                             mark_source=MARK_SOURCE if end == "time_limit" else "", end_reason=end,
                             extra={"true_return": ret})
            summary = {"episode": e, "bag": str(writer.path), "steps": steps, "success": success,
                       "true_return": round(ret, 3), "seconds": round(time.monotonic() - t0, 2)}
            summaries.append(summary)
            log(f"episode {e}: {'success' if success else 'failure'}, {steps} steps, "
                f"return {ret:.1f} ({summary['seconds']:.1f} s) -> {writer.path}")
    finally:
        env.close()
    return summaries


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m ros2_erl_vlm.recording.scripted",
                                description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="MetaWorld task (a sim/tasks name)")
    p.add_argument("--layout", default="", help="paper | stock (default: the task's)")
    p.add_argument("--episodes", type=int, default=50, help="episodes to record (default 50)")
    p.add_argument("--noise", type=float, default=0.3,
                   help="standard deviation of the gaussian noise added to the expert's action")
    p.add_argument("--out", required=True, help="folder of the episode bags")
    p.add_argument("--seed", type=int, default=0, help="run seed (reset seeds and noise)")
    p.add_argument("--first-episode", type=int, default=0, help="id of the first episode")
    p.add_argument("--max-steps", type=int, default=0, help="episode length (0: the task's, 500)")
    p.add_argument("--image-size", type=int, default=0, help="camera frame side (0: the task's)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the frames")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 2 on bad options or an existing bag."""
    args = build_parser().parse_args(argv)
    cfg = ScriptedConfig(task=args.task, out=Path(args.out), episodes=args.episodes, noise=args.noise,
                         layout=args.layout, seed=args.seed, first_episode=args.first_episode,
                         max_steps=args.max_steps, image_size=args.image_size,
                         jpeg_quality=args.jpeg_quality)
    try:
        summaries = record_scripted(cfg, log=lambda line: print(line, file=sys.stderr))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = len(summaries)
    wins = sum(s["success"] for s in summaries)
    print(json.dumps({"task": cfg.task, "layout": cfg.layout, "noise": cfg.noise, "seed": cfg.seed,
                      "episodes": n, "successes": wins, "success_rate": wins / n if n else None,
                      "out": str(cfg.out)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
