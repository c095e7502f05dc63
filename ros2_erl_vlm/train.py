"""ROS-free ERL-VLM training runner: ``python -m ros2_erl_vlm.train --task drawer-open-v3``.

Runs the full loop of :mod:`ros2_erl_vlm.core.loop` in one process on a MetaWorld task with a
rater (the oracle with configurable label noise by default, or any VLM backend), writing to the
run directory: ``ratings.erlr`` (every rating, persisted before use), ``train.csv``, ``eval.csv``,
``reward.csv``, TensorBoard events under ``tb/``, ``checkpoint.pt`` and ``summary.json``.

Settings come from, in increasing priority: the built-in defaults (the paper's, with a short
budget), ``--config FILE.yaml`` (keys of :class:`~ros2_erl_vlm.core.config.LoopConfig`, with
``sac:`` and ``reward:`` sections), the named flags and ``--set key=value`` overrides.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core import seeds
from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.checkpoint import CheckpointError
from ros2_erl_vlm.core.config import SHORT_RUN, LoopConfig, TaskInfo
from ros2_erl_vlm.core.loop import EnvDataError, ErlVlmTrainer
from ros2_erl_vlm.core.rating.rater import Rater
from ros2_erl_vlm.core.record_log import RecordLogError
from ros2_erl_vlm.core.settings import (
    apply_overrides,
    flatten,
    parse_assignments,
    read_settings_file,
    settings_diff,
)
from ros2_erl_vlm.stop_signals import stop_on_ctrl_c


class ConfigError(ValueError):
    """A bad setting (message names it)."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(prog="python -m ros2_erl_vlm.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default="drawer-open-v3", help="task name (sim/tasks/<name>.yaml, or any "
                   "MetaWorld v3 task through the generic definition)")
    p.add_argument("--layout", default=None, help="task layout: paper (the reference's fixed scene) "
                   "or stock (MetaWorld's randomised one); default: the task's")
    p.add_argument("--total-steps", "--steps", dest="steps", type=int, default=SHORT_RUN["total_steps"],
                   metavar="STEPS", help="env steps to train (the same option as the graph runner's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("erl-vlm", "rbrl", "sac-true"), default="erl-vlm",
                   help="erl-vlm: MAE + stratified + class weights; rbrl: CE, plain batches; "
                        "sac-true: SAC on the environment's dense reward")
    p.add_argument("--rater", default="simulated_vlm",
                   help="rating backend: oracle | simulated_vlm (errs like a VLM, from simulator "
                   "truth) | transformers | openai | replay")
    p.add_argument("--rater-config", type=Path, help="YAML with the rater backend's settings")
    p.add_argument("--label-noise", type=float, default=0.0, help="oracle: probability of a wrong label")
    p.add_argument("--noise-mode", default="symmetric", help="oracle: uniform (alias symmetric) | neighbor")
    p.add_argument("--num-classes", type=int, help="rating classes (default: the task's)")
    p.add_argument("--reward-input", choices=("state", "image"), default="state",
                   help="reward model input: policy state (cheap) or camera frames (the paper's CNN)")
    p.add_argument("--query-strategy", choices=("uniform", "disagreement"), default="uniform")
    p.add_argument("--config", type=Path, help="YAML file of loop settings")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"),
                   help="torch device of SAC, the replay buffer and the reward model (default: auto, "
                        "a GPU when torch sees one)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any loop setting, e.g. --set sac.batch_size=256")
    p.add_argument("--run-dir", type=Path,
                   help="output directory (default runs/<task>-<method>-s<seed>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue from --run-dir/checkpoint.pt")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file of settings; ``ConfigError`` naming ``what`` and the file otherwise."""
    return read_settings_file(path, what, ConfigError, expected="a mapping of settings")


def make_config(args: argparse.Namespace, task_num_classes: int) -> LoopConfig:
    """Defaults with the short run's changes (:data:`~ros2_erl_vlm.core.config.SHORT_RUN`, as
    the graph's ``config/train_sim.yaml``), then ``--config``, then flags, then ``--set``."""
    cfg = apply_overrides(LoopConfig(), SHORT_RUN, "short run", ConfigError)
    cfg.total_steps, cfg.seed, cfg.num_classes = args.steps, args.seed, task_num_classes
    if args.reward_input == "image":  # the reference's image settings: CNN batch 512, 200k frames kept
        cfg.reward.batch_size = 512
        cfg.replay_capacity = min(cfg.replay_capacity, 200_000)
    if args.config is not None:
        apply_overrides(cfg, read_mapping(args.config, "config"), str(args.config), ConfigError)
    if args.num_classes is not None:
        cfg.num_classes = args.num_classes
    cfg.reward.input_kind = args.reward_input
    cfg.query_strategy = args.query_strategy
    if args.method == "rbrl":
        cfg.reward.loss, cfg.reward.stratified, cfg.reward.class_weighting = "ce", False, False
    elif args.method == "sac-true":
        cfg.reward_source, cfg.num_unsup_steps = "true", 0
    if args.device:
        cfg.device = args.device
    apply_overrides(cfg, parse_assignments(args.set, "--set", ConfigError), "--set", ConfigError)
    try:
        return cfg.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


