"""Env steps/s of the ROS 2 node graph (lock-step) vs the in-process core runner, side by side.

Both run the same task, seed and settings (one settings dict feeds the graph's params file and
the in-process LoopConfig): the learning benchmark's (drawer-open-v3, paper SAC with batch 256,
oracle with 20% label noise, 50 queries every 5k steps). Variants, alternated in ``--rounds`` so
load changes on the shared machine hit all alike:

* ``in_process``: :class:`~ros2_erl_vlm.core.loop.ErlVlmTrainer` in this process;
* ``graph``: the five node processes over DDS, as shipped (task camera rendered every step and
  stored by camera_capture, ready for a VLM rater);
* ``graph_no_camera``: the graph without rendering (what the in-process state-reward run does).

Rates are env steps per second over the run (the graph's excludes process start-up: it is
measured by the agent from its first transition), and over the steps after the random seed steps
(where SAC updates run; a long run is almost all of this). Target: graph >= 0.7x in-process. Writes
``bench/results/graph_speed.json``.

``--success`` instead trains both to the core learning benchmark's budget (150k steps, evaluation
every 10k steps over 10 episodes; hours on 2 cores) and reports the success rates side by side;
an in-process result of ``bench/learning.py`` for the same task and seed is reused when present.

    python bench/graph_speed.py [--steps 3000] [--rounds 1] [--variants in_process,graph,graph_no_camera]
    python bench/graph_speed.py --success [--steps 150000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("in_process", "graph", "graph_no_camera")


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The shared settings (graph parameter names; ``sac.``/``reward.`` prefixes)."""
    return {
        "task": args.task, "seed": args.seed, "total_steps": args.steps,
        "num_seed_steps": 1000, "num_unsup_steps": 9000 if args.success else min(9000, args.steps // 3),
        "query_every": 5000, "queries_per_round": 50, "max_feedback": 10_000,
        "sac.batch_size": args.batch, "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes if args.success else 0,
        "checkpoint_every": max(args.steps, 10_000), "rater.noise": args.label_noise,
    }


def write_params(s: dict[str, Any], path: Path, camera: bool) -> Path:
    """config/train_sim.yaml with ``s`` applied to every node that declares each name."""
    from ros2_erl_vlm.paths import config_dir
    from ros2_erl_vlm.ros.node_params import NODE_PARAMS

    data = yaml.safe_load((config_dir() / "train_sim.yaml").read_text())
    for node, specs in NODE_PARAMS.items():
        names = {p.name for p in specs}
        section = data[f"/**/{node}"]["ros__parameters"]
        section.update({k: v for k, v in s.items() if k in names})
    data["/**/sim_bridge"]["ros__parameters"]["camera.enabled"] = camera
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_in_process(s: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The core runner on the same settings; steps/s over ``run()``."""
    import torch

    from ros2_erl_vlm.core import seeds
    from ros2_erl_vlm.core.config import TaskInfo
    from ros2_erl_vlm.core.loop import ErlVlmTrainer
    from ros2_erl_vlm.envs import load_task, make_env
    from ros2_erl_vlm.raters.oracle import OracleConfig, OracleRater
    from ros2_erl_vlm.ros.node_params import REWARD_LEARNER, SAC_AGENT, loop_config

    torch.set_num_threads(1)
    task = load_task(s["task"])
    known = {p.name for p in (*SAC_AGENT, *REWARD_LEARNER)}
    cfg = loop_config({k: v for k, v in s.items() if k in known}, num_classes=task.num_classes)
    rater = OracleRater(task.bin_truth, OracleConfig(noise=s["rater.noise"]), seed=seeds.oracle_seed(s["seed"]))
    info = TaskInfo(task.name, task.instruction, task.class_names(cfg.num_classes))
    env = make_env(task, seed=cfg.seed, render=False)
    eval_env = make_env(task, seed=seeds.eval_env_seed(cfg.seed), render=False) if cfg.eval_episodes else None
    marks: list[tuple[int, float]] = []

    def progress(step: int, _total: int, _post: dict[str, Any]) -> None:
        marks.append((step, time.perf_counter()))

    trainer = ErlVlmTrainer(cfg, env, rater, info, run_dir=run_dir, eval_env=eval_env, tensorboard=False,
                            progress=progress)
    t0 = time.perf_counter()
    summary = trainer.run()
    wall = time.perf_counter() - t0
    env.close()
    return {"steps": summary["steps"], "wall_s": wall, "steps_per_s": summary["steps"] / wall,
            "after_seed_steps_per_s": rate_after(marks, s["num_seed_steps"]),
            "final_success_rate": summary["final_success_rate"], "eval": summary["eval"],
            "reward_rounds": summary["reward_rounds"]}


def rate_after(marks: list[tuple[int, float]], start_step: int) -> float:
    """Steps/s between the first mark at or after ``start_step`` and the last mark."""
    after = [(s, t) for s, t in marks if s >= start_step]
    if len(after) < 2 or after[-1][0] == after[0][0]:
        return float("nan")
    return (after[-1][0] - after[0][0]) / (after[-1][1] - after[0][1])


def run_graph(s: dict[str, Any], run_dir: Path, camera: bool) -> dict[str, Any]:
    """The node graph via the runner's process manager; the agent's summary."""
    from ros2_erl_vlm.graph import check_params, load_graph
    from ros2_erl_vlm.runner import GraphProcesses

    run_dir.mkdir(parents=True, exist_ok=True)
    params = write_params(s, run_dir / "params.yaml", camera)
    graph = load_graph()
    values = graph.resolve({"params_file": str(params), "run_dir": str(run_dir / "run")})
    check_params(graph, values)
    log = (run_dir / "output.log").open("w")
    procs = GraphProcesses(graph, values, out=log)
    t0 = time.perf_counter()
    procs.start_all()
    try:
        ended = procs.wait()
    finally:
        codes = procs.stop_all()
        log.close()
    wall = time.perf_counter() - t0
    if ended != ("sac_agent", 0):
        tail = (run_dir / "output.log").read_text()[-3000:]
        raise RuntimeError(f"graph run failed: {ended}, exit codes {codes}\n{tail}")
    agent_dir = Path(values["run_dir"]) / "sac_agent"
    summary = json.loads((agent_dir / "summary.json").read_text())
    with (agent_dir / "train.csv").open() as fh:
        marks = [(int(r["step"]), float(r["wall_s"])) for r in csv.DictReader(fh)]
    return {"steps": summary["steps"], "wall_s_with_startup": wall, "steps_per_s": summary["steps_per_s"],
            "after_seed_steps_per_s": rate_after(marks, s["num_seed_steps"]),
            "final_success_rate": summary["final_success_rate"], "eval": summary["eval"],
            "model_version": summary["model_version"], "exit_codes": codes}


def main() -> int:
    """Run the variants and write the results file."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="drawer-open-v3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="env steps (default 3000; --success: 150000)")
    ap.add_argument("--batch", type=int, default=256, help="SAC batch (the learning benchmark's)")
    ap.add_argument("--label-noise", type=float, default=0.2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--success", action="store_true", help="train to the learning benchmark's budget")
    ap.add_argument("--eval-every", type=int, default=10_000)
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.steps = args.steps or (150_000 if args.success else 3000)
    variants = [v for v in args.variants.split(",") if v]
    bad = set(variants) - set(VARIANTS)
    if bad:
        ap.error(f"unknown variants {sorted(bad)}")
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    s = settings(args)
    reused = None
    if args.success:
        learning = RESULTS / "learning" / args.task / f"erl-vlm-s{args.seed}.json"
        if "in_process" in variants and learning.exists():
            prev = json.loads(learning.read_text())
            if prev.get("steps") == args.steps:
                reused = {"final_success_rate": prev["final_success_rate"], "eval": prev["eval"],
                          "source": str(learning)}
                variants.remove("in_process")
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="erl-graph-speed-") as tmp:
        for r in range(args.rounds):
            for v in variants:
                d = Path(tmp) / f"{v}-{r}"
                print(f"round {r}: {v} ({args.steps} steps) ...", file=sys.stderr, flush=True)
                res = run_in_process(s, d) if v == "in_process" else run_graph(s, d, v == "graph")
                print(f"  {v}: {res['steps_per_s']:.1f} steps/s", file=sys.stderr, flush=True)
                rows[v].append(res)
    med = {v: statistics.median(x["steps_per_s"] for x in rs) for v, rs in rows.items()}
    med_after = {v: statistics.median(x["after_seed_steps_per_s"] for x in rs) for v, rs in rows.items()}
    result: dict[str, Any] = {
        "benchmark": "graph_speed", "task": args.task, "seed": args.seed, "steps": args.steps,
        "settings": s, "rounds": rows, "steps_per_s": med, "after_seed_steps_per_s": med_after,
        "load_avg_1min": os.getloadavg()[0], "cpu": platform.machine(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"), "target_ratio": 0.7,
    }
    if "in_process" in med:
        result["ratio"] = {v: med[v] / med["in_process"] for v in med if v != "in_process"}
        result["ratio_after_seed"] = {v: med_after[v] / med_after["in_process"]
                                      for v in med if v != "in_process"}
    if args.success:
        result["success_rate"] = {v: rs[-1]["final_success_rate"] for v, rs in rows.items()}
        if reused is not None:
            result["success_rate"]["in_process"] = reused["final_success_rate"]
            result["in_process_reused"] = reused
    out = args.out or RESULTS / ("graph_success.json" if args.success else "graph_speed.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    keys = ("steps_per_s", "ratio", "after_seed_steps_per_s", "ratio_after_seed", "success_rate")
    print(json.dumps({k: result[k] for k in keys if k in result},
                     indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
