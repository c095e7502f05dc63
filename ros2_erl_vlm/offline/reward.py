"""Learn the ERL-VLM reward from rated demonstrations: ``python -m ros2_erl_vlm.offline.reward``.

    python -m ros2_erl_vlm.offline.reward --data demos/drawer.npz --ratings ratings/ --out reward/ \\
        [--input image|state] [--image-size 224] [--seed 0] [--epochs 20]

Joins each answer of the rating logs (``--ratings``: the rating CLI's ``ratings.log`` files or
``--out`` folders) to the export's rows (episode by the bag name, step ``s`` = the frame of row
``s - 1``; single frames or multi-frame segments, as rated), builds the rating dataset and trains
the reward ensemble with the project's core (RbRL with ERL-VLM's MAE loss, stratified minibatches
and class weights; members standardised over the rated inputs, ``output_norm: rated``). By
default on the camera frames with the paper's CNN, as on an arm where no object state exists;
``--input state`` learns on ``next_observations`` with an MLP. Writes ``<out>/reward_model.pt``
(what ``python -m ros2_erl_vlm.offline.train --reward learned --reward-model`` reads) and
``<out>/summary.json`` (ratings used, per class, abstentions, training accuracy and, in
simulation, the learned reward's rank correlation with the export's dense ``rewards``), and
prints the summary. Bad input (unknown episodes or steps, no frames for ``--input image``, a
damaged log) prints ``error: ...`` naming the episode and file and exits 1; the export and the
logs are only read, and an existing model is not replaced without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from ros2_erl_vlm.core.atomic_write import write_text_atomic
from ros2_erl_vlm.core.offline.dataset import load_dataset
from ros2_erl_vlm.core.reward.reward_model import INPUT_KINDS, RewardModelConfig

MODEL_FILE = "reward_model.pt"
SUMMARY_FILE = "summary.json"
#: Passes over the ratings (early stop at ``early_stop_accuracy``); one training, not the online
#: learner's many rounds of up to 10 passes each.
DEFAULT_EPOCHS = 20


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors exit 1, as every other bad input of this command."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and ``error: message``; exit 1."""
        self.print_usage(sys.stderr)
        self.exit(1, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    d = RewardModelConfig()
    p = _Parser(prog="python -m ros2_erl_vlm.offline.reward", description=(__doc__ or "").split("\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the export's .npz (json and frames beside it)")
    p.add_argument("--ratings", type=Path, nargs="+", required=True,
                   help="the rating CLI's logs (ratings.log, or its --out folder); later ones are newer")
    p.add_argument("--out", type=Path, required=True, help="output folder (reward_model.pt, summary.json)")
    p.add_argument("--input", choices=INPUT_KINDS, default="image",
                   help="image: the paper's CNN on the frames; state: an MLP on next_observations")
    p.add_argument("--image-size", type=int, default=d.image_size, help="frame side the CNN reads (>= 48)")
    p.add_argument("--seed", type=int, default=0, help="initial weights and minibatch order")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="passes over the ratings")
    p.add_argument("--ensemble-size", type=int, default=d.ensemble_size)
    p.add_argument("--hidden-dim", type=int, default=d.hidden_dim, help="MLP width (--input state)")
    p.add_argument("--hidden-layers", type=int, default=d.hidden_layers, help="MLP depth (--input state)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--loss", choices=("mae", "ce"), default=d.loss,
                   help="mae: ERL-VLM's; ce: RbRL's cross-entropy (ablation)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help=f"replace an existing {MODEL_FILE} in --out")
    return p


def model_config(args: argparse.Namespace) -> RewardModelConfig:
    """The reward model's settings from the flags (the rest at the project's defaults)."""
    return RewardModelConfig(input_kind=args.input, image_size=args.image_size,
                             ensemble_size=args.ensemble_size, hidden_dim=args.hidden_dim,
                             hidden_layers=args.hidden_layers, batch_size=args.batch_size, lr=args.lr,
                             epochs=args.epochs, loss=args.loss).validate()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def learn(args: argparse.Namespace) -> dict[str, Any]:
    """Join, train, save; returns the summary (ValueError on bad input)."""
    import torch

    from ros2_erl_vlm.core.checkpoint import save_checkpoint
    from ros2_erl_vlm.core.offline.learned_reward import load_reward_model
    from ros2_erl_vlm.core.offline.reward_from_ratings import (
        build_rating_dataset,
        join_ratings,
        rating_accuracy,
        read_rating_logs,
        relabel_summary,
        train_reward,
    )

    t0 = time.monotonic()
    torch.set_num_threads(max(1, args.threads))
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    cfg = model_config(args)
    out: Path = args.out
    model_path = out / MODEL_FILE
    if model_path.exists() and not args.overwrite:
        raise ValueError(f"{model_path} exists already; give --overwrite or another --out")
    ds = load_dataset(args.data)
    if cfg.input_kind == "image" and not ds.meta.get("frames", True):
        raise ValueError(f"{ds.path}: the export has no frames (exported with --no-frames): --input image "
                         "learns from the camera frames; use --input state or export with frames")
    frames_dir = (ds.path.parent / (ds.path.stem + "_frames")).resolve()
    if out.resolve() == frames_dir or out.resolve().is_relative_to(frames_dir):
        raise ValueError(f"--out {out} lies in the export's frames folder; the recording is never written to")
    joined = join_ratings(ds, read_rating_logs(args.ratings))
    data = build_rating_dataset(ds, joined, cfg.input_kind, cfg.image_size)
    print(f"erl_vlm reward: {len(data)} ratings of {ds.num_episodes} episodes ({joined.class_counts()} per "
          f"class, {joined.segment_length} frame(s) each), {cfg.input_kind} model", file=sys.stderr)
    model, stats = train_reward(data, cfg, ds.obs_dim, args.seed, epochs=args.epochs, device=args.device)
    accuracy = rating_accuracy(model, data)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model_path, model.state_dict())
    check = load_reward_model(model_path)  # what offline.train will load
    _, reward_stats = relabel_summary(ds, check)
    summary = {
        "data": str(ds.path), "task": ds.task, "ratings_files": [str(p) for p in args.ratings],
        "answers_read": joined.read, "ratings_used": len(data), "abstentions": joined.abstentions,
        "abstain_reasons": joined.abstain_reasons, "reset_frame_ratings_skipped": joined.reset_frames,
        "replaced_by_newer": joined.replaced, "num_classes": joined.num_classes,
        "class_counts": joined.class_counts(), "segment_length": joined.segment_length,
        "backends": sorted({j.segment.backend for j in joined.ratings}),
        "model": {"path": str(model_path), "sha256": _sha256(model_path), "seed": args.seed,
                  "config": dataclasses.asdict(cfg)},
        "training": {"epochs": stats.epochs, "steps": stats.steps, "loss": stats.loss,
                     "last_epoch_accuracy": stats.accuracy, "rating_accuracy": accuracy},
        "learned_reward": reward_stats, "wall_s": round(time.monotonic() - t0, 2),
    }
    write_text_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit 0, or 1 with ``error: ...``."""
    args = build_parser().parse_args(argv)
    try:
        summary = learn(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
