"""The prepared GPU check (issue #13): the learning code and the rater on a CUDA GPU, in minutes.

Measures, on one GPU machine, with the core's torch parts and the transformers rater only (no
MuJoCo, MetaWorld, gymnasium or rclpy is imported, so it runs on a bare Python + torch +
transformers install):

* ``agent``: the online agent as the graph's ``sac_agent`` runs it (``device`` setting ``cuda``):
  seed steps, PEBBLE's state-entropy phase, a reward model arriving from the CPU (moved, the
  replay relabelled, the critic reset), SAC on the learned reward; then its checkpoint is loaded
  by an agent on the CPU;
* ``sac``: SAC gradient updates/s with the paper's networks (3x256 MLPs, batch 512, 39-D states,
  4-D actions), batches sampled from a filled replay buffer on the same device, on the CPU and on
  the GPU;
* ``relabel``: relabelling 1M stored state transitions with the reward ensemble (3 members,
  3x256, first trained on 500 state ratings there) on the GPU (and, for comparison, on the CPU);
* ``image_cnn``: the paper's image reward CNN (ensemble of 3) on 224 px frames: inference
  frames/s from CPU memory (where the replay keeps frames) and from GPU memory, and training
  frames/s (one epoch of RbRL training at the image batch size 512);
* ``vlm``: rating latency of a real-size random-weight VLM (Idefics3 with SmolVLM-256M-Instruct's
  dimensions, built in code, no download) in bfloat16 through the transformers rater: constrained
  choice at batch 1 and 8, greedy generation of 8 tokens at batch 1.

Each component asserts that its tensors (parameters, batches, outputs) are on the GPU and reports
the peak GPU memory it allocated; the results file also records the host, the GPU and the versions
it ran with (Python, torch, CUDA, transformers, numpy). A component that fails is recorded with
its error and the others still run; the exit code is then 1. Without a GPU it exits 2 at once,
saying what torch reports. The results file is rewritten after every component, so a run cut short
keeps what it measured.

    bash bench/gpu_check.sh                  # GPU machine: bench/results/gpu/gpu_check.json, < 5 min
    bash bench/gpu_check.sh --cpu-only       # here: every component on the CPU, small sizes, seconds each
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ros2_erl_vlm.core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from ros2_erl_vlm.core.config import LoopConfig  # noqa: E402
from ros2_erl_vlm.core.device import cuda_report, resolve_device, tensors_in  # noqa: E402
from ros2_erl_vlm.core.rating.dataset import DatasetSpec, RatingDataset  # noqa: E402
from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, RatingQuery, RatingResult  # noqa: E402
from ros2_erl_vlm.core.reward.reward_model import RewardEnsemble, RewardModelConfig  # noqa: E402
from ros2_erl_vlm.core.rl.online_agent import OnlineAgent  # noqa: E402
from ros2_erl_vlm.core.rl.replay_buffer import ReplayBuffer  # noqa: E402
from ros2_erl_vlm.core.rl.sac import SAC, SACConfig  # noqa: E402

OBS_DIM, ACT_DIM = 39, 4  # MetaWorld's state and action
GPU_OUT = ROOT / "bench" / "results" / "gpu" / "gpu_check.json"
CPU_OUT = ROOT / "bench" / "results" / "tmp" / "gpu_check_cpu_only.json"
BLOCKED = ("mujoco", "metaworld", "gymnasium", "rclpy")


class Sizes:
    """How much work each component does: the GPU run's, or a few seconds each on a CPU."""

    def __init__(self, cpu_only: bool) -> None:
        self.cpu_only = cpu_only
        self.sac_seconds = 3.0 if cpu_only else 15.0       # per device
        self.replay = 100_000 if cpu_only else 1_000_000   # transitions in the SAC replay
        self.relabel = 20_000 if cpu_only else 1_000_000   # transitions relabelled
        self.relabel_repeats = 1 if cpu_only else 3
        self.cnn_frames = 64 if cpu_only else 8192         # inference frames
        self.cnn_train = 96 if cpu_only else 2048          # training ratings (one epoch)
        self.agent_steps = 400 if cpu_only else 2000       # online agent steps (100-step episodes)
        self.agent_hidden = 64 if cpu_only else 256        # its SAC width (3 layers)
        self.vlm = "tiny_idefics3" if cpu_only else "smolvlm_256m_like"
        self.vlm_queries = 2 if cpu_only else 16


