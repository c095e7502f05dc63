"""How label noise and the loss choice shape the learned reward, offline and in minutes.

The learning benchmark takes hours per run; this one isolates its reward-learning half. It rolls
out MetaWorld episodes (states only, no rendering) with a policy mix like an early training run
(mostly random actions, a few partly scripted episodes), rates states sampled uniformly from them
with the task's oracle (truth binned into classes exactly as in training) corrupted at a given rate
and noise mode, trains the reward ensemble round by round as the online loop does (``--per-round``
new ratings, then a training pass over the whole set), and scores the learned reward on held-out
episodes from random, mixed and expert policies:

* ``spearman``: rank correlation between the learned reward and the task progress;
* ``auc_above_bottom``: how well the reward separates states above the bottom class from the rest
  (0.5 = no better than chance; this is the signal a sparse task gives early on);
* ``auc_success``: the same for success states against all others;
* ``auc_above_bottom_random``: ``auc_above_bottom`` on the random-policy episodes alone (states like
  the ones rated early in training; the others test how the reward generalises to better play).

Loss variants: ``erl-vlm`` (MAE + stratified batches + class weights, the paper's), ``rbrl``
(cross-entropy, plain batches, no weights) and the two one-change ablations ``mae-plain`` and
``ce-weighted``. Writes ``bench/results/reward_noise_<task>.json``.

    python bench/reward_noise.py [--task drawer-open-v3] [--noise 0 0.2] [--modes symmetric neighbor]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")

VARIANTS: dict[str, dict[str, Any]] = {
    "erl-vlm": {"loss": "mae", "stratified": True, "class_weighting": True},
    "rbrl": {"loss": "ce", "stratified": False, "class_weighting": False},
    "mae-plain": {"loss": "mae", "stratified": False, "class_weighting": False},
    "ce-weighted": {"loss": "ce", "stratified": True, "class_weighting": True},
}


def rollouts(task: str, episodes: int, mix: float, seed: int) -> dict[str, np.ndarray]:
    """States (next observations), progress, success and policy tag of ``episodes`` full episodes.

    ``mix`` is the probability of a random action per step (1 = random policy, 0 = expert).
    """
    from ros2_erl_vlm.envs import expert_policy, load_task, make_env

    spec = load_task(task)
    expert = expert_policy(spec)
    env = make_env(spec, seed=seed, render=False)
    rng = np.random.default_rng(seed)
    obs_l, prog_l, succ_l = [], [], []
    try:
        for e in range(episodes):
            obs, _ = env.reset(seed=seed * 10_000 + e)
            for _ in range(env.max_episode_steps):
                action = rng.uniform(-1, 1, 4).astype(np.float32) if rng.random() < mix else expert(obs)
                obs, _, _, truncated, _ = env.step(action)
                truth = env.truth()
                obs_l.append(obs.copy())
                prog_l.append(float(truth.progress))
                succ_l.append(bool(truth.success))
                if truncated:
                    break
    finally:
        env.close()
    return {"obs": np.asarray(obs_l, np.float32), "progress": np.asarray(prog_l),
            "success": np.asarray(succ_l), "mix": np.full(len(prog_l), mix)}


def concat(*pools: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pools joined key by key (empty pools, e.g. ``--train-mixed 0``, are skipped)."""
    pools = tuple(p for p in pools if len(p["progress"])) or pools[:1]
    return {k: np.concatenate([p[k] for p in pools]) for k in pools[0]}


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties averaged); None with one class only."""
    pos, neg = int(positive.sum()), int((~positive).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ordinal ranks; fine for continuous scores)."""
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def learn(train: dict[str, np.ndarray], labels: np.ndarray, num_classes: int, variant: str, rounds: int,
          per_round: int, seed: int) -> Any:
    """A reward ensemble trained round by round on ``labels`` of uniformly sampled train states."""
    import torch

    from ros2_erl_vlm.core.rating.dataset import DatasetSpec, RatingDataset
    from ros2_erl_vlm.core.rating.rater import RatingResult
    from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble, RewardModelConfig

    torch.manual_seed(seed)
    obs_dim = train["obs"].shape[1]
    ds = RatingDataset(DatasetSpec(num_classes, "state", (1, obs_dim)))
    model = RewardEnsemble(RewardModelConfig(**VARIANTS[variant]), obs_dim=obs_dim, seed=seed)
    rng = np.random.default_rng(seed)
    idx = np.random.default_rng(seed + 1).choice(len(train["obs"]), rounds * per_round, replace=False)
    for r in range(rounds):
        for i in idx[r * per_round : (r + 1) * per_round]:
            ds.add(train["obs"][i][None], RatingResult(f"q{i}", int(labels[i]), num_classes, "oracle"))
        model.train_on(ds, rng)
    return model


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def score(model: Any, pool: dict[str, np.ndarray], truth: np.ndarray) -> dict[str, float | None]:
    """The learned reward against truth on a held-out pool (see module docstring); also
    ``auc_above_bottom_random``, on the random-policy episodes alone (the states a training run
    rates early on, as opposed to the expert's states the reward must generalise to)."""
    r = model.predict(pool["obs"]).numpy()
    rand = pool["mix"] == 1.0
    return {"spearman": spearman(r, pool["progress"]), "auc_above_bottom": auc(r, truth > 0),
            "auc_success": auc(r, pool["success"]),
            "auc_above_bottom_random": auc(r[rand], truth[rand] > 0)}


