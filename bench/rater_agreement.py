"""A rater's agreement with simulator truth on MetaWorld episodes: confusion matrix and friends.

Episodes come from MetaWorld's scripted expert, a uniformly random policy and mixtures of the two
(each step random with probability ``--mix``), so every class of the task shows up. Every
``--every`` steps the task camera's frame is a one-frame query carrying the simulator truth; the
truth class is the task's own binning (``TaskSpec.bin_truth``, what the oracle uses). The rater is
configured as for the ``vlm_rater`` node (``--config`` / ``--backend`` / ``--set``).

    .venv/bin/python bench/rater_agreement.py --task drawer-open-v3 --backend oracle --set noise=0.2
    .venv/bin/python bench/rater_agreement.py --task drawer-open-v3 sweep-into-v3 soccer-v3 \\
        --backend simulated_vlm --episodes 10 --sweep-quality 0.4 0.5 0.6
    .venv/bin/python bench/rater_agreement.py --task soccer-v3 --backend openai \\
        --set model=gpt-4o-mini --set api_key_env=OPENAI_API_KEY

Reported: the confusion matrix (rows: truth, columns: rating) over all queries (the mixed set)
and per policy, abstentions per truth class, accuracy and Cohen's kappa over the answered queries,
the far-error rate (answers two or more classes off, or one class off with the progress at least
``--far-distance`` widths of the true class from the boundary between the two), the error rate by
the state's distance from the nearest boundary of its class (in class widths), and the paper's
diagnostic "top class vs MetaWorld success" (precision/recall). Written to
``bench/results/rater_agreement_<task>_<backend>.json`` with the rater's full settings (for the
simulated VLM: every derived value). ``--sweep-quality`` (simulated VLM only) rates the same
queries again at other qualities and reports accuracy and far-error rate for each: what to look at
when recalibrating the default quality after a change of the tasks' progress or thresholds.
Several ``--task`` names run one after another.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

from ros2_erl_vlm.core.rating.quality import agreement  # noqa: E402
from ros2_erl_vlm.core.rating.rater import RatingQuery  # noqa: E402
from ros2_erl_vlm.raters.cli import rater_config  # noqa: E402
from ros2_erl_vlm.raters.factory import make_rater  # noqa: E402
from ros2_erl_vlm.raters.stats import reason_kind  # noqa: E402

POLICIES = ("expert", "random", "mixture")
#: Backends that rate from simulator truth and need the task.
TRUTH_BACKENDS = ("oracle", "simulated_vlm")


def far_errors(truth: np.ndarray, rated: np.ndarray, progress: np.ndarray, thresholds: tuple[float, ...],
               far_distance: float) -> np.ndarray:
    """Which answers are far errors: two or more classes off, or one class off with the (clipped)
    progress at least ``far_distance`` widths of the true class (its progress interval, the end
    classes reaching to 0 and 1) from the threshold between the true and the rated class."""
    answered = rated >= 0
    off = np.abs(rated - truth)
    edges = np.array([0.0, *thresholds, 1.0])
    span = edges[truth + 1] - edges[truth]
    crossed = np.asarray(thresholds)[np.minimum(truth, rated).clip(0, len(thresholds) - 1)]
    dist = np.abs(np.clip(np.nan_to_num(progress, nan=1.0), 0.0, 1.0) - crossed) / span
    return answered & ((off >= 2) | ((off == 1) & (dist >= far_distance)))


#: Bins of the distance from the nearest class boundary (widths of the true class) for the error rates.
DISTANCE_BINS = (0.0, 0.1, 0.25, 0.5, 1.0)


def nearest_boundary_distance(truth: np.ndarray, progress: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """Distance of each state's (clipped) progress from the nearest boundary of its true class, in
    widths of that class."""
    edges = np.array([0.0, *thresholds, 1.0])
    p = np.clip(np.nan_to_num(progress, nan=1.0), 0.0, 1.0)
    span = edges[truth + 1] - edges[truth]
    lo = np.where(truth > 0, np.abs(p - edges[truth]), np.inf)
    hi = np.where(truth < len(thresholds), np.abs(edges[truth + 1] - p), np.inf)
    return np.minimum(lo, hi) / span


def error_by_distance(truth: np.ndarray, rated: np.ndarray, distance: np.ndarray) -> list[dict]:
    """Error rate of the answered queries per bin of :func:`nearest_boundary_distance`."""
    rows = []
    edges = (*DISTANCE_BINS, np.inf)
    for lo, hi in itertools.pairwise(edges):
        sel = (distance >= lo) & (distance < hi) & (rated >= 0)
        rows.append({"distance": f"[{lo:g}, {hi:g})", "answered": int(sel.sum()),
                     "error_rate": round(float(np.mean(rated[sel] != truth[sel])), 4) if sel.any() else None})
    return rows


def rater_settings(rater: object, cfg: dict) -> dict:
    """The rater's full settings where it reports them (``settings``, also through wrappers),
    else its config (API-key names left out)."""
    r = rater
    while r is not None:
        if isinstance(getattr(r, "settings", None), dict):
            return dict(r.settings)
        r = getattr(r, "inner", None)
    return {k: v for k, v in cfg.items() if "key" not in k.lower()}


def print_confusion(title: str, confusion: list[list[int]], abstentions: list[int], names: tuple[str, ...]) -> None:
    """One confusion matrix as a table (rows truth, columns rating)."""
    width = max(len(x) for x in (*names, "abstain", "truth")) + 2
    print(title)
    print(f"{'truth':>{width}}" + "".join(f"{x:>{width}}" for x in names) + f"{'abstain':>{width}}")
    for c, row in enumerate(confusion):
        print(f"{names[c]:>{width}}" + "".join(f"{v:>{width}}" for v in row) + f"{abstentions[c]:>{width}}")


def collect(task: str, n: int, policies: list[str], episodes: int, steps: int, every: int, mix: float,
            seed: int, layout: str | None = None) -> tuple[list[RatingQuery], list[str]]:
    """Queries (one frame each, with truth) from every policy's episodes, and each one's policy
    (``layout``: the task's layout, None for its default)."""
    from ros2_erl_vlm.envs import expert_policy, load_task, make_env

    spec = load_task(task, layout=layout)
    expert = expert_policy(spec)
    env = make_env(spec, seed=seed)
    rng = np.random.default_rng(seed)
    queries: list[RatingQuery] = []
    origin: list[str] = []
    try:
        for policy in policies:
            for e in range(episodes):
                obs, _ = env.reset(seed=seed + 1000 * POLICIES.index(policy) + e)
                ep_id = len({q.episode for q in queries})
                for t in range(1, min(steps, env.max_episode_steps) + 1):
                    use_random = policy == "random" or (policy == "mixture" and rng.random() < mix)
                    action = rng.uniform(-1, 1, 4).astype(np.float32) if use_random else expert(obs)
                    obs, _, _, truncated, _ = env.step(action)
                    if t % every == 0 or truncated:
                        queries.append(RatingQuery(
                            episode=ep_id, steps=(t,), instruction=spec.instruction,
                            class_names=spec.class_names(n), frames=env.render()[None], states=obs[None],
                            truth=(env.truth(),), query_id=f"{policy}:{e}:{t}"))
                        origin.append(policy)
                    if truncated:
                        break
    finally:
        env.close()
    return queries, origin


def rate_all(rater: object, queries: list[RatingQuery], batch: int) -> list:
    """Every query's result, ``batch`` at a time."""
    results = []
    for start in range(0, len(queries), batch):
        results += rater.rate(queries[start : start + batch])  # type: ignore[attr-defined]
    return results


def labels_of(results: list) -> np.ndarray:
    """Answers as class numbers, -1 for an abstention."""
    return np.array([-1 if r.label is None else r.label for r in results], dtype=int)


def run_task(task: str, args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """Collect, rate, report and write one task's agreement."""
    from ros2_erl_vlm.envs import load_task

    try:
        spec = load_task(task, layout=args.layout)
        n = args.num_classes or spec.num_classes
        spec.check_class_count(n)
        cfg = rater_config(argparse.Namespace(config=args.config, backend=args.backend, set=args.set))
        if cfg.get("backend") in TRUTH_BACKENDS:
            cfg.setdefault("task", task)
        rater = make_rater(cfg)
    except ValueError as exc:  # unknown task or backend, bad rater settings
        p.error(str(exc))
    if args.sweep_quality and cfg.get("backend") != "simulated_vlm":
        p.error("--sweep-quality is for --backend simulated_vlm")

    t0 = time.perf_counter()
    queries, origin = collect(task, n, args.policies, args.episodes, args.steps, args.every, args.mix,
                              args.seed, args.layout)
    collect_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = rate_all(rater, queries, args.batch)
    rate_s = time.perf_counter() - t0
    settings = rater_settings(rater, cfg)
    close = getattr(rater, "close", None)
    if callable(close):
        close()

    thresholds = tuple(spec.oracle.thresholds(n))
    truth = np.array([spec.bin_truth(q.truth[-1].progress, q.truth[-1].success, n) for q in queries])
    success = np.array([bool(q.truth[-1].success) for q in queries])
    progress = np.array([np.nan if q.truth[-1].progress is None else float(q.truth[-1].progress) for q in queries])
    rated = labels_of(results)
    origin_arr = np.array(origin)

    def far_rate(mask: np.ndarray, answers: np.ndarray) -> float | None:
        answered = int(np.sum(mask & (answers >= 0)))
        if not answered:
            return None
        far = far_errors(truth[mask], answers[mask], progress[mask], thresholds, args.far_distance)
        return round(float(far.sum() / answered), 4)

    everything = np.ones(len(queries), dtype=bool)
    summary = agreement(truth, rated, success, n)
    per_policy = {pol: agreement(truth[origin_arr == pol], rated[origin_arr == pol], success[origin_arr == pol], n)
                  for pol in args.policies}
    reasons: dict[str, int] = {}
    kinds: dict[str, int] = {}  # the simulated VLM's own account of each answer
    for r in results:
        if r.extra.get("error"):
            kinds[r.extra["error"]] = kinds.get(r.extra["error"], 0) + 1
        if r.label is None:
            reasons[reason_kind(r.abstain_reason)] = reasons.get(reason_kind(r.abstain_reason), 0) + 1
    sweep = []
    for quality in args.sweep_quality or ():
        other = make_rater({**cfg, "quality": quality})
        answers = labels_of(rate_all(other, queries, args.batch))
        mixture = origin_arr == "mixture"
        sweep.append({"quality": quality, "accuracy": agreement(truth, answers, None, n)["accuracy"],
                      "far_error_rate": far_rate(everything, answers),
                      "accuracy_mixture": agreement(truth[mixture], answers[mixture], None, n)["accuracy"]
                      if mixture.any() else None})
    report = {
        "bench": "rater_agreement", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "task": task,
        "layout": spec.layout, "progress": spec.oracle.progress,
        "class_names": list(spec.class_names(n)), "thresholds": list(thresholds), "rater": rater.backend_id,
        "rater_config": {k: v for k, v in cfg.items() if "key" not in k.lower()},
        "rater_settings": settings,
        "policies": args.policies, "episodes_per_policy": args.episodes, "steps": args.steps,
        "every": args.every, "mix": args.mix, "seed": args.seed, "queries": len(queries),
        "collect_s": round(collect_s, 2), "rate_s": round(rate_s, 2), **summary,
        "far_distance": args.far_distance, "far_error_rate": far_rate(everything, rated),
        "error_by_boundary_distance": error_by_distance(truth, rated,
                                                        nearest_boundary_distance(truth, progress, thresholds)),
        "abstain_reasons": reasons,
        **({"error_kinds": kinds} if kinds else {}),
        "per_policy": {k: {"accuracy": v["accuracy"], "answered": v["answered"],
                           "far_error_rate": far_rate(origin_arr == k, rated),
                           "truth_class_counts": np.bincount(truth[origin_arr == k], minlength=n).tolist(),
                           "confusion": v["confusion"], "abstentions_by_truth": v["abstentions_by_truth"]}
                       for k, v in per_policy.items()},
    }
    if sweep:
        report["quality_sweep"] = sweep
    backend = str(cfg.get("backend", "rater"))
    suffix = f"_{args.layout}" if args.layout else ""
    out = Path(args.out or ROOT / "bench" / "results" / f"rater_agreement_{task}_{backend}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    names = spec.class_names(n)
    print(f"{task} ({spec.layout} layout): {len(queries)} queries, rater {rater.backend_id} {json.dumps(settings)}")
    print_confusion("all episodes (rows truth, columns rating):", summary["confusion"],
                    summary["abstentions_by_truth"], names)
    for pol, v in per_policy.items():
        print_confusion(f"{pol} episodes:", v["confusion"], v["abstentions_by_truth"], names)
    print(f"accuracy {summary['accuracy']}, kappa {summary['cohen_kappa']}, far errors "
          f"{report['far_error_rate']}, abstained {summary['abstained']}, per policy "
          f"{json.dumps({k: v['accuracy'] for k, v in report['per_policy'].items()})}")
    print("error rate by distance from the nearest boundary (class widths): " + ", ".join(
        f"{row['distance']} {row['error_rate']} (n={row['answered']})" for row in report["error_by_boundary_distance"]))
    for row in sweep:
        print(f"  quality {row['quality']}: accuracy {row['accuracy']} (mixture episodes "
              f"{row['accuracy_mixture']}), far errors {row['far_error_rate']}")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", nargs="+", default=["drawer-open-v3"], help="one or more task names")
    p.add_argument("--layout", help="the tasks' layout (default: each task's default; named in the "
                   "result file's name when given)")
    p.add_argument("--num-classes", type=int, help="default: the task's")
    p.add_argument("--config", help="rater config file (YAML/JSON)")
    p.add_argument("--backend", default=None, help="oracle | simulated_vlm | transformers | openai | replay")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    p.add_argument("--episodes", type=int, default=3, help="episodes per policy")
    p.add_argument("--steps", type=int, default=250, help="steps per episode (max 500)")
    p.add_argument("--every", type=int, default=10, help="query every k-th step")
    p.add_argument("--mix", type=float, default=0.5, help="random-action probability of 'mixture'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--far-distance", type=float, default=0.5,
                   help="a one-class error this far from the boundary (in widths of the true class) is far")
    p.add_argument("--sweep-quality", type=float, nargs="+", metavar="Q",
                   help="simulated_vlm: also rate at these qualities (accuracy, far errors)")
    p.add_argument("--out", help="result JSON (default bench/results/rater_agreement_<task>_<backend>"
                   "[_<layout>].json)")
    args = p.parse_args(argv)
    if args.out and len(args.task) > 1:
        p.error("--out takes one --task")
    for task in args.task:
        run_task(task, args, p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
