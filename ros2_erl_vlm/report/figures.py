"""``report.png``: a run's learning and rating curves on one page (matplotlib, Agg backend).

Six panels, each saying "no data" (and why) when its stream is absent:

1. evaluation success rate vs env step (``eval.csv``), with the training episodes' success;
2. true (dense) return vs env step: evaluation mean and every training episode (``train.csv``);
3. the rater's agreement with the simulator's truth class per rating round;
4. the share of the round's rated states truly above the bottom class (the signal the ratings
   could carry at all);
5. the newest reward model's reward against true progress on the rated states, coloured by the
   class the rater gave;
6. every reward model version's rank correlation with true progress on those states.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.report.learned_reward import RewardFit
from ros2_erl_vlm.report.read_run import RunData, column
from ros2_erl_vlm.report.summary import round_rows


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _no_data(ax: Any, title: str, why: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, f"no data\n({why})", ha="center", va="center", transform=ax.transAxes,
            fontsize=9, color="0.4", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _steps_axis(ax: Any) -> None:
    ax.set_xlabel("env steps")
    ax.grid(alpha=0.3)


def _success(ax: Any, run: RunData) -> None:
    title = "evaluation success rate"
    s, v = column(run.eval, "success_rate")
    if not len(s):
        where = "sac_agent/eval.csv" if run.kind == "graph" else "eval.csv"
        _no_data(ax, title, f"no {where} rows yet")
        return
    ax.plot(s, v, "o-", color="tab:blue", label="eval (deterministic)")
    ts, tv = column(run.train, "success")
    if len(ts):
        k = min(10, len(tv))
        smooth = np.convolve(tv, np.ones(k) / k, mode="valid")
        ax.plot(ts[k - 1:], smooth, color="tab:orange", alpha=0.7, label=f"training episodes (mean of {k})")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("success rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    _steps_axis(ax)


def _true_return(ax: Any, run: RunData) -> None:
    title = "true (dense) return per episode"
    es, ev = column(run.eval, "true_return")
    ts, tv = column(run.train, "true_return")
    if not len(es) and not len(ts):
        _no_data(ax, title, "no eval.csv / train.csv rows yet")
        return
    if len(ts):
        ax.plot(ts, tv, ".", color="tab:orange", alpha=0.5, label="training episodes")
    if len(es):
        ax.plot(es, ev, "o-", color="tab:blue", label="eval mean")
    ax.set_ylabel("true return")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    _steps_axis(ax)


def _per_round(ax: Any, run: RunData, key: str, title: str, ylabel: str) -> None:
    rows, source = round_rows(run)
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), float) and r.get("step") is not None]
    if not pts:
        if run.kind == "offline":
            why = "an offline run keeps no ratings"
        elif not run.ratings and not run.reward:
            why = "no rating round yet"
        elif not run.task and run.ratings:
            why = "the task is unknown (pass --task)"
        else:
            why = "no simulator truth with the ratings"
        _no_data(ax, title, why)
        return
    s, v = (np.array(x, dtype=float) for x in zip(*pts, strict=True))
    ax.plot(s, v, "o-", color="tab:green")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} (from {source})", fontsize=10)
    _steps_axis(ax)


def _fit_scatter(ax: Any, run: RunData, fit: RewardFit | None) -> None:
    title = "learned reward vs true progress"
    if fit is None:
        why = ("an offline run keeps no ratings" if run.kind == "offline" else
               "no reward model saved yet" if not run.models else
               "no rated state with simulator truth")
        _no_data(ax, title, why)
        return
    import matplotlib

    n = run.num_classes or int(fit.labels.max()) + 1
    colours = matplotlib.colormaps["RdYlGn"].resampled(max(n, 2))
    for c in range(-1, n):
        mask = fit.labels == c
        if not mask.any():
            continue
        name = ("abstained" if c < 0 else run.class_names[c] if c < len(run.class_names) else f"class {c}")
        ax.scatter(fit.progress[mask], fit.reward[mask], s=10, alpha=0.7,
                   color="0.6" if c < 0 else colours(c), label=f"rated {name}")
    ax.set_xlabel("true progress (simulator)")
    ax.set_ylabel(f"learned reward (model v{fit.latest_version})")
    rho = fit.spearman[-1]
    ax.set_title(f"{title}: Spearman {'-' if rho is None else format(rho, '+.2f')}, "
                 f"{fit.points} rated states", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)


def _fit_versions(ax: Any, fit: RewardFit | None) -> None:
    title = "reward model vs true progress per version"
    pairs = [] if fit is None else zip(fit.versions, fit.spearman, strict=True)
    pts = [(v, r) for v, r in pairs if r is not None]
    if not pts:
        _no_data(ax, title, "no reward model scored" if fit is None else "correlation undefined")
        return
    v, r = zip(*pts, strict=True)
    ax.plot(v, r, "o-", color="tab:purple")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("reward model version (one per rating round)")
    ax.set_ylabel("Spearman with true progress")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def draw_report(run: RunData, fit: RewardFit | None, path: Path) -> Path:
    """Draw the six panels (module docstring) of ``run`` into ``path`` (a PNG)."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    _success(axes[0, 0], run)
    _true_return(axes[0, 1], run)
    _per_round(axes[0, 2], run, "truth_agreement", "rater agreement with the truth",
               "share of answers = truth class")
    _per_round(axes[1, 0], run, "truth_above_bottom", "rated states truly above the bottom class",
               "share of the round's states")
    _fit_scatter(axes[1, 1], run, fit)
    _fit_versions(axes[1, 2], fit)
    state = "finished" if run.finished else "in progress"
    fig.suptitle(f"{run.path.name}: {run.kind} run, task {run.task or '?'}, {state}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