def main(argv: list[str] | None = None) -> int:
    """Run the grid (noise x mode x variant x seed) and write the results file."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="drawer-open-v3")
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2])
    p.add_argument("--modes", nargs="+", default=["symmetric", "neighbor"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=10, help="rating rounds (paper: 50 ratings per 5k steps)")
    p.add_argument("--per-round", type=int, default=50)
    p.add_argument("--train-random", type=int, default=16, help="random-policy episodes to rate from")
    p.add_argument("--train-mixed", type=int, default=4, help="half-random/half-expert episodes to rate from")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from ros2_erl_vlm.envs import load_task
    from ros2_erl_vlm.raters.oracle import corrupt_label

    spec = load_task(args.task)
    n = spec.num_classes
    t0 = time.perf_counter()
    train = concat(rollouts(args.task, args.train_random, 1.0, seed=1),
                   rollouts(args.task, args.train_mixed, 0.5, seed=2))
    test = concat(rollouts(args.task, 6, 1.0, seed=11), rollouts(args.task, 6, 0.5, seed=12),
                  rollouts(args.task, 6, 0.0, seed=13))
    rollout_s = time.perf_counter() - t0

    def classes(pool: dict[str, np.ndarray]) -> np.ndarray:
        return np.array([spec.bin_truth(pr, s, n) for pr, s in zip(pool["progress"], pool["success"],
                                                                         strict=True)])

    train_truth, test_truth = classes(train), classes(test)
    print(f"{args.task}: {len(train_truth)} train states, classes {np.bincount(train_truth, minlength=n)}; "
          f"{len(test_truth)} held-out states, classes {np.bincount(test_truth, minlength=n)} "
          f"({rollout_s:.0f} s of rollouts)")
    conditions = [(0.0, "none")] if 0.0 in args.noise else []
    conditions += [(eta, m) for eta in args.noise if eta > 0 for m in args.modes]
    results = []
    for eta, mode in conditions:
        for variant in args.variants:
            runs = []
            for seed in range(args.seeds):
                rng = np.random.default_rng(100 + seed)
                labels = train_truth.copy()
                if eta > 0:
                    flip = rng.random(len(labels)) < eta
                    labels[flip] = [corrupt_label(int(y), n, mode, rng) for y in labels[flip]]
                model = learn(train, labels, n, variant, args.rounds, args.per_round, seed)
                runs.append(score(model, test, test_truth))
            row: dict[str, Any] = {"noise": eta, "mode": mode, "variant": variant, "runs": runs}
            for key in runs[0]:
                vals = [x[key] for x in runs if x[key] is not None]
                row[key] = float(np.mean(vals)) if vals else None
                row[key + "_std"] = float(np.std(vals)) if vals else None
            results.append(row)
            print(f"noise {eta:.2f} {mode:9s} {variant:12s} spearman {row['spearman']:+.2f}"
                  f"±{row['spearman_std']:.2f}  auc>bottom {row['auc_above_bottom']:.2f}"
                  f"±{row['auc_above_bottom_std']:.2f}  auc success {row['auc_success']:.2f}"
                  f"  auc>bottom random-policy states {_fmt(row['auc_above_bottom_random'])}", flush=True)
    report = {
        "bench": "reward_noise", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "task": args.task,
        "num_classes": n, "class_names": list(spec.class_names(n)), "seeds": args.seeds,
        "rounds": args.rounds, "per_round": args.per_round, "ratings": args.rounds * args.per_round,
        "train_states": len(train_truth), "train_class_counts": np.bincount(train_truth, minlength=n).tolist(),
        "test_states": len(test_truth), "test_class_counts": np.bincount(test_truth, minlength=n).tolist(),
        "variants": {k: VARIANTS[k] for k in args.variants}, "results": results,
        "wall_s": time.perf_counter() - t0,
    }
    out = args.out or ROOT / "bench" / "results" / f"reward_noise_{args.task}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
