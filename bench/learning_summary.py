"""Aggregate the learning benchmark's per-run files into a table, a JSON summary and a plot.

    python bench/learning_summary.py [--task drawer-open-v3] [--layout paper]

``--layout`` reads the current protocol's folder ``<task>-<layout>`` (``bench/learning.py``),
whose runs report "success at N" (the mean of the last three evaluations); without it, the
earlier stock-layout runs' folder ``<task>``.

Reads ``bench/results/learning/<task>/<label>-s<seed>.json`` (``label`` is the method, or
``method@<noise condition>`` for runs outside the benchmark's 20% symmetric noise) and unfinished
runs' ``eval.csv``; writes ``summary.json`` and ``learning_curves.png`` (success rate and true
return per label, mean +- std over seeds) beside them; prints the final numbers per label and
whether the targets (ERL-VLM >= 0.8 at the last step, ERL-VLM > RbRL) hold, and per run the share of
rated states that were truly above the bottom class (the signal the ratings could carry). Once a
label has a finished run, its unfinished runs are listed but not counted.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "learning"
METHODS = ("erl-vlm", "rbrl", "sac-true")


def _label_order(label: str) -> tuple[int, str]:
    method = label.split("@", 1)[0]
    return (METHODS.index(method) if method in METHODS else len(METHODS), label)


def _partial_run(run_dir: Path) -> dict | None:
    """An unfinished run's eval curve, read from its ``eval.csv`` (marked ``partial``)."""
    import csv

    label, _, seed = run_dir.name.rpartition("-s")
    eval_csv = run_dir / "eval.csv"
    if label.split("@", 1)[0] not in METHODS or not eval_csv.exists():
        return None
    with open(eval_csv) as fh:
        rows = [{"step": int(r["step"]), "success_rate": float(r["success_rate"]),
                 "true_return": float(r["true_return"])} for r in csv.DictReader(fh)]
    if not rows:
        return None
    return {"label": label, "method": label.split("@", 1)[0], "seed": int(seed), "steps": rows[-1]["step"],
            "eval": rows, "final_success_rate": rows[-1]["success_rate"], "partial": True}


def load_runs(task_dir: Path) -> dict[str, list[dict]]:
    """Per label, the runs' result dicts; unfinished runs count with what they reached."""
    runs: dict[str, list[dict]] = defaultdict(list)
    done = set()
    for f in sorted(task_dir.glob("*-s*.json")):
        data = json.loads(f.read_text())
        label = data.get("label", data["method"])
        runs[label].append(data)
        done.add((label, data["seed"]))
    for run_dir in sorted((task_dir / "runs").glob("*-s*")):
        part = _partial_run(run_dir)
        if part is not None and (part["label"], part["seed"]) not in done:
            runs[part["label"]].append(part)
    return dict(sorted(runs.items(), key=lambda kv: _label_order(kv[0])))