# -- helpers ---------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def on(device: torch.device, what: str, tensors: Iterable[torch.Tensor]) -> int:
    """Assert every tensor is on ``device``; returns how many were checked."""
    n = 0
    for t in tensors:
        if t.device.type != device.type or (device.index is not None and t.device.index not in
                                            (None, device.index)):
            raise AssertionError(f"{what}: a tensor is on {t.device}, expected {device}")
        n += 1
    if n == 0:
        raise AssertionError(f"{what}: no tensors to check")
    return n


def reset_peak(device: torch.device) -> None:
    """Start a component's peak-memory count."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> dict[str, float]:
    """Peak memory of the component: GPU allocated/reserved (MB), or the process's max RSS."""
    if device.type == "cuda":
        return {"peak_gpu_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
                "peak_gpu_reserved_mb": round(torch.cuda.max_memory_reserved(device) / 2**20, 1)}
    return {"process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds ``fn`` takes, device work included."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def filled_replay(n: int, device: torch.device, seed: int = 0) -> ReplayBuffer:
    """A replay buffer of ``n`` random transitions on ``device``."""
    g = torch.Generator().manual_seed(seed)
    rb = ReplayBuffer(OBS_DIM, ACT_DIM, n, seed=seed, device=device)
    for name, shape in (("obs", (n, OBS_DIM)), ("next_obs", (n, OBS_DIM)), ("reward", (n,))):
        getattr(rb, name).copy_(torch.randn(shape, generator=g))
    rb.action.copy_(torch.rand((n, ACT_DIM), generator=g) * 2 - 1)
    rb.not_done.fill_(1.0)
    rb.size = n
    return rb


# -- components ------------------------------------------------------------------------------------
def sac_updates(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    """SAC updates/s (paper networks, batch 512) with batches from a replay buffer on ``device``."""
    reset_peak(device)
    cfg = SACConfig()  # 3x256, batch 512, the paper's
    rb = filled_replay(sizes.replay, device)
    agent = SAC(OBS_DIM, ACT_DIM, cfg, seed=0, device=device)
    batch = rb.sample(cfg.batch_size)
    checked = on(device, "sac", [*agent.actor.parameters(), *agent.critic.parameters(),
                                 *agent.critic_target.parameters(), agent.log_alpha, *batch,
                                 rb.obs, rb.next_obs, rb.action, rb.reward, rb.not_done])
    for _ in range(20):  # warm-up (kernels, allocator, fused Adam state)
        agent.update(*rb.sample(cfg.batch_size))
    sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < sizes.sac_seconds:
        for _ in range(25):
            metrics = agent.update(*rb.sample(cfg.batch_size))
        n += 25
    sync(device)
    elapsed = time.perf_counter() - t0
    if not all(np.isfinite(v) for v in metrics.values()):
        raise AssertionError(f"sac: non-finite diagnostics {metrics}")
    return {"device": str(device), "updates": n, "seconds": round(elapsed, 2),
            "updates_per_s": round(n / elapsed, 1), "batch": cfg.batch_size,
            "network": f"{cfg.hidden_layers}x{cfg.hidden_dim}", "replay": sizes.replay,
            "cpu_threads": torch.get_num_threads(), "tensors_checked": checked, **peak_mb(device)}


def agent_loop(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    """The online agent on ``device`` through every phase, then its checkpoint loaded on the CPU."""
    import tempfile

    reset_peak(device)
    steps, episode_len = sizes.agent_steps, 100
    if device.type == "cuda":  # the loop setting names no index: "cuda" is the current device
        torch.cuda.set_device(device)
    cfg = LoopConfig(device=device.type, num_seed_steps=max(steps // 8, 64), num_unsup_steps=steps // 4,
                     replay_capacity=10 * steps, reset_updates=20, entropy_bonus=0.1)
    cfg.sac.hidden_dim = sizes.agent_hidden
    agent = OnlineAgent(cfg, OBS_DIM, ACT_DIM)
    rng = np.random.default_rng(0)
    adopt_at = cfg.learn_start + 10
    adopted: dict[str, Any] | None = None
    t0 = time.perf_counter()
    episode, t = 0, 0
    state = rng.normal(size=OBS_DIM).astype(np.float32)
    agent.observe(episode, 0, state, np.zeros(0, np.float32))
    while agent.step < steps:
        action = agent.act(state)
        agent.learn()
        state = (0.9 * state + 0.1 * rng.normal(size=OBS_DIM)).astype(np.float32)
        t += 1
        agent.observe(episode, t, state, action, truncated=t == episode_len)
        if t == episode_len:
            episode, t = episode + 1, 0
            agent.observe(episode, 0, state, np.zeros(0, np.float32))
        if agent.step == adopt_at:  # a model from the learner arrives as CPU tensors
            model = RewardEnsemble(cfg.reward, obs_dim=OBS_DIM, seed=1, device="cpu")
            adopted = agent.set_reward_model(model, 1)
    sync(device)
    elapsed = time.perf_counter() - t0
    if adopted is None or adopted["relabelled"] != adopt_at or agent.reward_model is None:
        raise AssertionError(f"agent: the reward model was not adopted as expected: {adopted}")
    checked = on(device, "agent", [*agent.sac.actor.parameters(), *agent.sac.critic.parameters(),
                                   agent.sac.log_alpha, agent.replay.obs, agent.replay.reward,
                                   *agent.reward_model.members.parameters(),
                                   *agent.replay.sample(cfg.sac.batch_size)])
    state_dict = agent.state_dict()
    on(torch.device("cpu"), "agent checkpoint", tensors_in(state_dict))
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / "checkpoint.pt", {"agent": state_dict})
        on_cpu = OnlineAgent(LoopConfig(**{**vars(cfg), "device": "cpu"}), OBS_DIM, ACT_DIM)
        on_cpu.load_state_dict(load_checkpoint(path)["agent"])
    probe = np.zeros(OBS_DIM, np.float32)
    same = np.allclose(on_cpu.sac.act(probe, deterministic=True), agent.sac.act(probe, deterministic=True),
                       atol=1e-3)
    if not same or on_cpu.step != agent.step or len(on_cpu.replay) != len(agent.replay):
        raise AssertionError("agent: the checkpoint loaded on the CPU acts or counts differently")
    return {"device": str(device), "steps": agent.step, "sac_updates": agent.updates,
            "episodes": episode, "network": f"3x{sizes.agent_hidden}", "seconds": round(elapsed, 2),
            "steps_per_s": round(agent.step / elapsed, 1), "checkpoint_loads_on_cpu": True,
            "tensors_checked": checked, **peak_mb(device)}


def relabel(device: torch.device, sizes: Sizes, repeats: int) -> dict[str, Any]:
    """Train a 3-member state reward ensemble on ``device`` (500 ratings), then relabel
    ``sizes.relabel`` stored transitions with it."""
    reset_peak(device)
    rb = filled_replay(sizes.relabel, device, seed=1)
    model = RewardEnsemble(RewardModelConfig(), obs_dim=OBS_DIM, seed=0, device=device)
    ds = RatingDataset(DatasetSpec(3, "state", (1, OBS_DIM)), capacity=500)
    rng = np.random.default_rng(0)
    for i in range(500):
        x = rng.normal(size=(1, OBS_DIM)).astype(np.float32)
        ds.add(x, RatingResult(f"q{i}", int(x[0, 0] > -0.4) + int(x[0, 0] > 0.4), 3, "synthetic"))
    train_s = timed(lambda: model.train_on(ds, rng, epochs=2), device)
    if model.version != 1:
        raise AssertionError("relabel: the reward ensemble did not train")
    checked = on(device, "relabel", [*model.members.parameters(), model.norm_stats, model.input_stats,
                                     rb.next_obs, rb.reward])
    model.predict(rb.next_obs[:4096])  # warm-up
    times = [timed(lambda: rb.relabel(model.predict), device) for _ in range(repeats)]
    checked += on(device, "relabel output", [rb.reward, model.predict(rb.next_obs[:8])])
    if not torch.isfinite(rb.reward).all():
        raise AssertionError("relabel: non-finite rewards")
    best = min(times)
    return {"device": str(device), "transitions": sizes.relabel, "ensemble": 3, "network": "3x256",
            "seconds": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3),
            "transitions_per_s": round(sizes.relabel / best), "train_500_ratings_2_epochs_s":
            round(train_s, 3), "tensors_checked": checked, **peak_mb(device)}


def image_cnn(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    """The image reward CNN (ensemble of 3, 224 px): inference and training frames/s."""
    reset_peak(device)
    cfg = RewardModelConfig(input_kind="image", image_size=224, batch_size=512)
    model = RewardEnsemble(cfg, seed=0, device=device)
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (sizes.cnn_frames, 224, 224, 3), dtype=np.uint8))
    model.predict(frames[:256])  # warm-up
    t_cpu = timed(lambda: model.predict(frames), device)
    out: dict[str, Any] = {"device": str(device), "ensemble": 3, "image_size": 224,
                           "frames": sizes.cnn_frames,
                           "inference_frames_per_s_from_cpu_memory": round(sizes.cnn_frames / t_cpu, 1)}
    checked = on(device, "image_cnn", [*model.members.parameters(), model.predict(frames[:4])])
    if device.type == "cuda":
        resident = frames.to(device)
        t_gpu = timed(lambda: model.predict(resident), device)
        out["inference_frames_per_s_from_gpu_memory"] = round(sizes.cnn_frames / t_gpu, 1)
        del resident
    ds = RatingDataset(DatasetSpec(3, "image", (1, 224, 224, 3)), capacity=sizes.cnn_train)
    for i in range(sizes.cnn_train):
        ds.add(frames[i % sizes.cnn_frames][None].numpy(), RatingResult(f"q{i}", i % 3, 3, "synthetic"))
    t_train = timed(lambda: model.train_on(ds, rng, epochs=1), device)
    checked += on(device, "image_cnn after training", [*model.members.parameters(), model.norm_stats])
    out.update(train_ratings=sizes.cnn_train, train_batch=cfg.batch_size,
               train_frames_per_s=round(sizes.cnn_train / t_train, 1), tensors_checked=checked,
               **peak_mb(device))
    return out


def vlm_latency(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    """Rating latency of a random-weight VLM through the transformers rater (bf16 on a GPU)."""
    from ros2_erl_vlm.raters import random_weight_vlms
    from ros2_erl_vlm.raters.transformers_rater import TransformersRater, TransformersRaterConfig

    reset_peak(device)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    t0 = time.perf_counter()
    if sizes.vlm == "smolvlm_256m_like":
        model, proc = random_weight_vlms.smolvlm_256m_like(dtype=dtype)
    else:
        model, proc = random_weight_vlms.tiny_idefics3()
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    queries = [RatingQuery(episode=i, steps=(0,), instruction="open the drawer",
                           class_names=DEFAULT_CLASS_NAMES[3], query_id=f"q{i}",
                           frames=rng.integers(0, 256, (1, 224, 224, 3), dtype=np.uint8))
               for i in range(sizes.vlm_queries)]
    rows = []
    checked = 0
    for mode, batch, extra in (("choice", 1, {}), ("choice", 8, {}),
                               ("generate", 1, {"max_new_tokens": 8})):
        cfg = TransformersRaterConfig(model=f"{sizes.vlm} (random weights)", mode=mode,
                                      batch_size=batch, min_class_mass=0.0, device=str(device),
                                      dtype=str(dtype).removeprefix("torch."), **extra)
        rater = TransformersRater(cfg, model=model, processor=proc)
        checked += on(device, f"vlm {mode}", rater.model.parameters())
        if any(p.dtype != dtype for p in rater.model.parameters() if p.is_floating_point()):
            raise AssertionError(f"vlm: parameters are not all {dtype}")
        n = min(len(queries), max(batch, sizes.vlm_queries if mode == "choice" else 4))
        rater.rate(queries[:batch])  # warm-up
        sync(device)
        t0 = time.perf_counter()
        results = rater.rate(queries[:n])
        sync(device)
        elapsed = time.perf_counter() - t0
        failed = [r.abstain_reason for r in results if r.abstain_reason.startswith("model_error")]
        if failed:
            raise AssertionError(f"vlm {mode}: the model failed: {failed[0]}")
        rows.append({"mode": mode, "batch": batch, **extra, "ratings": n, "seconds": round(elapsed, 3),
                     "s_per_rating": round(elapsed / n, 4),
                     "s_per_batch": round(elapsed / -(-n // batch), 4)})
        print(f"  vlm {json.dumps(rows[-1])}", flush=True)
    return {"device": str(device), "model": sizes.vlm, "params_millions": round(params / 1e6, 1),
            "dtype": str(dtype).removeprefix("torch."), "frame_size": 224,
            "image_tile": proc.image_processor.max_image_size["longest_edge"],
            "image_tokens_per_frame": int(proc.image_seq_len), "build_s": round(build_s, 1),
            "results": rows, "tensors_checked": checked, **peak_mb(device)}


# -- the run ---------------------------------------------------------------------------------------
def versions() -> dict[str, Any]:
    """What this check ran with."""
    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                           "numpy": np.__version__}
    for name in ("transformers", "tokenizers", "PIL"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:  # recorded, not fatal: the VLM component reports its own failure
            out[name] = f"unavailable ({type(exc).__name__})"
    out["simulator_or_ros_loaded"] = sorted(m for m in BLOCKED if m in sys.modules)
    return out


def host(device: torch.device) -> dict[str, Any]:
    """The machine: CPU, cores and the GPU."""
    out: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "load_avg": round(os.getloadavg()[0], 2), "cuda": cuda_report()}
    if device.type == "cuda":
        prop = torch.cuda.get_device_properties(device)
        out["gpu"] = {"name": prop.name, "memory_gb": round(prop.total_memory / 2**30, 1),
                      "capability": f"{prop.major}.{prop.minor}"}
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2: no GPU, 1: a component failed)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-only", action="store_true",
                   help="run every component on the CPU with small sizes (a machine without a GPU)")
    p.add_argument("--device", default="cuda", help="the GPU to check (cuda or cuda:N)")
    p.add_argument("--only", nargs="+", choices=("agent", "sac", "relabel", "image_cnn", "vlm"),
                   help="run only these components")
    p.add_argument("--cpu-threads", type=int,
                   help="torch CPU threads (default: torch's, one per core; 1 with --cpu-only)")
    p.add_argument("--out", type=Path, help=f"results file (default {GPU_OUT.relative_to(ROOT)}, "
                   f"with --cpu-only {CPU_OUT.relative_to(ROOT)})")
    args = p.parse_args(argv)
    sizes = Sizes(args.cpu_only)
    threads = args.cpu_threads or (1 if args.cpu_only else None)
    if threads:
        torch.set_num_threads(threads)
    if args.cpu_only:
        device = torch.device("cpu")
    else:
        try:
            device = resolve_device(args.device)
        except ValueError as exc:
            print(f"gpu_check: no GPU to check: {exc}\n(bash bench/gpu_check.sh --cpu-only runs "
                  f"every component on the CPU)", file=sys.stderr)
            return 2
        if device.type != "cuda":
            print(f"gpu_check: --device must name a CUDA device, got {args.device!r}", file=sys.stderr)
            return 2
    out_path = args.out or (CPU_OUT if args.cpu_only else GPU_OUT)
    cpu = torch.device("cpu")
    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("sac_cpu", lambda: sac_updates(cpu, sizes)),
        ("relabel_cpu", lambda: relabel(cpu, sizes, 1)),
    ]
    plan.append(("agent", lambda: agent_loop(device, sizes)))
    if device.type == "cuda":
        plan += [("sac_gpu", lambda: sac_updates(device, sizes)),
                 ("relabel_gpu", lambda: relabel(device, sizes, sizes.relabel_repeats))]
    plan += [("image_cnn", lambda: image_cnn(device, sizes)), ("vlm", lambda: vlm_latency(device, sizes))]
    if args.only:
        plan = [(n, f) for n, f in plan if n.removesuffix("_cpu").removesuffix("_gpu") in args.only]
    result: dict[str, Any] = {
        "bench": "gpu_check", "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "cpu-only" if args.cpu_only else "gpu", "device": str(device),
        "versions": versions(), "host": host(device), "components": {}, "failed": [],
    }
    t_start = time.perf_counter()
    for name, fn in plan:
        print(f"gpu_check: {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            row = fn()
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            print(f"gpu_check: {name}: {json.dumps(row)}", flush=True)
        except Exception as exc:  # record and go on: one broken component must not hide the others
            row = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500],
                   "traceback": traceback.format_exc()[-2000:], "wall_s": round(time.perf_counter() - t0, 1)}
            result["failed"].append(name)
            print(f"gpu_check: {name} FAILED: {row['error']}", file=sys.stderr, flush=True)
        result["components"][name] = row
        if device.type == "cuda":
            torch.cuda.empty_cache()
        result["wall_s"] = round(time.perf_counter() - t_start, 1)
        write(out_path, result)
    if device.type == "cuda":  # each component resets the peak count: the largest of theirs
        result["peak_gpu_allocated_mb_overall"] = max(
            (row.get("peak_gpu_allocated_mb", 0.0) for row in result["components"].values()), default=0.0)
    result["versions"]["simulator_or_ros_loaded"] = sorted(m for m in BLOCKED if m in sys.modules)
    gpu = result["components"]
    if "sac_gpu" in gpu and "sac_cpu" in gpu and "updates_per_s" in gpu["sac_gpu"] and \
            "updates_per_s" in gpu["sac_cpu"]:
        result["sac_gpu_over_cpu"] = round(gpu["sac_gpu"]["updates_per_s"] / gpu["sac_cpu"]["updates_per_s"], 2)
    write(out_path, result)
    print(f"gpu_check: wrote {out_path} ({result['wall_s']} s; failed: {result['failed'] or 'none'})")
    return 1 if result["failed"] else 0


def write(path: Path, result: dict[str, Any]) -> None:
    """(Re)write the one results file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
