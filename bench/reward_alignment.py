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
* ``share_above_bottom``: the share of those states (what the next ratings could see).

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


def score_run(run_dir: Path, threshold: float) -> dict[str, Any] | None:
    """Alignment of ``run_dir``'s last checkpointed reward with progress (None: no learned reward)."""
    import torch

    from ros2_erl_vlm.core.checkpoint import load_checkpoint
    from ros2_erl_vlm.core.reward_model import RewardEnsemble

    path = run_dir / "checkpoint.pt"
    if not path.exists():
        return None
    state = load_checkpoint(path)
    if not state.get("reward_model") or int(state["reward_model"].get("version", 0)) == 0:
        return None
    model = RewardEnsemble.from_state_dict(state["reward_model"])
    episodes = [e for e in state["episodes"] if e.truth is not None]
    if not episodes:
        return None
    obs = torch.as_tensor(np.concatenate([e.next_obs for e in episodes]), dtype=torch.float32)
    progress = np.array([t.progress for e in episodes for t in e.truth])
    members = model.member_rewards(obs).numpy()
    reward = members.mean(0)
    above = progress >= threshold
    return {
        "run": run_dir.name, "steps": int(state.get("counters", {}).get("step", 0)) or None,
        "model_version": model.version, "output_norm": model.config.output_norm,
        "episodes": len(episodes), "states": len(progress),
        "spearman": spearman(reward, progress),
        "spearman_members": [spearman(m, progress) for m in members],
        "auc_above_bottom": auc(reward, above),
        "share_above_bottom": float(above.mean()),
        "reward_std": float(reward.std()),
    }


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
        row = score_run(task_dir / "runs" / name, threshold)
        if row is None:
            continue
        rows.append(row)
        members = " ".join(f"{s:+.2f}" for s in row["spearman_members"])
        auc_txt = "n/a" if row["auc_above_bottom"] is None else f"{row['auc_above_bottom']:.2f}"
        print(f"{name:24s} step {row['steps']} v{row['model_version']:<3d} spearman {row['spearman']:+.2f} "
              f"(members {members})  auc>bottom {auc_txt}  above bottom {row['share_above_bottom']:.1%}"
              f" of {row['states']} states")
    out = task_dir / "reward_alignment.json"
    out.write_text(json.dumps({"task": args.task, "bottom_threshold": threshold, "runs": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
