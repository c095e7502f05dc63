"""A rater's agreement with simulator truth on MetaWorld episodes: confusion matrix and friends.

Episodes come from MetaWorld's scripted expert, a uniformly random policy and mixtures of the two
(each step random with probability ``--mix``), so every class of the task shows up. Every
``--every`` steps the task camera's frame is a one-frame query carrying the simulator truth; the
truth class is the task's own binning (``TaskSpec.bin_truth``, what the oracle uses). The rater is
configured as for the ``vlm_rater`` node (``--config`` / ``--backend`` / ``--set``).

    .venv/bin/python bench/rater_agreement.py --task drawer-open-v3 --backend oracle --set noise=0.2
    .venv/bin/python bench/rater_agreement.py --task soccer-v3 --backend openai \\
        --set model=gpt-4o-mini --set api_key_env=OPENAI_API_KEY

Reported: the confusion matrix (rows: truth, columns: rating), abstentions per truth class,
accuracy and Cohen's kappa over the answered queries, per-policy accuracy, and the paper's
diagnostic "top class vs MetaWorld success" (precision/recall). Written to
``bench/results/rater_agreement_<task>_<backend>.json``.
"""

from __future__ import annotations

import argparse
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


def collect(task: str, n: int, policies: list[str], episodes: int, steps: int, every: int, mix: float,
            seed: int) -> tuple[list[RatingQuery], list[str]]:
    """Queries (one frame each, with truth) from every policy's episodes, and each one's policy."""
    from ros2_erl_vlm.envs import expert_policy, load_task, make_env

    spec = load_task(task)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="drawer-open-v3")
    p.add_argument("--num-classes", type=int, help="default: the task's")
    p.add_argument("--config", help="rater config file (YAML/JSON)")
    p.add_argument("--backend", default=None, help="oracle | transformers | openai | replay")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    p.add_argument("--episodes", type=int, default=3, help="episodes per policy")
    p.add_argument("--steps", type=int, default=250, help="steps per episode (max 500)")
    p.add_argument("--every", type=int, default=10, help="query every k-th step")
    p.add_argument("--mix", type=float, default=0.5, help="random-action probability of 'mixture'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", help="result JSON (default bench/results/rater_agreement_<task>_<backend>.json)")
    args = p.parse_args(argv)

    from ros2_erl_vlm.envs import load_task

    try:
        spec = load_task(args.task)
        n = args.num_classes or spec.num_classes
        cfg = rater_config(argparse.Namespace(config=args.config, backend=args.backend, set=args.set))
        if cfg.get("backend") == "oracle":
            cfg.setdefault("task", args.task)
        rater = make_rater(cfg)
    except ValueError as exc:  # unknown task or backend, bad rater settings
        p.error(str(exc))

    t0 = time.perf_counter()
    queries, origin = collect(args.task, n, args.policies, args.episodes, args.steps, args.every, args.mix,
                              args.seed)
    collect_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = []
    for start in range(0, len(queries), args.batch):
        results += rater.rate(queries[start : start + args.batch])
    rate_s = time.perf_counter() - t0
    close = getattr(rater, "close", None)
    if callable(close):
        close()

    truth = np.array([spec.bin_truth(q.truth[-1].progress, q.truth[-1].success, n) for q in queries])
    success = np.array([bool(q.truth[-1].success) for q in queries])
    rated = np.array([-1 if r.label is None else r.label for r in results])
    origin_arr = np.array(origin)
    summary = agreement(truth, rated, success, n)
    per_policy = {pol: agreement(truth[origin_arr == pol], rated[origin_arr == pol], success[origin_arr == pol], n)
                  for pol in args.policies}
    reasons: dict[str, int] = {}
    for r in results:
        if r.label is None:
            reasons[reason_kind(r.abstain_reason)] = reasons.get(reason_kind(r.abstain_reason), 0) + 1
    report = {
        "bench": "rater_agreement", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "task": args.task,
        "class_names": list(spec.class_names(n)), "rater": rater.backend_id,
        "rater_config": {k: v for k, v in cfg.items() if "key" not in k.lower()},
        "policies": args.policies, "episodes_per_policy": args.episodes, "steps": args.steps,
        "every": args.every, "mix": args.mix, "seed": args.seed, "queries": len(queries),
        "collect_s": round(collect_s, 2), "rate_s": round(rate_s, 2), **summary,
        "abstain_reasons": reasons,
        "per_policy": {k: {"accuracy": v["accuracy"], "answered": v["answered"],
                           "truth_class_counts": np.bincount(truth[origin_arr == k], minlength=n).tolist()}
                       for k, v in per_policy.items()},
    }
    backend = str(cfg.get("backend", "rater"))
    out = Path(args.out or ROOT / "bench" / "results" / f"rater_agreement_{args.task}_{backend}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    names = spec.class_names(n)
    width = max(len(x) for x in (*names, "abstain")) + 2
    print(f"{args.task}: {len(queries)} queries, rater {rater.backend_id}; rows truth, columns rating")
    print(" " * width + "".join(f"{x:>{width}}" for x in names) + f"{'abstain':>{width}}")
    for c, row in enumerate(summary["confusion"]):
        print(f"{names[c]:>{width}}" + "".join(f"{v:>{width}}" for v in row)
              + f"{summary['abstentions_by_truth'][c]:>{width}}")
    print(f"accuracy {summary['accuracy']}, kappa {summary['cohen_kappa']}, abstained {summary['abstained']}, "
          f"per policy {json.dumps({k: v['accuracy'] for k, v in report['per_policy'].items()})}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
