"""Rate recorded episodes offline with any rater backend.

    python -m ros2_erl_vlm.raters.cli EPISODES... --out DIR --task drawer-open-v3 \\
        --backend transformers --set model=/models/SmolVLM-256M-Instruct --set dtype=bfloat16

``EPISODES`` are frame directories, ``.npy``/``.npz`` arrays or ROS 2 bags (MCAP or SQLite; see
:mod:`.recorded_episodes`). Every ``--stride``-th window of ``--segment-length`` frames is one query
(id ``<episode name>:<first step>``). An erl_vlm episode bag gives each frame its recorded step
and, in simulation, its observation's truth, so the oracle and the simulated VLM rate it. The
rater is configured like the ``vlm_rater`` node: ``--config`` (YAML/JSON; the whole file or its
``rater`` section), then ``--backend``, then ``--set key=value`` overrides (YAML values).
Writes ``DIR/ratings.log`` (the crash-safe rating log: every result, before anything else sees
it) and ``DIR/ratings.csv`` (one row per query), and prints a summary. Exit status 2 on a bad
configuration or input, 0 otherwise (abstentions are results, not errors).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, RatingQuery, check_num_classes
from ros2_erl_vlm.raters.factory import make_rater
from ros2_erl_vlm.raters.recorded_episodes import RecordedEpisode, read_episodes
from ros2_erl_vlm.raters.stats import reason_kind

#: Backends that rate from simulator truth with the task's thresholds (``--task`` is theirs too).
TRUTH_BACKENDS = ("oracle", "simulated_vlm")
CSV_FIELDS = ("episode", "name", "steps", "query_id", "label", "class_name", "probabilities",
              "abstain_reason", "latency_s", "attempts", "backend")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m ros2_erl_vlm.raters.cli",
                                description=(__doc__ or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("episodes", nargs="+", help="frame directories, .npy/.npz arrays or ROS 2 bags")
    p.add_argument("--out", required=True, help="output directory (ratings.log, ratings.csv)")
    p.add_argument("--config", help="rater config file (YAML or JSON)")
    p.add_argument("--backend", help="oracle | transformers | openai | replay (overrides the config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="rater option (repeatable), e.g. --set model=/path --set mode=generate")
    p.add_argument("--task", help="task name: its instruction and class names")
    p.add_argument("--instruction", help="the task in words (instead of --task)")
    p.add_argument("--classes", help="comma-separated class names, worst first")
    p.add_argument("--num-classes", type=int, help="number of classes (default names)")
    p.add_argument("--topic", help="image topic to read from bags")
    p.add_argument("--stride", type=int, default=1, help="rate every k-th window (default 1)")
    p.add_argument("--segment-length", type=int, default=1, help="frames per query (default 1)")
    p.add_argument("--batch", type=int, default=8, help="queries per rater call (default 8)")
    p.add_argument("--limit", type=int, help="rate at most this many queries")
    return p


def rater_config(args: argparse.Namespace, log_path: Path | None = None) -> dict[str, Any]:
    """The rater config from ``--config``, ``--backend`` and ``--set`` (``log_path`` unless the
    config names one; ``--task`` for the oracle and the simulated VLM unless it names one)."""
    cfg: dict[str, Any] = {}
    if args.config:
        data = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{args.config}: a rater config must be a mapping")
        cfg = dict(data.get("rater", data))
    if args.backend:
        cfg["backend"] = args.backend
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set needs KEY=VALUE, got {item!r}")
        cfg[key.strip()] = yaml.safe_load(value) if value else ""
    if log_path is not None:
        cfg.setdefault("log_path", str(log_path))
    section = cfg.get(str(cfg.get("backend")))
    in_section = isinstance(section, dict) and "task" in section
    if args.task and cfg.get("backend") in TRUTH_BACKENDS and not in_section:
        cfg.setdefault("task", args.task)  # the backends that bin the truth need the task
    return cfg


def task_words(args: argparse.Namespace) -> tuple[str, tuple[str, ...]]:
    """Instruction and class names from ``--task`` or ``--instruction``/``--classes``."""
    names: tuple[str, ...] | None = None
    if args.classes:
        names = tuple(c.strip() for c in args.classes.split(",") if c.strip())
        check_num_classes(len(names))
    if args.task:
        from ros2_erl_vlm.envs import load_task

        spec = load_task(args.task)
        return args.instruction or spec.instruction, names or spec.class_names(args.num_classes)
    if not args.instruction:
        raise ValueError("give --task or --instruction")
    return args.instruction, names or DEFAULT_CLASS_NAMES[check_num_classes(args.num_classes or 3)]


def make_queries(episodes: Sequence[RecordedEpisode], instruction: str, class_names: tuple[str, ...],
                 segment_length: int, stride: int) -> Iterator[tuple[int, RecordedEpisode, RatingQuery]]:
    """Windows of ``segment_length`` frames every ``stride`` frames, as queries."""
    if segment_length < 1 or stride < 1:
        raise ValueError("--segment-length and --stride must be >= 1")
    for ei, ep in enumerate(episodes):
        for start in range(0, len(ep) - segment_length + 1, stride):
            window = slice(start, start + segment_length)
            steps = tuple(range(start, start + segment_length)) if ep.steps is None else ep.steps[window]
            truth = None if ep.truth is None else ep.truth[window]
            yield ei, ep, RatingQuery(episode=ei, steps=steps, instruction=instruction,
                                      class_names=class_names, frames=ep.frames[window], truth=truth,
                                      query_id=f"{ep.name}:{steps[0]}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Rate everything; return the summary."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = rater_config(args, out / "ratings.log")
    instruction, class_names = task_words(args)
    episodes = [ep for path in args.episodes for ep in read_episodes(path, args.topic)]
    queries = list(make_queries(episodes, instruction, class_names, args.segment_length, args.stride))
    if args.limit is not None:
        queries = queries[: args.limit]
    rater = make_rater(cfg)
    labels: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    t0 = time.perf_counter()
    try:
        with open(out / "ratings.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            writer.writeheader()
            for start in range(0, len(queries), max(1, args.batch)):
                chunk = queries[start : start + max(1, args.batch)]
                results = rater.rate([q for _, _, q in chunk])
                for (ei, ep, q), r in zip(chunk, results, strict=True):
                    name = class_names[r.label] if r.label is not None else ""
                    labels[name or "(abstained)"] += 1
                    if r.label is None:
                        reasons[reason_kind(r.abstain_reason)] += 1
                    writer.writerow({
                        "episode": ei, "name": ep.name, "steps": " ".join(map(str, q.steps)),
                        "query_id": q.query_id, "label": "" if r.label is None else r.label,
                        "class_name": name,
                        "probabilities": " ".join(f"{p:.6f}" for p in r.probabilities or ()),
                        "abstain_reason": r.abstain_reason, "latency_s": f"{r.latency_s:.4f}",
                        "attempts": r.attempts, "backend": r.backend})
                fh.flush()
                print(f"rated {min(start + len(chunk), len(queries))}/{len(queries)}", file=sys.stderr)
    finally:
        close = getattr(rater, "close", None)
        if callable(close):
            close()
    elapsed = time.perf_counter() - t0
    return {"queries": len(queries), "episodes": len(episodes), "backend": rater.backend_id,
            "classes": {n: labels.get(n, 0) for n in class_names}, "abstentions": dict(reasons),
            "seconds": round(elapsed, 3),
            "ratings_per_s": round(len(queries) / elapsed, 3) if elapsed else None,
            "log": str(Path(cfg["log_path"])), "csv": str(out / "ratings.csv")}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
