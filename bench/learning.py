"""Learning benchmark: one (method, condition, seed) run of the in-process loop on a MetaWorld task.

Methods: ``erl-vlm`` (MAE + stratified batches + class weights), ``rbrl`` (cross-entropy, plain
batches, no weights) and ``sac-true`` (SAC on the environment's dense reward). ERL-VLM and RbRL
never see the dense reward (it is logged as truth only) and get the same layout, rater and reward
scaling. The protocol (the learning issue's):

* the task's paper layout (``--layout stock``: MetaWorld's randomised one), the simulated VLM-like
  rater at its frozen default (``simulated_vlm``; ``--rater oracle --label-noise 0.2`` for the old
  uniform flips), the reward scale on (``reward.output_norm/input_norm: rated``, the defaults);
* SAC batch 256 for every method (the paper's 512 halves the speed on this 2-core CPU);
* steps per task: drawer-open-v3 100k, sweep-into-v3 150k (``--steps``); ratings every 5k steps,
  50 per round (``--queries-per-round``, ``--query-strategy``);
* evaluation every 10k steps on 20 deterministic episodes; "success at N" is the mean of the last
  three evaluations up to N.

Each run writes ``bench/results/learning/<task>-<layout>/<label>-s<seed>.json``: the settings
(loop, rater and its settings), the commit the run ran from (every sitting's), the eval curve,
``success_at`` per evaluation step, the rater's agreement with the truth and the share of rated
states truly above the bottom class per round, the whole log's confusion matrix
(``label_quality``) and the final learned reward's correlation with task progress
(``reward_alignment``). ``label`` is the method, with ``@<condition>`` for anything off the
protocol (e.g. ``erl-vlm@disagreement+q25``, ``erl-vlm@entropy0.05``); ``--name`` names other
variations. The run directory (checkpoints) is ``<results dir>/runs/<label>-s<seed>`` (git-ignored,
``--runs`` to put it elsewhere): started again, a run resumes where it stopped. ``--snapshot``
writes the results file of an unfinished run from what it logged so far (``"finished": false``).
Run it from a checkout pinned to one commit (the install is editable). ``bench/learning_summary.py``
aggregates the files.

    python bench/learning.py --method erl-vlm --seed 0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ros2_erl_vlm.core.metrics import SUCCESS_WINDOW
from ros2_erl_vlm.core.metrics import success_at as metrics_success_at

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "learning"
#: Env steps per task in the protocol (other tasks: 100k).
PROTOCOL_STEPS = {"drawer-open-v3": 100_000, "sweep-into-v3": 150_000}
#: The protocol's ratings per round.
QUERIES_PER_ROUND = 50


def success_at(evals: list[dict[str, Any]], window: int = SUCCESS_WINDOW) -> dict[int, float]:
    """Per evaluation step N, the mean success of the last ``window`` evaluations up to N
    (:func:`ros2_erl_vlm.core.metrics.success_at` on an eval.csv's rows)."""
    return metrics_success_at([int(e["step"]) for e in evals], [float(e["success_rate"]) for e in evals],
                              window)


def run_label(args: argparse.Namespace) -> str:
    """The method, with ``@<condition>`` for each setting off the protocol."""
    parts = []
    if args.method != "sac-true":
        if args.rater != "simulated_vlm":
            noise = f"{args.noise_mode}{args.label_noise:g}" if args.label_noise else "clean"
            parts.append(args.rater + ("" if args.rater != "oracle" else f"-{noise}"))
        if args.query_strategy != "uniform":
            parts.append(args.query_strategy)
        if args.queries_per_round != QUERIES_PER_ROUND:
            parts.append(f"q{args.queries_per_round}")
        if args.entropy_bonus:
            parts.append(f"entropy{args.entropy_bonus:g}")
    return args.method + ("@" + "+".join(parts) if parts else "")


def code_commit() -> str | None:
    """Short HEAD commit of this checkout, ``-dirty`` with uncommitted changes to tracked files."""
    root = str(BENCH)
    head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (head + ("-dirty" if dirty else "")) or None


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a metrics CSV ([] when it does not exist)."""
    if not path.exists():
        return []
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def rounds(run_dir: Path) -> list[dict[str, Any]]:
    """Per rating round (``reward.csv``): step, the rater's agreement with the truth, the share of
    rated states truly above the bottom class, the rated set's size."""
    keys = ("truth_agreement", "truth_above_bottom", "dataset")
    return [{"step": int(float(r["step"])), **{k: _number(r.get(k, "")) for k in keys if k in r}}
            for r in read_csv(run_dir / "reward.csv")]


def label_quality(task: Any, run_dir: Path) -> dict | None:
    """The run's ratings scored against simulator truth (confusion matrix, share of rated states
    truly above the bottom class, ...; see ``core/rating/quality.py``), or None without a log."""
    from ros2_erl_vlm.core.rating.dataset import read_ratings
    from ros2_erl_vlm.core.rating.quality import ratings_agreement

    log = run_dir / "ratings.erlr"
    records = read_ratings(log) if log.exists() else []
    if not records:
        return None
    return ratings_agreement(records, task.bin_truth, int(records[0]["num_classes"]))


def reward_alignment(task: Any, run_dir: Path) -> dict | None:
    """The last checkpointed learned reward against task progress (``bench/reward_alignment.py``)."""
    sys.path.insert(0, str(BENCH))
    from reward_alignment import score_run

    threshold = task.oracle.thresholds(task.num_classes)[0]
    return score_run(run_dir, threshold, task.bin_truth)


def results(args: argparse.Namespace, task: Any, name: str, run_dir: Path) -> dict[str, Any]:
    """The results file's contents from what ``run_dir`` holds (finished or not)."""
    summary_path = run_dir / "summary.json"
    finished = summary_path.exists()
    if finished:
        summary = json.loads(summary_path.read_text())
        evals = summary["eval"]
    else:
        evals = [{k: _number(v) for k, v in r.items()} for r in read_csv(run_dir / "eval.csv")]
    settings = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    sittings = [json.loads(line) for line in (run_dir / "sittings.jsonl").read_text().splitlines() if line]
    rater_settings = None
    if settings.get("rater") == "simulated_vlm":
        from dataclasses import asdict

        from ros2_erl_vlm.raters.simulated_vlm import SimulatedVlmConfig

        rater_settings = asdict(SimulatedVlmConfig())
    at = success_at(evals)
    return {
        "benchmark": "learning", "task": args.task, "layout": task.layout, "method": args.method,
        "seed": args.seed, "label": name.rpartition("-s")[0], "finished": finished,
        "steps": int(evals[-1]["step"]) if evals else 0, "total_steps": args.steps,
        "eval": evals, "success_at": {str(k): v for k, v in at.items()},
        "success_at_end": at[max(at)] if at else None,
        "mean_success_over_curve": (sum(float(e["success_rate"]) for e in evals) / len(evals)) if evals else None,
        "rounds": rounds(run_dir), "label_quality": label_quality(task, run_dir),
        "reward_alignment": reward_alignment(task, run_dir),
        "rater": settings.get("rater"), "rater_settings": rater_settings,
        "label_noise": settings.get("label_noise"), "noise_mode": settings.get("noise_mode"),
        "settings": settings,
        "code_commits": list(dict.fromkeys(x["commit"] for x in sittings)),
        "sittings": sittings, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", choices=("erl-vlm", "rbrl", "sac-true"), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", default="drawer-open-v3")
    ap.add_argument("--layout", default=None, help="paper (default, the task's) or stock")
    ap.add_argument("--steps", type=int, help="env steps (default: the protocol's for the task)")
    ap.add_argument("--rater", default="simulated_vlm", help="simulated_vlm (protocol) | oracle")
    ap.add_argument("--label-noise", type=float, default=0.0, help="oracle only: uniform flips")
    ap.add_argument("--noise-mode", choices=("uniform", "symmetric", "neighbor"), default="uniform")
    ap.add_argument("--query-strategy", choices=("uniform", "disagreement"), default="uniform")
    ap.add_argument("--queries-per-round", type=int, default=QUERIES_PER_ROUND)
    ap.add_argument("--entropy-bonus", type=float, default=0.0,
                    help="state-entropy bonus weight after the first reward model (exploration)")
    ap.add_argument("--eval-every", type=int, default=10_000)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--set", action="append", default=[], help="extra loop settings (KEY=VALUE)")
    ap.add_argument("--batch", type=int, default=256, help="SAC batch size (paper: 512)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--name", help="run label (default: <method>[@<condition>])")
    ap.add_argument("--runs", type=Path, help="where run directories live (default <results>/runs)")
    ap.add_argument("--snapshot", action="store_true",
                    help="only write the results file from what the run logged so far")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) one benchmark run and write its results file."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    from ros2_erl_vlm.envs import load_task
    from ros2_erl_vlm.train import main as train_main

    task = load_task(args.task, layout=args.layout)
    args.steps = args.steps or PROTOCOL_STEPS.get(args.task, 100_000)
    out_dir = RESULTS / f"{args.task}-{task.layout}"
    name = f"{args.name or run_label(args)}-s{args.seed}"
    run_dir = (args.runs or out_dir / "runs") / name
    out = out_dir / f"{name}.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.snapshot:
        if not (run_dir / "sittings.jsonl").exists():
            print(f"no run at {run_dir}", file=sys.stderr)
            return 1
        result = results(args, task, name, run_dir)
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}: {result['steps']} steps, success at end {result['success_at_end']}")
        return 0
    resume = (run_dir / "checkpoint.pt").exists()
    argv_train = [
        "--task", args.task, "--layout", task.layout, "--method", args.method, "--seed", str(args.seed),
        "--total-steps", str(args.steps), "--rater", args.rater, "--query-strategy", args.query_strategy,
        "--run-dir", str(run_dir), "--threads", str(args.threads),
        "--set", f"eval_every={args.eval_every}", "--set", f"eval_episodes={args.eval_episodes}",
        "--set", "checkpoint_every=10000", "--set", f"sac.batch_size={args.batch}",
        "--set", f"queries_per_round={args.queries_per_round}",
        "--set", f"entropy_bonus={args.entropy_bonus}", "--no-tensorboard"]
    if args.rater == "oracle":
        argv_train += ["--label-noise", str(args.label_noise), "--noise-mode", args.noise_mode]
    for item in args.set:
        argv_train += ["--set", item]
    if resume:
        argv_train.append("--resume")
    if not args.progress:
        argv_train.append("--no-progress")
    # The code this sitting runs: HEAD now (the process keeps what it imported), "-dirty" with
    # uncommitted changes; every sitting of a run is listed in its run directory.
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "sittings.jsonl", "a") as fh:
        fh.write(json.dumps({"commit": code_commit(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "resumed": resume}) + "\n")
    t0 = time.time()
    code = train_main(argv_train)
    if code != 0:
        return code
    result = results(args, task, name, run_dir)
    result["wall_s_last_sitting"] = time.time() - t0
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}: success at {result['steps']} = {result['success_at_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
