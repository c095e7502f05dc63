"""SAC gradient updates/s: erl_vlm's SAC vs stable-baselines3 SAC, same networks, same batch.

Both agents train on the same random replay data (39-D observations, 4-D actions as MetaWorld)
with the paper's settings (3x256 MLPs, batch 512 by default). Measurement alternates between
the two in rounds so load changes on the machine hit both alike. Writes
``bench/results/sac_speed.json`` and ``sac_speed.png`` and prints the numbers.

    python bench/sac_speed.py [--batch 512] [--rounds 5] [--updates 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

OBS_DIM, ACT_DIM = 39, 4
RESULTS = Path(__file__).resolve().parent / "results"


def make_ours(batch: int, hidden: int, layers: int, n: int):
    """Our SAC plus a sampler over a filled tensor replay; returns a zero-arg update function."""
    from ros2_erl_vlm.core.rl.replay_buffer import ReplayBuffer
    from ros2_erl_vlm.core.rl.sac import SAC, SACConfig

    rb = ReplayBuffer(OBS_DIM, ACT_DIM, n)
    rb.obs[:] = torch.randn(n, OBS_DIM)
    rb.next_obs[:] = torch.randn(n, OBS_DIM)
    rb.action[:] = torch.rand(n, ACT_DIM) * 2 - 1
    rb.reward[:] = torch.randn(n)
    rb.not_done[:] = 1
    rb.size = n
    # SB3 updates its target every step; do the same here so the work is identical.
    agent = SAC(OBS_DIM, ACT_DIM, SACConfig(batch_size=batch, hidden_dim=hidden, hidden_layers=layers,
                                            critic_target_update_every=1), seed=0)
    return lambda: agent.update(*rb.sample(batch))


def make_sb3(batch: int, hidden: int, layers: int, n: int):
    """SB3 SAC with the same architecture and a filled replay; returns an update function."""
    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC

    class Dummy(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (ACT_DIM,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(OBS_DIM, np.float32), {}

        def step(self, a):
            return np.zeros(OBS_DIM, np.float32), 0.0, False, False, {}

    model = SB3SAC("MlpPolicy", Dummy(), batch_size=batch, buffer_size=n, learning_rate=3e-4,
                   policy_kwargs={"net_arch": [hidden] * layers}, ent_coef="auto_0.1",
                   learning_starts=0, device="cpu", seed=0, verbose=0)
    rb = model.replay_buffer
    rb.observations[:] = np.random.randn(*rb.observations.shape).astype(np.float32)
    rb.next_observations[:] = np.random.randn(*rb.next_observations.shape).astype(np.float32)
    rb.actions[:] = np.random.uniform(-1, 1, rb.actions.shape).astype(np.float32)
    rb.rewards[:] = np.random.randn(*rb.rewards.shape).astype(np.float32)
    rb.full = True
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(folder=None, format_strings=[]))
    return lambda: model.train(gradient_steps=1, batch_size=batch)


def timed(fn, updates: int) -> float:
    """Updates per second of ``updates`` calls."""
    t0 = time.perf_counter()
    for _ in range(updates):
        fn()
    return updates / (time.perf_counter() - t0)


def main() -> None:
    """Run the comparison and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--updates", type=int, default=100, help="updates per round per agent")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "sac_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = 50_000
    ours, sb3 = make_ours(args.batch, args.hidden, args.layers, n), make_sb3(args.batch, args.hidden, args.layers, n)
    for fn in (ours, sb3):  # warm-up
        timed(fn, 10)
    rows = []
    for r in range(args.rounds):
        a, b = timed(ours, args.updates), timed(sb3, args.updates)
        rows.append({"round": r, "erl_vlm": a, "sb3": b})
        print(f"round {r}: erl_vlm {a:7.1f} upd/s   sb3 {b:7.1f} upd/s   ratio {a / b:.2f}x", flush=True)
    med_a = float(np.median([x["erl_vlm"] for x in rows]))
    med_b = float(np.median([x["sb3"] for x in rows]))
    import stable_baselines3

    result = {
        "benchmark": "sac_speed", "batch": args.batch, "net": f"{args.layers}x{args.hidden}",
        "threads": args.threads, "rounds": rows, "erl_vlm_updates_per_s": med_a,
        "sb3_updates_per_s": med_b, "speedup": med_a / med_b, "target_speedup": 1.4,
        "torch": torch.__version__, "sb3": stable_baselines3.__version__,
        "cpu": platform.processor() or platform.machine(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_avg_1min": os.getloadavg()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"median: erl_vlm {med_a:.1f} upd/s, sb3 {med_b:.1f} upd/s -> {med_a / med_b:.2f}x (target 1.4x)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.bar(["erl_vlm SAC", "SB3 SAC"], [med_a, med_b], color=["tab:blue", "tab:gray"])
        ax.set_ylabel("gradient updates / s")
        ax.set_title(f"SAC {args.layers}x{args.hidden}, batch {args.batch}, {args.threads} thread(s)")
        fig.tight_layout()
        fig.savefig(args.out.with_suffix(".png"), dpi=120)
    except ImportError:
        pass
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
