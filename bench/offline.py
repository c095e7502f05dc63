"""Offline benchmark: the paper's real-robot table (BC vs IQL + sparse reward vs ERL-VLM), in simulation.

For one task, under a fixed demonstration protocol, every stage through the project's own commands:

1. **demonstrations**: 50 episodes of MetaWorld's scripted expert with gaussian action noise at
   three levels (:data:`MIXES`; ``protocol``: 17 at sigma 0.3, 17 at 1.5, 16 at 3.0, actions
   clipped to [-1, 1]), stock (randomised) layouts, recorded to MCAP by
   ``ros2_erl_vlm.recording.scripted`` (run seed :data:`DEMO_SEED`; episode ``e`` reset with
   ``episode_seed(0, e)``), then exported (``recording.export``). The levels were fixed before
   any training from a probe of the expert alone (8 episodes per level, no rendering): success
   8/8, 5/8, 2/8 on drawer-open-v3, 7/8, -, 6/8 on sweep-into-v3, 7/8, 0/8, 0/8 on pick-place-v3,
   so some demonstrations fail on every task. The share that succeeds is measured and written into
   every results file, never tuned; ``--mix sensitivity`` is the issue's other mix (10 / 15 / 25
   episodes at the same levels: more failures);
2. **ratings**: every ``--stride``-th frame (default 5: 100 per 500-step episode, 5,000 per task;
   the paper's budget is 10,000) rated by the simulated VLM-like rater at its default quality
   through the offline rating CLI (``raters.cli``, one log per episode);
3. **reward**: the ERL-VLM reward learned from those ratings on the frames (the paper's CNN at
   ``--reward-image-size`` px, 64 by default on CPUs; ``offline.reward``);
4. **policies**: BC, IQL-sparse and ERL-VLM (IQL on the learned reward) trained ``--steps``
   gradient steps (100k, the issue's) per seed (0, 1, 2) with ``offline.train``, evaluated
   in-process every ``--eval-every`` steps and at the end on 50 episodes with the fixed evaluation
   seeds ``eval_seed(0, i)`` (the same episodes for every method and seed).

Each run writes ``bench/results/offline/<task>/<method>[@<mix>]-s<seed>.json``: the final success
rate, the evaluation curve, the protocol (noise groups, seeds, layout, the measured share of
successful demonstrations), the rater's settings, the learned reward's summary, the training
settings and the commit. Work files (bags, export, ratings, reward model, run directories) go to
``<results>/<task>/runs/<mix>/`` (git-ignored); started again, the benchmark skips what is done and
resumes interrupted training runs. ``--summary`` prints the table and the issue's target
(ERL-VLM > IQL-sparse > BC on every task, ERL-VLM's mean at least 0.1 above IQL-sparse's).

    python bench/offline.py --task drawer-open-v3                 # the whole protocol (hours)
    python bench/offline.py --task drawer-open-v3 --summary       # the table
    python bench/offline.py --task reach-v3 --episodes 3 --max-steps 30 --frame-size 64 --steps 200 \\
        --seeds 0 --eval-episodes 2 --results /tmp/offline-smoke   # a smoke run (about a minute)

Run it from a checkout pinned to one commit, not beside other benchmarks (it needs the cores).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "offline"
#: Demonstration mixes: ``(episodes, action noise std)`` groups over the 50 demonstrations.
MIXES: dict[str, tuple[tuple[int, float], ...]] = {
    "protocol": ((17, 0.3), (17, 1.5), (16, 3.0)),
    "sensitivity": ((10, 0.3), (15, 1.5), (25, 3.0)),
}
DEMO_SEED = 0
LAYOUT = "stock"
STRIDE = 5
REWARD_IMAGE_SIZE = 64
REWARD_EPOCHS = 20
REWARD_SEED = 0
STEPS = 100_000
SEEDS = (0, 1, 2)
EVAL_EPISODES = 50
EVAL_SEED_BASE = 0
EVAL_EVERY = 20_000
#: The benchmark's methods and the training command's flags for each.
METHODS = ("bc", "iql-sparse", "erl-vlm")
#: The issue's target margin of ERL-VLM's mean success over IQL-sparse's.
TARGET_MARGIN = 0.1


def code_commit() -> str | None:
    """Short HEAD commit of this checkout (``-dirty`` with uncommitted changes to tracked files)."""
    sys.path.insert(0, str(BENCH))
    from learning import code_commit as commit

    return commit()


def scaled_mix(mix: tuple[tuple[int, float], ...], episodes: int) -> list[tuple[int, float]]:
    """The mix's groups scaled to ``episodes`` in all (largest remainders; every level keeps at
    least one episode when there are enough)."""
    total = sum(n for n, _ in mix)
    if episodes == total:
        return list(mix)
    raw = [episodes * n / total for n, _ in mix]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True):
        if sum(counts) >= episodes:
            break
        counts[i] += 1
    if episodes >= len(mix):
        for i, c in enumerate(counts):
            if c == 0:
                j = max(range(len(counts)), key=lambda k: counts[k])
                counts[j] -= 1
                counts[i] = 1
    return [(c, noise) for c, (_, noise) in zip(counts, mix, strict=True) if c > 0]


def label_of(method: str, mix: str) -> str:
    """The run's label: the method, ``@<mix>`` off the protocol's mix."""
    return method + ("" if mix == "protocol" else f"@{mix}")


def quiet(fn: Any, *args: Any) -> tuple[int, str]:
    """Run a command's ``main`` with its stdout captured: ``(exit code, stdout)``."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = fn(*args)
    return code, buf.getvalue()