#: Raters (besides the oracle) that rate simulator truth, not frames: no camera frames needed.
SIMULATED_RATERS = ("simulated_vlm",)


def make_rater(args: argparse.Namespace, task: Any, seed: int) -> Rater:
    """The oracle (with ``--label-noise``) or a VLM backend (``--rater``) with the settings of
    ``--rater-config``; the flag names the backend, as ``rater.backend`` does in the graph."""
    if args.rater == "oracle":
        if args.rater_config is not None:
            raise ConfigError("--rater-config is for VLM backends; the oracle takes --label-noise "
                              "and --noise-mode")
        from ros2_erl_vlm.raters.oracle import OracleConfig, OracleRater
        return OracleRater(task.bin_truth, OracleConfig(noise=args.label_noise,
                                                        noise_mode=args.noise_mode),
                           seed=seeds.oracle_seed(seed))
    if args.label_noise:
        raise ConfigError("--label-noise is the oracle's (uniform label flips); with "
                          f"--rater {args.rater} set the rater's own settings in --rater-config")
    from ros2_erl_vlm import raters
    settings = {} if args.rater_config is None else read_mapping(args.rater_config, "rater config")
    settings["backend"] = args.rater
    if args.rater in SIMULATED_RATERS:  # rates the simulator truth of this run's task
        settings.update(task=task, seed=seeds.oracle_seed(seed))
    return raters.make_rater(settings)


#: What a run was started with (beside its checkpoint); ``--resume`` must match it.
RUN_SETTINGS_FILE = "run.json"
#: Settings a resumed run may change.
RESUMABLE = frozenset({"loop.total_steps", "loop.device"})


