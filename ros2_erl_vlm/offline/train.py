"""Offline training command: ``python -m ros2_erl_vlm.offline.train --data EXPORT.npz --out RUN``.

Trains IQL on the learned (ERL-VLM) reward (``--method iql --reward learned --reward-model M``),
IQL on the sparse success reward (``--method iql-sparse``, or ``iql --reward sparse``) or
behaviour cloning (``--method bc``) for ``--steps`` gradient steps on an exported dataset
(``docs/offline.md``), with a progress bar, and writes to the run directory: ``run.json`` (the
settings), ``train.csv`` and ``eval.csv`` (+ TensorBoard under ``tb/``), ``checkpoint.pt`` (every
``--checkpoint-every`` steps and at the end; deployable with ``deploy_agent``) and
``summary.json``. ``--resume`` continues a run from its checkpoint (only ``--steps`` and the
logging periods may change). With ``--eval-task`` the policy is evaluated in simulation, in
this process, every ``--eval-every`` steps and at the end, on the fixed episodes
``eval_seed(--eval-seed-base, i)`` (the same for every method and training seed).

Settings: :class:`~ros2_erl_vlm.core.offline.iql.IQLConfig`'s defaults (the IQL manipulation
settings), changed with ``--set key=value`` (e.g. ``--set beta=3.0``). Bad arguments or input
exit 1 with ``error: ...``; Ctrl-C stops after the current step with a checkpoint (exit 130).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.checkpoint import CheckpointError
from ros2_erl_vlm.core.offline.dataset import (
    OfflineDataset,
    check_dims,
    load_dataset,
    relabel_rewards,
    sparse_success_rewards,
)
from ros2_erl_vlm.core.offline.iql import IQLConfig
from ros2_erl_vlm.core.settings import apply_overrides, flatten, parse_assignments, settings_diff
from ros2_erl_vlm.stop_signals import stop_on_ctrl_c

METHODS = ("iql", "iql-sparse", "bc")
REWARDS = ("learned", "sparse")
#: What a run was started with, beside its checkpoint; ``--resume`` must match it.
RUN_SETTINGS_FILE = "run.json"
#: Settings a resumed run may change.
RESUMABLE = frozenset({"steps", "device", "log_every", "checkpoint_every", "eval_every"})
DEFAULT_EVAL_EPISODES = 10


class UsageError(ValueError):
    """A bad argument or input (printed as ``error: ...``, exit 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors exit 1 (as every other bad argument of this command)."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and ``error: message``; exit 1."""
        self.print_usage(sys.stderr)
        self.exit(1, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = _Parser(prog="python -m ros2_erl_vlm.offline.train", description=__doc__.split("\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the export's .npz (its .json beside it)")
    p.add_argument("--method", choices=METHODS, default="iql",
                   help="iql: IQL on --reward; iql-sparse: IQL on the success mark; bc: behaviour cloning")
    p.add_argument("--reward", choices=REWARDS, default=None,
                   help="learned: relabel with --reward-model; sparse: 1 at the last step of an episode "
                   "marked successful (default: learned for iql, sparse for iql-sparse, none for bc)")
    p.add_argument("--reward-model", type=Path, help="reward model: a reward_learner checkpoint, a run's "
                   "checkpoint.pt or models/reward_model_v*.pt")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--steps", type=int, default=IQLConfig.steps,
                   help="gradient steps (also the horizon of the actor's cosine learning rate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an IQLConfig setting, e.g. --set beta=3.0 --set batch_size=512")
    p.add_argument("--eval-task", help="evaluate in simulation on this task (e.g. drawer-open-v3)")
    p.add_argument("--eval-layout", default=None, help="task layout for evaluation: stock (randomised, "
                   "as demonstrations are recorded) or paper; default: the export's 'layout', else stock")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help=f"evaluation episodes (default {DEFAULT_EVAL_EPISODES} with --eval-task)")
    p.add_argument("--eval-seed-base", type=int, default=0,
                   help="evaluation episode i is reset with seed eval_seed(base, i)")
    p.add_argument("--eval-every", type=int, default=10_000, help="steps between evaluations (0: at the end)")
    p.add_argument("--log-every", type=int, default=1000, help="steps per train.csv row")
    p.add_argument("--checkpoint-every", type=int, default=10_000, help="steps between checkpoints")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


def resolve_method(args: argparse.Namespace) -> tuple[str, str | None]:
    """``(method, reward)`` after the defaults, refusing combinations that contradict themselves
    (``iql --reward sparse`` is ``iql-sparse``)."""
    method, reward = args.method, args.reward
    if method == "bc":
        if reward is not None or args.reward_model is not None:
            raise UsageError("--method bc trains on no reward: drop --reward/--reward-model")
        return "bc", None
    if method == "iql-sparse":
        if reward == "learned":
            raise UsageError("--method iql-sparse trains on the sparse success reward; for the learned "
                             "reward use --method iql --reward learned")
        reward = "sparse"
    reward = reward or "learned"
    if reward == "sparse":
        if args.reward_model is not None:
            raise UsageError("--reward sparse uses the episodes' success marks, not --reward-model")
        return "iql-sparse", "sparse"
    if args.reward_model is None:
        raise UsageError("--reward learned needs --reward-model (a reward_learner checkpoint, a run's "
                         "checkpoint.pt or a models/reward_model_v*.pt file)")
    return "iql", "learned"


def make_config(args: argparse.Namespace) -> IQLConfig:
    """The defaults, ``--steps``, then ``--set`` overrides; validated."""
    cfg = IQLConfig(steps=args.steps)
    overrides = parse_assignments(args.set, "--set", UsageError)
    if "steps" in overrides:
        raise UsageError("--set steps=...: use --steps")
    apply_overrides(cfg, overrides, "--set", UsageError)
    try:
        return cfg.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def check_numbers(args: argparse.Namespace) -> None:
    """Ranges of the numeric flags."""
    for flag, value, low in (("--steps", args.steps, 1), ("--log-every", args.log_every, 1),
                             ("--checkpoint-every", args.checkpoint_every, 0),
                             ("--eval-every", args.eval_every, 0), ("--threads", args.threads, 1)):
        if value < low:
            raise UsageError(f"{flag} must be >= {low}, got {value}")
    if args.eval_episodes is not None:
        if args.eval_task is None:
            raise UsageError("--eval-episodes needs --eval-task (the task to evaluate on)")
        if args.eval_episodes < 1:
            raise UsageError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")


def sha256_of(path: Path) -> str:
    """The file's SHA-256 (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def training_rewards(ds: OfflineDataset, reward: str | None, model_path: Path | None
                     ) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The rewards the method trains on and their statistics (with the correlation to the
    simulator's logged reward where the export has it)."""
    if reward is None:
        return None, {}
    if reward == "sparse":
        r = sparse_success_rewards(ds)
    else:
        from ros2_erl_vlm.core.offline.learned_reward import load_reward_model, model_reward_function

        assert model_path is not None
        model = load_reward_model(model_path)
        if model.config.input_kind == "state" and model.obs_dim != ds.obs_dim:
            raise UsageError(f"reward model {model_path} reads {model.obs_dim}-D states, the dataset "
                             f"{ds.path} has {ds.obs_dim}-D ones")
        fn, source = model_reward_function(model)
        r = relabel_rewards(ds, fn, source)
    stats: dict[str, Any] = {"reward": reward, "mean": float(r.mean()), "std": float(r.std()),
                             "min": float(r.min()), "max": float(r.max()),
                             "nonzero": int(np.count_nonzero(r))}
    truth = ds.logged_rewards
    if np.isfinite(truth).all() and r.std() > 0 and truth.std() > 0:
        stats["corr_with_logged_reward"] = float(np.corrcoef(r, truth)[0, 1])
    return r, stats


def make_evaluation(args: argparse.Namespace, ds: OfflineDataset) -> tuple[Any, Any, dict[str, Any]]:
    """``(hook, env, settings)`` for ``--eval-task`` (``(None, None, {})`` without it): the
    shared evaluation (:func:`~ros2_erl_vlm.core.rl.evaluation.evaluate_policy`) on fixed seeds."""
    if args.eval_task is None:
        return None, None, {}
    from ros2_erl_vlm.core import seeds
    from ros2_erl_vlm.core.rl.evaluation import evaluate_policy
    from ros2_erl_vlm.envs import load_task, make_env

    if ds.task is not None and ds.task != args.eval_task:
        raise UsageError(f"{ds.path} was recorded on {ds.task}, --eval-task is {args.eval_task}")
    layout = args.eval_layout or ds.meta.get("layout") or "stock"
    task = load_task(args.eval_task, layout=layout)
    env = make_env(task, seed=seeds.eval_env_seed(args.eval_seed_base), render=False)
    check_dims(ds, int(env.observation_space.shape[0]), int(env.action_space.shape[0]),
               f"task {args.eval_task}'s simulator")
    episodes = args.eval_episodes or DEFAULT_EVAL_EPISODES
    base = args.eval_seed_base

    def evaluate(policy: Any) -> dict[str, float]:
        return evaluate_policy(policy, env, episodes, base)

    return evaluate, env, {"task": args.eval_task, "layout": task.layout, "episodes": episodes,
                           "seed_base": base}


def run_settings(args: argparse.Namespace, method: str, reward: str | None, cfg: IQLConfig,
                 ds: OfflineDataset, evaluation: dict[str, Any]) -> dict[str, Any]:
    """What defines the run (``run.json``)."""
    model = args.reward_model
    return json.loads(json.dumps({
        "data": str(ds.path.resolve()), "data_sha256": sha256_of(ds.path), "method": method,
        "reward": reward, "reward_model": None if model is None else str(model.resolve()),
        "reward_model_sha256": None if model is None else sha256_of(model), "seed": args.seed,
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "steps"},
        "eval": evaluation, "steps": args.steps, "device": args.device, "log_every": args.log_every,
        "checkpoint_every": args.checkpoint_every, "eval_every": args.eval_every}))


