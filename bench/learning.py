"""Learning benchmark: one (method, seed) run on a MetaWorld task with a noisy oracle rater.

Methods: ``erl-vlm`` (MAE + stratified batches + class weights), ``rbrl`` (cross-entropy, plain
batches, no weights) and ``sac-true`` (SAC on the environment's dense reward). Defaults follow the
issue: drawer-open-v3, 150k env steps, ratings every 5k steps (50 per round), 20% symmetric label
noise, evaluation every 10k steps over 10 deterministic episodes. SAC uses the paper's settings
except the batch size: 256 instead of 512 (``--batch``), to halve the cost on a 2-core CPU; every
method gets the same.

Each run writes ``bench/results/learning/<task>/<method>-s<seed>.json``: settings, eval curve,
wall time and ``label_quality``, the run's ratings scored against simulator truth (confusion
matrix, share of rated states truly above the bottom class; ``--rescore`` recomputes only that).
Runs with other label noise than the benchmark's 20% symmetric are named
``<method>@<mode><noise>-s<seed>``, e.g. ``erl-vlm@neighbor0.2-s0`` or ``erl-vlm@clean-s0``.
The run directory (checkpoints) stays under ``bench/results/learning/<task>/runs``, so an
interrupted run continues where it stopped when started again (runs can be spread over several
sittings). ``bench/learning_summary.py`` aggregates the files into a table and a plot.

    python bench/learning.py --method erl-vlm --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "learning"


def label_quality(task: str, run_dir: Path) -> dict | None:
    """The run's ratings scored against simulator truth (confusion matrix, share of rated states
    truly above the bottom class, ...; see ``core/rating/quality.py``), or None without a log."""
    from ros2_erl_vlm.core.rating.dataset import read_ratings
    from ros2_erl_vlm.core.rating.quality import ratings_agreement
    from ros2_erl_vlm.envs.tasks import load_task

    log = run_dir / "ratings.erlr"
    if not log.exists():
        return None
    spec = load_task(task)
    records = read_ratings(log)
    if not records:
        return None
    return ratings_agreement(records, spec.bin_truth, int(records[0]["num_classes"]))


def run_label(method: str, noise: float, mode: str) -> str:
    """``method`` for the benchmark's condition (20% symmetric noise), else ``method@<mode><noise>``."""
    if method == "sac-true" or (noise == 0.2 and mode == "symmetric"):
        return method
    return f"{method}@clean" if noise == 0 else f"{method}@{mode}{noise:g}"


def code_commit() -> str | None:
    """Short HEAD commit of this checkout, ``-dirty`` with uncommitted changes to tracked files."""
    root = str(Path(__file__).resolve().parent)
    head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (head + ("-dirty" if dirty else "")) or None


def main() -> int:
    """Run (or resume) one benchmark run and write its results file."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", choices=("erl-vlm", "rbrl", "sac-true"), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", default="drawer-open-v3")
    ap.add_argument("--steps", type=int, default=150_000)
    ap.add_argument("--label-noise", type=float, default=0.2)
    ap.add_argument("--noise-mode", choices=("symmetric", "neighbor"), default="symmetric")
    ap.add_argument("--eval-every", type=int, default=10_000)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], help="extra loop settings (KEY=VALUE)")
    ap.add_argument("--batch", type=int, default=256, help="SAC batch size (paper: 512)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--name", help="run name (default: <method>[@<noise condition>]-s<seed>)")
    ap.add_argument("--rescore", action="store_true",
                    help="only recompute the label quality of a finished run's results file")
    args = ap.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    from ros2_erl_vlm.train import main as train_main

    out_dir = RESULTS / args.task
    name = args.name or f"{run_label(args.method, args.label_noise, args.noise_mode)}-s{args.seed}"
    run_dir = out_dir / "runs" / name
    resume = (run_dir / "checkpoint.pt").exists()
    out = out_dir / f"{name}.json"
    if args.rescore:
        result = json.loads(out.read_text())
        result["label_quality"] = label_quality(args.task, run_dir)
        out.write_text(json.dumps(result, indent=2))
        print(f"rescored {out}: {result['label_quality']}")
        return 0
    argv = ["--task", args.task, "--method", args.method, "--seed", str(args.seed),
            "--steps", str(args.steps), "--label-noise", str(args.label_noise),
            "--noise-mode", args.noise_mode,
            "--run-dir", str(run_dir), "--threads", str(args.threads),
            "--set", f"eval_every={args.eval_every}", "--set", f"eval_episodes={args.eval_episodes}",
            "--set", "checkpoint_every=10000", "--set", f"sac.batch_size={args.batch}",
            "--no-tensorboard"]
    for item in args.set:
        argv += ["--set", item]
    if resume:
        argv.append("--resume")
    if not args.progress:
        argv.append("--no-progress")
    # The code this sitting runs: HEAD now (the process keeps what it imported), "-dirty" with
    # uncommitted changes; every sitting of a run is listed in its run directory.
    commit = code_commit()
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "sittings.jsonl", "a") as fh:
        fh.write(json.dumps({"commit": commit, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "resumed": resume}) + "\n")
    t0 = time.time()
    code = train_main(argv)
    if code != 0:
        return code
    summary = json.loads((run_dir / "summary.json").read_text())
    sittings = [json.loads(line) for line in (run_dir / "sittings.jsonl").read_text().splitlines() if line]
    result = {
        "benchmark": "learning", "task": args.task, "method": args.method, "seed": args.seed,
        "label": name.rpartition("-s")[0],
        "steps": summary["steps"], "label_noise": args.label_noise, "noise_mode": args.noise_mode,
        "eval": summary["eval"], "final_success_rate": summary["final_success_rate"],
        "ratings": summary["ratings"], "label_quality": label_quality(args.task, run_dir),
        "wall_s_this_sitting": time.time() - t0,
        "resumed": resume, "settings": summary["config"], "code_commit": commit or None,
        "code_commits": list(dict.fromkeys(x["commit"] for x in sittings)),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}: final success {result['final_success_rate']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