def _json_flat(nested: dict[str, Any]) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` with JSON values (as ``run.json`` holds them)."""
    return flatten(json.loads(json.dumps(nested, default=str)))


def run_settings(args: argparse.Namespace, cfg: LoopConfig, layout: str | None = None) -> dict[str, Any]:
    """The settings that define a run (flat ``a.b`` keys, JSON values; ``layout``: the task
    layout the run uses)."""
    return _json_flat({"task": args.task, "layout": layout, "method": args.method, "rater": args.rater,
                     "rater_config": None if args.rater_config is None else str(args.rater_config),
                     "label_noise": args.label_noise, "noise_mode": args.noise_mode,
                     "loop": dataclasses.asdict(cfg)})


def check_resume(run_dir: Path, settings: dict[str, Any]) -> None:
    """Raise ``ConfigError`` naming every setting that differs from what the run started with
    (a resumed run continues the same experiment; only ``--steps`` may change). A loop setting
    added after the run started counts as unchanged while it keeps its default."""
    path = run_dir / RUN_SETTINGS_FILE
    if not path.exists():  # a run from before run.json was written: nothing to compare with
        return
    saved = json.loads(path.read_text())
    defaults = _json_flat({"loop": dataclasses.asdict(LoopConfig())})
    diffs = settings_diff(saved, settings, RESUMABLE, defaults)
    if diffs:
        raise ConfigError(f"{run_dir} was started with other settings; resume it with the same flags "
                          f"(only --total-steps may change): {'; '.join(diffs)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(max(1, args.threads))
    from ros2_erl_vlm.envs import load_task, make_env

    try:
        task = load_task(args.task, layout=args.layout)
        cfg = make_config(args, task.num_classes)
        task.check_class_count(cfg.num_classes)  # e.g. pick-place grades 2 or 3 classes only
        if args.resume and args.run_dir is None:
            raise ConfigError("--resume needs --run-dir")
        run_dir = args.run_dir or Path("runs") / (
            f"{args.task}-{args.method}-s{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
        if not args.resume and any((run_dir / f).exists() for f in ("checkpoint.pt", "ratings.erlr")):
            raise ConfigError(f"{run_dir} already holds a run; pass --resume or another --run-dir")
        if cfg.reward_source == "learned" and args.rater not in ("oracle", *SIMULATED_RATERS):
            cfg.query_frames = True  # a VLM rates the task camera's frames
        settings = run_settings(args, cfg, task.layout)
        if args.resume:
            check_resume(run_dir, settings)
        rater = make_rater(args, task, cfg.seed) if cfg.reward_source == "learned" else None
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    render = cfg.reward.input_kind == "image" or cfg.query_frames
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / RUN_SETTINGS_FILE, json.dumps(settings, indent=1))
    env = make_env(task, seed=cfg.seed, render=render, image_size=cfg.reward.image_size)
    eval_env = make_env(task, seed=seeds.eval_env_seed(cfg.seed), render=False)
    bar = None
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.total_steps, unit="step", dynamic_ncols=True, file=sys.stderr)

        def progress(step: int, total: int, post: dict[str, Any]) -> None:
            bar.update(step - bar.n)
            bar.set_postfix(post, refresh=False)

    info = TaskInfo(task.name, task.instruction, task.class_names(cfg.num_classes))
    resume_hint = f"resume with --resume --run-dir {run_dir}"
    try:
        # A damaged or locked rating log or checkpoint: a clear error, the files left as they are.
        try:
            trainer = ErlVlmTrainer(cfg, env, rater, info, run_dir=run_dir, eval_env=eval_env,
                                    progress=progress, tensorboard=not args.no_tensorboard,
                                    bin_truth=task.bin_truth)
            if args.resume:
                trainer.load(run_dir / "checkpoint.pt")
        except (RecordLogError, CheckpointError, ValueError, FileNotFoundError) as exc:
            print(f"error: {run_dir}: {exc}", file=sys.stderr)
            return 2
        if bar is not None:
            bar.update(trainer.step)
        print(f"erl_vlm: training {args.method} on {args.task} for {cfg.total_steps} steps -> {run_dir}",
              file=sys.stderr)
        with stop_on_ctrl_c(trainer):
            try:
                summary = trainer.run()
            except EnvDataError as exc:
                trainer.save(run_dir / "checkpoint.pt")  # everything before the bad step is kept
                trainer.close()
                print(f"error: {exc}; checkpoint saved at step {trainer.step}, {resume_hint}",
                      file=sys.stderr)
                return 2
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, back to the last periodic checkpoint
        print(f"\nstopped at once; the last periodic checkpoint is kept, {resume_hint}", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
        env.close()
        eval_env.close()
    if summary.get("interrupted"):
        print(f"\ninterrupted at step {trainer.step}; checkpoint saved, {resume_hint}", file=sys.stderr)
        return 130
    print(json.dumps({k: summary[k] for k in ("steps", "episodes", "ratings", "abstentions",
                                               "final_success_rate", "wall_s")}, default=str))
    from ros2_erl_vlm.report import report_hint

    print(report_hint(run_dir), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