def curves(runs: list[dict], key: str = "success_rate") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Common eval steps and mean/std of ``key`` over runs (only steps every run reached)."""
    per_run = [{int(e["step"]): float(e[key]) for e in r["eval"]} for r in runs]
    steps = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    mat = np.array([[p[s] for s in steps] for p in per_run]) if steps else np.zeros((0, 0))
    return np.array(steps), mat.mean(0) if steps else np.array([]), mat.std(0) if steps else np.array([])


def main() -> None:
    """Print and write the summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="drawer-open-v3")
    ap.add_argument("--layout", help="the protocol's layout folder (<task>-<layout>)")
    args = ap.parse_args()
    task_dir = RESULTS / (f"{args.task}-{args.layout}" if args.layout else args.task)
    runs = load_runs(task_dir)
    summary: dict = {"task": args.task, "methods": {}}
    for label, all_runs in runs.items():
        # Finished runs only, once a label has any: an unfinished run would cut the curves short
        # and put an early evaluation among the final ones. It is listed, not counted.
        finished = sorted((r for r in all_runs if not r.get("partial")), key=lambda r: r["seed"])
        label_runs = finished or sorted(all_runs, key=lambda r: r["seed"])
        left_out = [r for r in all_runs if r not in label_runs]
        steps, mean, std = curves(label_runs)
        _, ret_mean, ret_std = curves(label_runs, "true_return")
        finals = [r.get("success_at_end", r.get("final_success_rate")) for r in label_runs]
        quality = [r["label_quality"] for r in label_runs if (r.get("label_quality") or {}).get("answered")]
        final_ret = [r["eval"][-1]["true_return"] for r in label_runs]
        summary["methods"][label] = {
            "seeds": [r["seed"] for r in label_runs],
            "steps_completed": [r["steps"] for r in label_runs],  # per seed, in the order of "seeds"
            "unfinished_seeds": [r["seed"] for r in label_runs if r.get("partial")],
            "unfinished_not_counted": [{"seed": r["seed"], "steps": r["steps"]} for r in left_out],
            "eval_steps": steps.tolist(), "success_mean": mean.tolist(), "success_std": std.tolist(),
            "true_return_mean": ret_mean.tolist(), "true_return_std": ret_std.tolist(),
            "final_success_mean": float(np.mean(finals)), "final_success_std": float(np.std(finals)),
            "final_true_return_mean": float(np.mean(final_ret)),
            # Of the states the rater was asked about, the share truly above the bottom class, and
            # how often the rating matched the truth class (finished runs with a scored log).
            "rated_truly_above_bottom": [q["truly_above_bottom"] for q in quality],
            "rating_accuracy": [q["accuracy"] for q in quality],
        }
        print(f"{label:22s} seeds={summary['methods'][label]['seeds']} "
              f"final success {np.mean(finals):.2f} +- {np.std(finals):.2f}, "
              f"true return {np.mean(final_ret):.0f} (steps {summary['methods'][label]['steps_completed']})"
              + (f"; rated states truly above the bottom class: "
                 f"{', '.join(f'{q:.1%}' for q in summary['methods'][label]['rated_truly_above_bottom'])}"
                 if quality else "")
              + "".join(f"; seed {r['seed']} unfinished at {r['steps']} steps, not counted" for r in left_out))
    m = summary["methods"]
    if args.layout and "erl-vlm" in m:  # the learning issue's targets
        summary["target_erl_vlm_ge_0.9"] = m["erl-vlm"]["final_success_mean"] >= 0.9
        if "rbrl" in m:
            curve = {k: float(np.mean(m[k]["success_mean"])) for k in ("erl-vlm", "rbrl")}
            summary["mean_success_over_curve"] = curve
            summary["target_erl_vlm_0.1_above_rbrl_over_curve"] = curve["erl-vlm"] >= curve["rbrl"] + 0.1
    elif "erl-vlm" in m:
        summary["target_erl_vlm_ge_0.8"] = m["erl-vlm"]["final_success_mean"] >= 0.8
    if "erl-vlm" in m and "rbrl" in m:
        summary["target_erl_vlm_beats_rbrl"] = m["erl-vlm"]["final_success_mean"] > m["rbrl"]["final_success_mean"]
    (task_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax, ax_ret) = plt.subplots(1, 2, figsize=(11, 4))
        for label, d in m.items():
            s = np.array(d["eval_steps"])
            if len(s) == 0:
                continue
            name = f"{label} (n={len(d['seeds'])})"
            for axis, mean_key, std_key in ((ax, "success_mean", "success_std"),
                                            (ax_ret, "true_return_mean", "true_return_std")):
                mu, sd = np.array(d[mean_key]), np.array(d[std_key])
                axis.plot(s / 1000, mu, label=name)
                axis.fill_between(s / 1000, mu - sd, mu + sd, alpha=0.2)
        ax.set_xlabel("env steps (k)")
        ax.set_ylabel(f"success rate ({20 if args.layout else 10} eval episodes)")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{args.task}: success " + (f"({args.layout} layout, simulated VLM rater)" if args.layout
                     else "(stock layout, oracle, 20% symmetric noise)"))
        ax.legend(fontsize=8)
        ax_ret.set_xlabel("env steps (k)")
        ax_ret.set_ylabel("true (dense) return per episode")
        ax_ret.set_title("task progress the policy makes")
        fig.tight_layout()
        fig.savefig(task_dir / "learning_curves.png", dpi=120)
    except ImportError:
        pass
    print(f"wrote {task_dir / 'summary.json'}")


if __name__ == "__main__":
    main()