class Bench:
    """One task's benchmark under one mix (see the module docstring)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.task = args.task
        self.results = Path(args.results) / self.task
        self.work = self.results / "runs" / args.mix
        self.groups = scaled_mix(MIXES[args.mix], args.episodes)
        self.demos = self.work / "demos"
        self.data = self.work / "data" / "demos.npz"
        self.ratings = self.work / "ratings"
        self.reward = self.work / "reward"

    def log(self, line: str) -> None:
        """Progress on stderr."""
        print(f"[offline {self.task} {self.args.mix}] {line}", file=sys.stderr, flush=True)

    def check_work(self) -> None:
        """The work folder's demonstrations, ratings and reward are this protocol's: refuse to reuse
        a folder made under other settings (``work.json`` records them)."""
        a = self.args
        want = {"task": self.task, "groups": [list(g) for g in self.groups], "demo_seed": DEMO_SEED,
                "layout": LAYOUT, "max_steps": a.max_steps, "frame_size": a.frame_size, "stride": a.stride,
                "reward_image_size": a.reward_image_size, "reward_epochs": a.reward_epochs}
        path = self.work / "work.json"
        if path.exists():
            have = json.loads(path.read_text())
            diffs = [f"{k}: {have.get(k)!r} (now {v!r})" for k, v in want.items() if have.get(k) != v]
            if diffs:
                raise SystemExit(f"{self.work} was made under other settings ({'; '.join(diffs)}): give "
                                 "another --results folder")
        else:
            self.work.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(want, indent=1))

    # -- 1. demonstrations --------------------------------------------------------------------
    def episode_ids(self) -> list[tuple[int, float]]:
        """``(episode id, noise)`` of every demonstration."""
        out, e = [], 0
        for count, noise in self.groups:
            for _ in range(count):
                out.append((e, noise))
                e += 1
        return out

    def record(self) -> None:
        """Record the missing demonstrations (an unfinished bag is moved to ``demos/_incomplete``)."""
        from ros2_erl_vlm.recording.mcap_episode import EpisodeBagError, episode_dir_name, read_episode
        from ros2_erl_vlm.recording.scripted import ScriptedConfig, record_scripted

        for e, noise in self.episode_ids():
            bag = self.demos / episode_dir_name(e)
            if bag.exists():
                try:
                    done = read_episode(bag).meta.get("end_reason") == "time_limit"
                except EpisodeBagError:
                    done = False
                if done:
                    continue
                aside = self.demos / "_incomplete" / f"{bag.name}-{int(time.time())}"
                aside.parent.mkdir(parents=True, exist_ok=True)
                bag.rename(aside)
                self.log(f"episode {e}: unfinished bag moved to {aside}")
            cfg = ScriptedConfig(task=self.task, out=self.demos, episodes=1, noise=noise, layout=LAYOUT,
                                 seed=DEMO_SEED, first_episode=e, max_steps=self.args.max_steps,
                                 image_size=self.args.frame_size)
            record_scripted(cfg, log=self.log)

    def demo_outcomes(self) -> list[dict[str, Any]]:
        """Per noise level: episodes and how many the recorder marked successful."""
        from ros2_erl_vlm.recording.mcap_episode import episode_dir_name, read_episode

        by_noise: dict[float, list[bool]] = {}
        for e, noise in self.episode_ids():
            by_noise.setdefault(noise, []).append(read_episode(self.demos / episode_dir_name(e)).success)
        return [{"noise": n, "episodes": len(v), "successes": int(sum(v))} for n, v in by_noise.items()]

    # -- 2. export and ratings -----------------------------------------------------------------
    def export(self) -> None:
        """Export the bags (once)."""
        from ros2_erl_vlm.recording.export import export

        if not self.data.exists():
            summary = export(self.demos, self.data, task=self.task)
            self.log(f"exported {summary['transitions']} transitions to {self.data}")

    def rate(self) -> list[Path]:
        """Rate every episode's frames (one rating CLI run and log per episode; a finished one,
        marked by ``done.json``, is skipped; an interrupted one is answered from its log)."""
        from ros2_erl_vlm.raters import cli
        from ros2_erl_vlm.recording.mcap_episode import episode_dir_name

        dirs = []
        for e, _ in self.episode_ids():
            out = self.ratings / episode_dir_name(e)
            dirs.append(out)
            if (out / "done.json").exists():
                continue
            code, text = quiet(cli.main, [str(self.demos / episode_dir_name(e)), "--out", str(out),
                                          "--task", self.task, "--backend", "simulated_vlm",
                                          "--stride", str(self.args.stride), "--set", "reuse_logged=true"])
            if code != 0:
                raise SystemExit(f"rating episode {e} failed (exit {code})")
            (out / "done.json").write_text(text)
        return dirs

    def rater_settings(self) -> dict[str, Any]:
        """The rater as the benchmark runs it."""
        from ros2_erl_vlm.raters.simulated_vlm import SimulatedVlmConfig

        return {"backend": "simulated_vlm", "seed": 0, **SimulatedVlmConfig().resolved(),
                "stride": self.args.stride, "segment_length": 1}

    # -- 3. reward -------------------------------------------------------------------------------
    def learn_reward(self, rating_dirs: list[Path]) -> dict[str, Any]:
        """Learn the reward from the ratings (once); its summary."""
        from ros2_erl_vlm.offline import reward

        summary = self.reward / reward.SUMMARY_FILE
        if not summary.exists():
            t0 = time.monotonic()
            code, _ = quiet(reward.main, ["--data", str(self.data), "--ratings", *map(str, rating_dirs),
                                          "--out", str(self.reward), "--input", "image", "--image-size",
                                          str(self.args.reward_image_size), "--seed", str(REWARD_SEED),
                                          "--epochs", str(self.args.reward_epochs),
                                          *(["--overwrite"] if (self.reward / reward.MODEL_FILE).exists() else [])])
            if code != 0:
                raise SystemExit(f"learning the reward failed (exit {code})")
            self.log(f"reward learned in {time.monotonic() - t0:.0f} s")
        return json.loads(summary.read_text())

    # -- 4. policies -------------------------------------------------------------------------------
    def train(self, method: str, seed: int) -> Path:
        """Train (or resume) one run; its run directory."""
        from ros2_erl_vlm.offline import train

        run = self.work / f"{method}-s{seed}"
        a = self.args
        if (run / "summary.json").exists() and json.loads((run / "summary.json").read_text()).get("steps") == a.steps:
            return run
        flags = {"bc": ["--method", "bc"], "iql-sparse": ["--method", "iql-sparse"],
                 "erl-vlm": ["--method", "iql", "--reward", "learned", "--reward-model",
                             str(self.reward / "reward_model.pt")]}[method]
        argv = ["--data", str(self.data), *flags, "--out", str(run), "--steps", str(a.steps), "--seed", str(seed),
                "--eval-task", self.task, "--eval-layout", LAYOUT, "--eval-episodes", str(a.eval_episodes),
                "--eval-seed-base", str(EVAL_SEED_BASE), "--eval-every", str(min(a.eval_every, a.steps)),
                "--log-every", str(max(1, min(1000, a.steps // 4))), "--checkpoint-every",
                str(min(10_000, a.steps)), "--no-tensorboard", "--no-progress", *a.train_args]
        if (run / "checkpoint.pt").exists():
            argv.append("--resume")  # an interrupted run, or a finished one continued to more --steps
        self.log(f"training {method} seed {seed} for {a.steps} steps -> {run}")
        code, _ = quiet(train.main, argv)
        if code != 0:
            raise SystemExit(f"training {method} seed {seed} failed (exit {code})")
        return run

    def results_file(self, method: str, seed: int) -> Path:
        """Where a run's results go."""
        return self.results / f"{label_of(method, self.args.mix)}-s{seed}.json"

    def write_results(self, method: str, seed: int, run: Path, protocol: dict[str, Any],
                      reward_summary: dict[str, Any]) -> dict[str, Any]:
        """The run's results file."""
        summary = json.loads((run / "summary.json").read_text())
        with open(run / "eval.csv", newline="") as fh:
            curve = [{"step": int(float(r["step"])), "success_rate": float(r["success_rate"]),
                      "true_return": float(r["true_return"])} for r in csv.DictReader(fh)]
        last = curve[-1] if curve else {}
        out = {"task": self.task, "method": method, "label": label_of(method, self.args.mix), "seed": seed,
               "success": last.get("success_rate"), "true_return": last.get("true_return"),
               "eval_curve": curve, "steps": summary.get("steps"), "wall_s": summary.get("wall_s"),
               "protocol": protocol, "rater": self.rater_settings(),
               "reward": None if method != "erl-vlm" else {
                   k: reward_summary.get(k) for k in ("ratings_used", "class_counts", "abstentions", "training",
                                                      "learned_reward", "model")},
               "train_rewards": summary.get("rewards"), "train_settings": json.loads((run / "run.json").read_text()),
               "commit": code_commit(), "finished": True, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.results.mkdir(parents=True, exist_ok=True)
        self.results_file(method, seed).write_text(json.dumps(out, indent=1))
        return out

    def run(self) -> None:
        """Every stage, skipping what is done."""
        os.environ.setdefault("MUJOCO_GL", "egl")
        t0 = time.monotonic()
        self.check_work()
        self.record()
        outcomes = self.demo_outcomes()
        wins = sum(o["successes"] for o in outcomes)
        self.log(f"demonstrations: {wins}/{self.args.episodes} successful "
                 + ", ".join(f"sigma {o['noise']}: {o['successes']}/{o['episodes']}" for o in outcomes))
        self.export()
        reward_summary = self.learn_reward(self.rate())
        protocol = {"mix": self.args.mix, "groups": [{"episodes": n, "noise": s} for n, s in self.groups],
                    "demo_seed": DEMO_SEED, "layout": LAYOUT, "episodes": self.args.episodes,
                    "max_steps": self.args.max_steps or "task", "frame_size": self.args.frame_size or "task",
                    "outcomes": outcomes, "success_share": wins / self.args.episodes,
                    "reward_image_size": self.args.reward_image_size, "reward_epochs": self.args.reward_epochs,
                    "eval": {"episodes": self.args.eval_episodes, "seed_base": EVAL_SEED_BASE,
                             "layout": LAYOUT, "every": self.args.eval_every},
                    "steps": self.args.steps}
        for seed in self.args.seeds:
            for method in self.args.methods:
                if self.results_file(method, seed).exists() and json.loads(
                        self.results_file(method, seed).read_text()).get("steps") == self.args.steps:
                    continue
                res = self.write_results(method, seed, self.train(method, seed), protocol, reward_summary)
                self.log(f"{res['label']} seed {seed}: success {res['success']}")
        self.log(f"done in {time.monotonic() - t0:.0f} s")


def summarise(results: Path, tasks: list[str] | None, mix: str) -> dict[str, Any]:
    """The table (mean and std of the final success over seeds per task and method) and the target."""
    import numpy as np

    table: dict[str, Any] = {}
    for task_dir in sorted(p for p in results.iterdir() if p.is_dir()) if results.is_dir() else []:
        if tasks and task_dir.name not in tasks:
            continue
        rows = {}
        for method in METHODS:
            label = label_of(method, mix)
            runs = [json.loads(f.read_text()) for f in sorted(task_dir.glob(f"{label}-s*.json"))]
            runs = [r for r in runs if r.get("label") == label and r.get("success") is not None]
            if runs:
                s = np.array([r["success"] for r in runs], float)
                rows[method] = {"mean": float(s.mean()), "std": float(s.std()), "seeds": len(runs),
                                "steps": sorted({r["steps"] for r in runs}),
                                "demo_success_share": runs[0]["protocol"]["success_share"]}
        if rows:
            m = {k: v["mean"] for k, v in rows.items()}
            met = None
            if len(m) == 3:
                met = bool(m["erl-vlm"] > m["iql-sparse"] > m["bc"]
                           and m["erl-vlm"] >= m["iql-sparse"] + TARGET_MARGIN)
            table[task_dir.name] = {"methods": rows, "target_met": met}
    return table


def print_summary(table: dict[str, Any], mix: str) -> None:
    """The table as text."""
    print(f"offline benchmark ({mix} mix): final success over seeds, mean +- std (seeds)")
    print(f"{'task':<18}" + "".join(f"{m:>22}" for m in METHODS) + "   demos ok   target")
    for task, row in table.items():
        cells = "".join(f"{row['methods'][m]['mean']:>12.2f} +- {row['methods'][m]['std']:.2f} ({row['methods'][m]['seeds']})"
                        if m in row["methods"] else f"{'-':>22}" for m in METHODS)
        share = next(iter(row["methods"].values()))["demo_success_share"]
        met = {True: "met", False: "NOT met", None: "incomplete"}[row["target_met"]]
        print(f"{task:<18}{cells}   {share:>7.0%}   {met}")
    print(f"target (the paper's ordering): ERL-VLM > IQL-sparse > BC on every task, ERL-VLM's mean >= "
          f"IQL-sparse's + {TARGET_MARGIN}")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", action="append", help="task (repeatable; default for --summary: all)")
    p.add_argument("--mix", choices=sorted(MIXES), default="protocol", help="demonstration mix")
    p.add_argument("--episodes", type=int, default=50, help="demonstrations (the mix scaled to it)")
    p.add_argument("--max-steps", type=int, default=0, help="demonstration length (0: the task's 500)")
    p.add_argument("--frame-size", type=int, default=0, help="recorded frame side (0: the task's)")
    p.add_argument("--stride", type=int, default=STRIDE, help="rate every k-th frame")
    p.add_argument("--reward-image-size", type=int, default=REWARD_IMAGE_SIZE, help="the reward CNN's input side")
    p.add_argument("--reward-epochs", type=int, default=REWARD_EPOCHS)
    p.add_argument("--steps", type=int, default=STEPS, help="gradient steps per run")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES)
    p.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    p.add_argument("--train-arg", dest="train_args", action="append", default=[],
                   help="extra flag for offline.train (e.g. --train-arg=--set --train-arg=hidden_dim=64)")
    p.add_argument("--results", default=str(RESULTS), help="results folder")
    p.add_argument("--summary", action="store_true", help="print the table of the results and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    if args.summary:
        table = summarise(Path(args.results), args.task, args.mix)
        print_summary(table, args.mix)
        return 0
    if not args.task:
        print("error: give --task (or --summary)", file=sys.stderr)
        return 2
    tasks = args.task
    for task in tasks:
        args.task = task
        Bench(args).run()
    print_summary(summarise(Path(args.results), tasks, args.mix), args.mix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
