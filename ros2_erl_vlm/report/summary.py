"""A run's numbers in a few lines: ``summary.txt`` for people, ``summary.json`` for tools.

Every number is an aggregate of the run's own streams, computed here from the rows
:mod:`~ros2_erl_vlm.report.read_run` read, never copied from a file that could disagree:

* steps: the largest ``step`` in ``train.csv``/``eval.csv``/``reward.csv``; episodes: rows of
  ``train.csv`` (an offline run's rows are windows of gradient steps: no episodes); for a graph
  run still going, the agent's ``status.json`` step is shown beside;
* evaluation (``eval.csv``): last and best success rate, and "success at N" as the learning
  benchmark defines it (``bench/learning.py``: the mean of the last three evaluations up to N);
* ratings (the rating log): answers, abstentions, late ones, per class, agreement with the truth
  class (simulation), the share of rated states truly above the bottom class;
* rounds (``reward.csv``): count, queries asked/rated/abstained, each round's agreement;
* reward models: versions trained (``reward.csv``), model files, the version the agent adopted
  last, the newest version's rank correlation with true progress on the rated states.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ros2_erl_vlm.core.metrics import SUCCESS_WINDOW
from ros2_erl_vlm.core.metrics import success_at as metrics_success_at
from ros2_erl_vlm.report.learned_reward import RewardFit
from ros2_erl_vlm.report.read_run import Row, RunData, column


def success_at(evals: Sequence[Row], window: int = SUCCESS_WINDOW) -> dict[int, float]:
    """Per evaluation step N, the mean success rate of the last ``window`` evaluations up to N
    (:func:`ros2_erl_vlm.core.metrics.success_at`, the benchmarks' definition)."""
    steps, rates = column(list(evals), "success_rate")
    return metrics_success_at(steps, rates, window)


def round_rows(run: RunData) -> tuple[list[dict[str, Any]], str]:
    """Per rating round: step, ``truth_agreement``, ``truth_above_bottom`` and where they come from.

    From ``reward.csv`` when it has the columns (the learner's own per-round score); else
    recomputed from the rating log grouped by its ``round`` (the same definitions,
    :func:`~ros2_erl_vlm.core.rating.quality.round_quality`, except that ratings arriving after
    their round was trained count in their round here). Returns ``(rows, source)``.
    """
    keys = ("truth_agreement", "truth_above_bottom")
    if run.reward and any(any(isinstance(r.get(k), float) for k in keys) for r in run.reward):
        return [{"step": r.get("step"), **{k: r.get(k) for k in keys}} for r in run.reward], "reward.csv"
    by_round: dict[int, list[Any]] = {}
    for r in run.ratings:
        if r.round is not None and r.truth_class is not None:
            by_round.setdefault(r.round, []).append(r)
    rows = []
    for rnd in sorted(by_round):
        rs = by_round[rnd]
        answered = [r for r in rs if r.label is not None]
        steps = [r.env_step for r in rs if r.env_step is not None]
        rows.append({"step": float(min(steps)) if steps else None, "round": rnd,
                     "truth_agreement": (float(np.mean([r.label == r.truth_class for r in answered]))
                                         if answered else None),
                     "truth_above_bottom": float(np.mean([r.truth_class > 0 for r in rs]))})
    return rows, "ratings.erlr" if rows else ""


def _num(rows: Sequence[Row], key: str) -> list[float]:
    return [float(r[key]) for r in rows if isinstance(r.get(key), float) and np.isfinite(r[key])]


def _last(values: list[float]) -> float | None:
    return values[-1] if values else None


def compute_summary(run: RunData, fit: RewardFit | None = None) -> dict[str, Any]:
    """The summary's numbers (see module docstring) as a JSON-able dict."""
    steps = [s for rows in (run.train, run.eval, run.reward) for s in _num(rows, "step")]
    _, rates = column(run.eval, "success_rate")
    eval_steps = _num(run.eval, "step")
    at = success_at(run.eval)
    best = int(np.argmax(rates)) if len(rates) else None
    ev: dict[str, Any] = {
        "evaluations": len(rates),
        "last_step": int(eval_steps[-1]) if eval_steps else None,
        "last_success_rate": float(rates[-1]) if len(rates) else None,
        "best_success_rate": float(rates[best]) if best is not None else None,
        "best_step": int(column(run.eval, "success_rate")[0][best]) if best is not None else None,
        "last_true_return": _last(_num(run.eval, "true_return")),
        "success_window": SUCCESS_WINDOW,
        "success_at": {str(k): v for k, v in at.items()},
        "success_at_last": at[max(at)] if at else None,
    }
    rated = [r for r in run.ratings if r.label is not None]
    with_truth = [r for r in rated if r.truth_class is not None]
    truth_known = [r for r in run.ratings if r.truth_class is not None]
    n = run.num_classes
    ratings: dict[str, Any] = {
        "records": len(run.ratings), "rated": len(rated),
        "abstentions": len(run.ratings) - len(rated), "late": sum(r.late for r in run.ratings),
        "per_class": ([sum(r.label == c for r in rated) for c in range(n)] if n else []),
        "class_names": list(run.class_names),
        "with_truth": len(with_truth),
        "wrong": sum(r.wrong for r in with_truth),
        "truth_agreement": (float(np.mean([r.label == r.truth_class for r in with_truth]))
                            if with_truth else None),
        "truly_above_bottom": (float(np.mean([r.truth_class > 0 for r in truth_known]))  # type: ignore[operator]
                               if truth_known else None),
        "rounds_in_log": len({r.round for r in run.ratings if r.round is not None}),
    }
    per_round, source = round_rows(run)
    agree = [float(r["truth_agreement"]) for r in per_round if isinstance(r.get("truth_agreement"), float)]
    rounds: dict[str, Any] = {
        "rounds": len(run.reward),
        "asked": int(sum(_num(run.reward, "asked"))), "rated": int(sum(_num(run.reward, "rated"))),
        "abstained": int(sum(_num(run.reward, "abstained"))),
        "quality_source": source,
        "last_truth_agreement": _last(agree),
        "mean_truth_agreement": float(np.mean(agree)) if agree else None,
        "last_truth_above_bottom": _last([float(r["truth_above_bottom"]) for r in per_round
                                          if isinstance(r.get("truth_above_bottom"), float)]),
    }
    trained = _num(run.reward, "model_version")
    # Graph: the versions the agent relabelled with; one process: the agent uses the learner's model.
    adopted = (_num(run.relabel, "version") or _num(run.eval, "model_version") if run.kind == "graph"
               else trained)
    model: dict[str, Any] = {
        "versions_trained": int(max(trained)) if trained else None,
        "model_files": len(run.models),
        "newest_file_version": run.models[-1][0] if run.models else None,
        "adopted_by_agent": int(max(adopted)) if adopted else None,
        "spearman_newest": None if fit is None else fit.spearman[-1],
        "spearman_version": None if fit is None else fit.latest_version,
        "spearman_points": None if fit is None else fit.points,
    }
    agent_now = (run.status.get("sac_agent") or {}).get("step")
    wall = _num(run.train, "wall_s") + _num(run.eval, "wall_s")
    return {
        "run_dir": str(run.path), "kind": run.kind, "task": run.task, "layout": run.layout,
        "seed": run.seed, "finished": run.finished, "total_steps": run.total_steps,
        "steps": int(max(steps)) if steps else 0,
        "agent_step_now": int(agent_now) if isinstance(agent_now, int) else None,
        "episodes": None if run.kind == "offline" else len(run.train),  # offline rows: step windows
        "train_success_rate": (float(np.mean(_num(run.train, "success")))
                               if _num(run.train, "success") else None),
        "last_episode_true_return": _last(_num(run.train, "true_return")),
        "wall_s": max(wall) if wall else None,
        "eval": ev, "ratings": ratings, "reward_rounds": rounds, "reward_model": model,
        "notes": list(run.notes),
    }


def _f(x: Any, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _pct(x: Any) -> str:
    return "-" if x is None else f"{x:.0%}"


def summary_text(s: dict[str, Any]) -> str:
    """``summary.txt``: the summary in a few lines."""
    ev, ra, ro, mo = s["eval"], s["ratings"], s["reward_rounds"], s["reward_model"]
    state = "finished" if s["finished"] else "in progress (or stopped early)"
    total = f" of {s['total_steps']}" if s["total_steps"] else ""
    now = (f" (agent now at {s['agent_step_now']})"
           if s["agent_step_now"] is not None and s["agent_step_now"] != s["steps"] else "")
    lines = [
        f"run      {s['run_dir']}",
        f"kind     {s['kind']}, task {s['task'] or '?'}"
        + (f" ({s['layout']} layout)" if s["layout"] else "") + f", seed {_f(s['seed'], 'd')}, {state}",
        f"steps    {s['steps']}{total}{now}"
        + (" gradient steps" if s["episodes"] is None else f", {s['episodes']} episodes")
        + (f", {s['wall_s']:.0f} s" if s["wall_s"] is not None else ""),
        f"eval     {ev['evaluations']} evaluations; last success {_f(ev['last_success_rate'])} at step "
        f"{_f(ev['last_step'], 'd')}, best {_f(ev['best_success_rate'])} at step {_f(ev['best_step'], 'd')}, "
        f"success at {_f(ev['last_step'], 'd')} (mean of the last {ev['success_window']}) "
        f"{_f(ev['success_at_last'])}; last true return {_f(ev['last_true_return'], '.1f')}",
    ]
    if ra["records"]:
        per_class = ", ".join(f"{name or c} {k}" for c, (name, k) in
                              enumerate(zip(ra["class_names"] or [""] * len(ra["per_class"]),
                                            ra["per_class"], strict=False)))
        lines.append(
            f"ratings  {ra['rated']} rated ({per_class}), {ra['abstentions']} abstentions"
            + (f", {ra['late']} late" if ra["late"] else "")
            + (f"; agreement with the truth {_pct(ra['truth_agreement'])} ({ra['wrong']} wrong of "
               f"{ra['with_truth']}), truly above the bottom class {_pct(ra['truly_above_bottom'])}"
               if ra["with_truth"] else "; no simulator truth to compare with"))
    else:
        lines.append("ratings  none")
    if ro["rounds"] or ro["quality_source"]:
        lines.append(
            f"rounds   {ro['rounds']} (asked {ro['asked']}, rated {ro['rated']}, abstained "
            f"{ro['abstained']}); agreement last {_pct(ro['last_truth_agreement'])}, mean "
            f"{_pct(ro['mean_truth_agreement'])}; last round truly above bottom "
            f"{_pct(ro['last_truth_above_bottom'])}"
            + (f" (from {ro['quality_source']})" if ro["quality_source"] else ""))
    lines.append(
        f"reward   model v{_f(mo['versions_trained'], 'd')} trained, {mo['model_files']} model files, "
        f"agent on v{_f(mo['adopted_by_agent'], 'd')}"
        + (f"; v{mo['spearman_version']} vs true progress on {mo['spearman_points']} rated states: "
           f"Spearman {_f(mo['spearman_newest'], '+.2f')}" if mo["spearman_version"] is not None else ""))
    lines += [f"note     {n}" for n in s["notes"]]
    return "\n".join(lines) + "\n"


def write_summary(s: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``summary.txt`` and ``summary.json`` into ``out_dir``; returns their paths."""
    txt, js = out_dir / "summary.txt", out_dir / "summary.json"
    txt.write_text(summary_text(s))
    js.write_text(json.dumps(s, indent=2, default=str) + "\n")
    return txt, js
