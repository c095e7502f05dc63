"""Aggregate the learning benchmark's per-run files into a table, a JSON summary and a plot.

    python bench/learning_summary.py [--task drawer-open-v3]

Reads ``bench/results/learning/<task>/<method>-s<seed>.json``; writes ``summary.json`` and
``learning_curves.png`` beside them; prints mean +- std of the success rate per method at each
evaluation step and whether the targets (ERL-VLM >= 0.8 at the last step, ERL-VLM > RbRL) hold.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "learning"
METHODS = ("erl-vlm", "rbrl", "sac-true")


def _partial_run(run_dir: Path) -> dict | None:
    """An unfinished run's eval curve, read from its ``eval.csv`` (marked ``partial``)."""
    import csv

    method, _, seed = run_dir.name.rpartition("-s")
    eval_csv = run_dir / "eval.csv"
    if method not in METHODS or not eval_csv.exists():
        return None
    with open(eval_csv) as fh:
        rows = [{"step": int(r["step"]), "success_rate": float(r["success_rate"])} for r in csv.DictReader(fh)]
    if not rows:
        return None
    return {"method": method, "seed": int(seed), "steps": rows[-1]["step"], "eval": rows,
            "final_success_rate": rows[-1]["success_rate"], "partial": True}


def load_runs(task_dir: Path) -> dict[str, list[dict]]:
    """Per method, the runs' result dicts; unfinished runs count with what they reached."""
    runs: dict[str, list[dict]] = defaultdict(list)
    done = set()
    for f in sorted(task_dir.glob("*-s*.json")):
        data = json.loads(f.read_text())
        runs[data["method"]].append(data)
        done.add((data["method"], data["seed"]))
    for run_dir in sorted((task_dir / "runs").glob("*-s*")):
        part = _partial_run(run_dir)
        if part is not None and (part["method"], part["seed"]) not in done:
            runs[part["method"]].append(part)
    return runs


def curves(runs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Common eval steps and mean/std success over runs (only steps every run reached)."""
    per_run = [{int(e["step"]): float(e["success_rate"]) for e in r["eval"]} for r in runs]
    steps = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    mat = np.array([[p[s] for s in steps] for p in per_run]) if steps else np.zeros((0, 0))
    return np.array(steps), mat.mean(0) if steps else np.array([]), mat.std(0) if steps else np.array([])


def main() -> None:
    """Print and write the summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="drawer-open-v3")
    args = ap.parse_args()
    task_dir = RESULTS / args.task
    runs = load_runs(task_dir)
    summary: dict = {"task": args.task, "methods": {}}
    for method in METHODS:
        if method not in runs:
            continue
        steps, mean, std = curves(runs[method])
        finals = [r["final_success_rate"] for r in runs[method]]
        summary["methods"][method] = {
            "seeds": sorted(r["seed"] for r in runs[method]),
            "steps_completed": sorted(r["steps"] for r in runs[method]),
            "unfinished_seeds": sorted(r["seed"] for r in runs[method] if r.get("partial")),
            "eval_steps": steps.tolist(), "success_mean": mean.tolist(), "success_std": std.tolist(),
            "final_success_mean": float(np.mean(finals)), "final_success_std": float(np.std(finals)),
        }
        print(f"{method:9s} seeds={summary['methods'][method]['seeds']} "
              f"final success {np.mean(finals):.2f} +- {np.std(finals):.2f} "
              f"(steps {summary['methods'][method]['steps_completed']})")
    m = summary["methods"]
    if "erl-vlm" in m:
        summary["target_erl_vlm_ge_0.8"] = m["erl-vlm"]["final_success_mean"] >= 0.8
    if "erl-vlm" in m and "rbrl" in m:
        summary["target_erl_vlm_beats_rbrl"] = m["erl-vlm"]["final_success_mean"] > m["rbrl"]["final_success_mean"]
    (task_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for method, d in m.items():
            s, mu, sd = np.array(d["eval_steps"]), np.array(d["success_mean"]), np.array(d["success_std"])
            if len(s) == 0:
                continue
            ax.plot(s / 1000, mu, label=f"{method} (n={len(d['seeds'])})")
            ax.fill_between(s / 1000, mu - sd, mu + sd, alpha=0.2)
        ax.set_xlabel("env steps (k)")
        ax.set_ylabel("success rate (10 eval episodes)")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{args.task}, oracle rater with 20% label noise")
        ax.legend()
        fig.tight_layout()
        fig.savefig(task_dir / "learning_curves.png", dpi=120)
    except ImportError:
        pass
    print(f"wrote {task_dir / 'summary.json'}")


if __name__ == "__main__":
    main()