def check_resume(run_dir: Path, settings: dict[str, Any]) -> None:
    """``UsageError`` naming each setting that differs from the run's ``run.json``."""
    path = run_dir / RUN_SETTINGS_FILE
    if not path.is_file():
        raise UsageError(f"{run_dir}: no {RUN_SETTINGS_FILE}, not an offline training run")
    saved = json.loads(path.read_text())
    diffs = settings_diff(flatten(saved), flatten(settings), RESUMABLE)
    if diffs:
        raise UsageError(f"{run_dir} was started with other settings; resume it with the same ones "
                         f"(only --steps, --device and the periods may change): {'; '.join(diffs)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(max(1, args.threads))
    from ros2_erl_vlm.core.offline.trainer import CHECKPOINT_FILE, OfflineTrainer

    env = None
    try:
        check_numbers(args)
        method, reward = resolve_method(args)
        cfg = make_config(args)
        run_dir: Path = args.out
        ckpt = run_dir / CHECKPOINT_FILE
        if args.resume and not ckpt.is_file():
            raise UsageError(f"--resume: {ckpt} does not exist")
        if not args.resume and ckpt.exists():
            raise UsageError(f"{run_dir} already holds a run; pass --resume or another --out")
        ds = load_dataset(args.data)
        rewards, reward_stats = training_rewards(ds, reward, args.reward_model)
        evaluate, env, evaluation = make_evaluation(args, ds)
        settings = run_settings(args, method, reward, cfg, ds, evaluation)
        if args.resume:
            check_resume(run_dir, settings)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / RUN_SETTINGS_FILE, json.dumps(settings, indent=1))
        print(f"erl_vlm offline: {method} on {ds.path.name} ({len(ds)} transitions, "
              f"{ds.num_episodes} episodes, {ds.success_rate():.0%} marked successful) for "
              f"{args.steps} steps -> {run_dir}", file=sys.stderr)
        bar = None
        progress = None
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=args.steps, unit="step", dynamic_ncols=True, file=sys.stderr)

            def progress(step: int, total: int, post: dict[str, Any]) -> None:
                bar.update(step - bar.n)
                bar.set_postfix(post, refresh=False)

        trainer = OfflineTrainer(ds, method, cfg, rewards, run_dir=run_dir, seed=args.seed,
                                 device=args.device, log_every=args.log_every,
                                 checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                                 evaluate=evaluate, tensorboard=not args.no_tensorboard,
                                 progress=progress)
        if args.resume:
            trainer.load(ckpt)
    except (ValueError, FileNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if env is not None:
            env.close()
        return 1
    if bar is not None:
        bar.update(trainer.step)
    resume_hint = f"resume with the same flags and --resume (--out {run_dir})"
    try:
        with stop_on_ctrl_c(trainer):
            summary = trainer.run(args.steps)
    except KeyboardInterrupt:
        print(f"\nstopped at once; the last periodic checkpoint is kept, {resume_hint}", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
        trainer.close()
        if env is not None:
            env.close()
    summary.update(dataset={"path": str(ds.path), "transitions": len(ds), "episodes": ds.num_episodes,
                            "marked_successful": ds.success_rate(), "task": ds.task},
                   rewards=reward_stats, checkpoint=str(ckpt), finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    if summary["interrupted"]:
        print(f"\ninterrupted at step {trainer.step}; checkpoint saved, {resume_hint}", file=sys.stderr)
        return 130
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=1, default=str))
    print(json.dumps({k: summary[k] for k in ("method", "steps", "eval", "wall_s")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
