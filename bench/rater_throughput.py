"""Ratings per second: constrained choice vs free generation on the same real-size VLM.

The model is Idefics3 with SmolVLM-256M-Instruct's dimensions (written in code, random weights,
no download; see :func:`ros2_erl_vlm.raters.random_weight_vlms.smolvlm_256m_like`), one 224 px frame
per query upscaled to one 512 px tile (64 image tokens), the default one-call prompt, 3 classes.
``choice`` scores the class names in one forward pass; ``generate`` decodes ``--max-new-tokens``
tokens greedily and parses them (random weights almost never emit the end token, so every answer
costs that many decode steps; a real model answering "Good" + end-of-turn needs ~2-3).

It also times one matrix product (SmolVLM's vision MLP shape) in float32 and bfloat16: without
native bfloat16 (AVX512-BF16/AMX) torch's bfloat16 path is far slower on CPU, which is why the
rater's ``dtype: auto`` means float32 there, and why the model runs in float32 by default here.

    .venv/bin/python bench/rater_throughput.py                 # writes bench/results/rater_throughput.json
    .venv/bin/python bench/rater_throughput.py --batch 4 --max-new-tokens 8   # ~1.5 min

Generation budgets 8, 16 (the rater's default ``max_new_tokens``) and 32 tokens are measured.
The default run takes ~9 minutes on a 2-core EPYC (most of it the 512 px vision encoder, ~6 s of
a rating). Check the machine is otherwise idle first (``uptime``): the numbers are CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ros2_erl_vlm.core.rating.rater import DEFAULT_CLASS_NAMES, RatingQuery  # noqa: E402
from ros2_erl_vlm.raters import prompts  # noqa: E402
from ros2_erl_vlm.raters.random_weight_vlms import smolvlm_256m_like  # noqa: E402
from ros2_erl_vlm.raters.transformers_rater import TransformersRater, TransformersRaterConfig  # noqa: E402


def make_queries(n: int, size: int, seed: int = 0) -> list[RatingQuery]:
    """``n`` one-frame queries with random ``size`` px frames."""
    rng = np.random.default_rng(seed)
    return [RatingQuery(episode=i, steps=(0,), instruction="open the drawer", class_names=DEFAULT_CLASS_NAMES[3],
                        frames=rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8), query_id=f"q{i}")
            for i in range(n)]


def matmul_gflops(dtype: torch.dtype, m: int = 256, k: int = 768, n: int = 3072, reps: int = 3) -> float:
    """GFLOP/s of one ``(m, k) @ (k, n)`` product."""
    a, w = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ w
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ w
    return round(2 * m * k * n * reps / (time.perf_counter() - t0) / 1e9, 2)


def measure(rater: TransformersRater, queries: list[RatingQuery]) -> dict[str, float]:
    """Warm up on one query, then time rating all queries."""
    rater.rate(queries[:1])
    t0 = time.perf_counter()
    results = rater.rate(queries)
    elapsed = time.perf_counter() - t0
    return {"seconds": round(elapsed, 3), "ratings_per_s": round(len(queries) / elapsed, 4),
            "s_per_rating": round(elapsed / len(queries), 3),
            "abstentions": sum(r.abstained for r in results)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="float32", choices=("bfloat16", "float32"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--queries", type=int, default=4, help="queries per measurement")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    p.add_argument("--max-new-tokens", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--frame-size", type=int, default=224)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "rater_throughput.json"))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    gflops = {"float32": matmul_gflops(torch.float32), "bfloat16": matmul_gflops(torch.bfloat16)}
    print(f"matmul 256x768x3072: {gflops} GFLOP/s", flush=True)
    dtype = getattr(torch, args.dtype)
    t0 = time.perf_counter()
    model, proc = smolvlm_256m_like(dtype=dtype)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    queries = make_queries(args.queries, args.frame_size)
    print(f"SmolVLM-256M-like: {params / 1e6:.1f}M params, {args.dtype}, built in {build_s:.1f} s; "
          f"load avg {load_before:.2f}", flush=True)

    rows = []
    for batch in args.batch:
        cfg = TransformersRaterConfig(model="SmolVLM-256M-like", mode="choice", batch_size=batch,
                                      min_class_mass=0.0)
        rater = TransformersRater(cfg, model=model, processor=proc)
        rows.append({"mode": "choice", "batch": batch, **measure(rater, queries)})
        print(json.dumps(rows[-1]), flush=True)
        for m in args.max_new_tokens:
            cfg = TransformersRaterConfig(model="SmolVLM-256M-like", mode="generate", batch_size=batch,
                                          max_new_tokens=m)
            rater = TransformersRater(cfg, model=model, processor=proc)
            rows.append({"mode": "generate", "max_new_tokens": m, "batch": batch, **measure(rater, queries)})
            print(json.dumps(rows[-1]), flush=True)

    speedups = []
    for r in rows:
        if r["mode"] != "generate":
            continue
        choice = next(c for c in rows if c["mode"] == "choice" and c["batch"] == r["batch"])
        speedups.append({"batch": r["batch"], "max_new_tokens": r["max_new_tokens"],
                         "choice_over_generate": round(choice["ratings_per_s"] / r["ratings_per_s"], 3)})
    prompt = prompts.single_prompt(prompts.PromptTemplate(), "open the drawer", DEFAULT_CLASS_NAMES[3], 1)
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}],
                                    add_generation_prompt=True, tokenize=False)
    enc = proc(text=[text], images=[[np.zeros((args.frame_size, args.frame_size, 3), np.uint8)]])
    result = {
        "bench": "rater_throughput", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": "Idefics3 with SmolVLM-256M-Instruct dimensions, random weights",
        "params_millions": round(params / 1e6, 1), "dtype": args.dtype, "threads": args.threads,
        "frame_size": args.frame_size, "image_tile": proc.image_processor.max_image_size["longest_edge"],
        "image_tokens_per_frame": int(proc.image_seq_len), "input_tokens": len(enc["input_ids"][0]),
        "matmul_gflops_256x768x3072": gflops,
        "queries": args.queries, "build_s": round(build_s, 1), "load_avg_before": round(load_before, 2),
        "load_avg_after": round(os.getloadavg()[0], 2),
        "host": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                 "torch": torch.__version__},
        "results": rows, "speedup": speedups,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for s in speedups:
        print(f"batch {s['batch']}, generate {s['max_new_tokens']} tokens: choice is "
              f"{s['choice_over_generate']:.2f}x faster")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
