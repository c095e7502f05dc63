"""Does a run's learned reward point at the task? Score it on the run's own recent states.

    python bench/reward_alignment.py [--task drawer-open-v3] [--runs NAME ...]

For every learning-benchmark run directory (``bench/results/learning/<task>/runs/<name>``) whose
checkpoint holds a trained reward model, the reward the agent was optimising (ensemble mean, as
configured, e.g. ``output_norm``) is evaluated on every step of the episodes in the checkpoint's
episode store (the last <= 100 episodes, the states queries were drawn from) and compared with the
simulator's task progress there:

* ``spearman``: rank correlation of the learned reward with progress (per member too);
* ``auc_above_bottom``: how well the reward separates states the oracle would rate above the
  bottom class from the rest (None when the store holds no such state);
* ``share_above_bottom``: the share of those states (what the next ratings could see);
* ``hand_to_object``: mean distance from the gripper to the object (MetaWorld's observation:
  hand at 0:3, first object at 4:7) over those states and over the 5% the reward ranks highest
  (where the reward pulls the policy).

and on the run's rated states (its rating log; ``rated``): the reward's mean per truth class and
per given label, and how well it separates truly-above-bottom states (``auc_truth``) and
states *rated* above bottom (``auc_label``). A reward that fits the labels but not the truth has
learned the rater's noise.

Writes ``reward_alignment.json`` beside the runs' results files and prints one line per run. The
run directories are machine-local (git-ignored); the JSON is what is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reward_noise import auc, spearman  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "learning"


def hand_to_object(obs: np.ndarray) -> float:
    """Mean gripper-to-object distance over MetaWorld observations (hand 0:3, object 4:7)."""
    return float(np.linalg.norm(obs[:, 0:3] - obs[:, 4:7], axis=1).mean())


def score_rated(run_dir: Path, model: Any, bin_truth: Any) -> dict[str, Any] | None:
    """The learned reward on the run's rated states, by truth class and by given label."""
    import torch

    from ros2_erl_vlm.core.rating.dataset import RECORD_KIND
    from ros2_erl_vlm.core.rating.quality import record_truth_class
    from ros2_erl_vlm.core.record_log import scan

    log = run_dir / "ratings.erlr"
    if not log.exists():
        return None
    rows = [r for r in scan(log).records if r.meta.get("kind") == RECORD_KIND
            and r.meta.get("label", -1) >= 0 and "input" in r.arrays]
    if not rows:
        return None
    n = int(rows[0].meta["num_classes"])
    truth = np.array([-1 if (c := record_truth_class(r.meta, bin_truth, n)) is None else c for r in rows])
    label = np.array([int(r.meta["label"]) for r in rows])
    inputs = torch.as_tensor(np.stack([r.arrays["input"] for r in rows]), dtype=torch.float32)
    # a rated segment's reward is the sum over its steps (single states: the state's reward)
    reward = model.member_rewards(inputs.reshape(-1, inputs.shape[-1])).numpy().mean(0)
    reward = reward.reshape(len(rows), -1).sum(1)
    known = truth >= 0

    def means(classes: np.ndarray) -> list[float | None]:
        return [float(reward[classes == c].mean()) if np.any(classes == c) else None for c in range(n)]

    return {"ratings": len(rows), "reward_by_truth": means(np.where(known, truth, -1)),
            "reward_by_label": means(label), "auc_truth": auc(reward[known], truth[known] > 0),
            "auc_label": auc(reward, label > 0)}


def score_run(run_dir: Path, threshold: float, bin_truth: Any = None) -> dict[str, Any] | None:
    """Alignment of ``run_dir``'s last checkpointed reward with progress (None: no learned reward)."""
    import torch

    from ros2_erl_vlm.core.checkpoint import load_checkpoint
    from ros2_erl_vlm.core.episode_store import Episode
    from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble

    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return None
    state = load_checkpoint(path)
    learner = state.get("learner")  # the in-process loop's checkpoint layout
    if not learner or int(learner["reward_model"].get("version", 0)) == 0:
        return None
    model = RewardEnsemble.from_state_dict(learner["reward_model"])
    episodes = [e for e in map(Episode.from_state, learner["episodes"]) if e.truth is not None]
    if not episodes:
        return None
    obs_np = np.concatenate([e.next_obs for e in episodes]).astype(np.float32)
    obs = torch.as_tensor(obs_np)
    progress = np.array([t.progress for e in episodes for t in e.truth])
    members = model.member_rewards(obs).numpy()
    reward = members.mean(0)
    above = progress >= threshold
    top = reward >= np.quantile(reward, 0.95)
    return {
        "run": run_dir.name, "steps": int(state["agent"]["step"]) or None,
        "model_version": model.version, "output_norm": model.config.output_norm,
        "episodes": len(episodes), "states": len(progress),
        "spearman": spearman(reward, progress),
        "spearman_members": [spearman(m, progress) for m in members],
        "auc_above_bottom": auc(reward, above),
        "share_above_bottom": float(above.mean()),
        "reward_std": float(reward.std()),
        "hand_to_object": {"all": hand_to_object(obs_np), "top5pct_reward": hand_to_object(obs_np[top])},
        "rated": None if bin_truth is None else score_rated(run_dir, model, bin_truth),
    }


def _per_class(values: list[float | None]) -> str:
    return "/".join("-" if x is None else f"{x:+.3f}" for x in values)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="drawer-open-v3")
    ap.add_argument("--runs", nargs="*", help="run names (default: every run with a learned reward)")
    args = ap.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)
    from ros2_erl_vlm.envs import load_task

    task = load_task(args.task)
    threshold = task.oracle.thresholds(task.num_classes)[0]
    task_dir = RESULTS / args.task
    names = args.runs or sorted(p.name for p in (task_dir / "runs").iterdir() if p.is_dir())
    rows = []
    for name in names:
        row = score_run(task_dir / "runs" / name, threshold, task.bin_truth)
        if row is None:
            continue
        rows.append(row)
        members = " ".join(f"{s:+.2f}" for s in row["spearman_members"])
        auc_txt = "n/a" if row["auc_above_bottom"] is None else f"{row['auc_above_bottom']:.2f}"
        print(f"{name:24s} step {row['steps']} v{row['model_version']:<3d} spearman {row['spearman']:+.2f} "
              f"(members {members})  auc>bottom {auc_txt}  above bottom {row['share_above_bottom']:.1%}"
              f" of {row['states']} states")
        h, rated = row["hand_to_object"], row["rated"]
        line = f"{'':24s} hand-object {h['all']:.2f} m (top 5% reward {h['top5pct_reward']:.2f} m)"
        if rated:
            aucs = " ".join(f"{k} {'n/a' if rated[k] is None else format(rated[k], '.2f')}"
                            for k in ("auc_truth", "auc_label"))
            line += (f"; rated: reward by truth {_per_class(rated['reward_by_truth'])}, "
                     f"by label {_per_class(rated['reward_by_label'])}, {aucs}")
        print(line)
    out = task_dir / "reward_alignment.json"
    out.write_text(json.dumps({"task": args.task, "bottom_threshold": threshold, "runs": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
