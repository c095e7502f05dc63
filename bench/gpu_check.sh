#!/usr/bin/env bash
# The prepared GPU check (issue #13): SAC updates/s on the CPU and the GPU, relabelling 1M state
# transitions, the image reward CNN on 224 px frames and a real-size random-weight VLM's rating
# latency in bf16; asserts every component's tensors are on the GPU, reports peak memory and the
# versions it ran with. One results file: bench/results/gpu/gpu_check.json. At most 5 minutes.
#
#   bash bench/gpu_check.sh               # on a GPU machine (exits 2, saying why, without a GPU)
#   bash bench/gpu_check.sh --cpu-only    # anywhere: every component on the CPU, a few seconds each
#                                         # (bench/results/tmp/gpu_check_cpu_only.json)
#
# Needs only Python 3.10+, torch, numpy, PyYAML and transformers (+ tokenizers, Pillow): no
# MuJoCo, MetaWorld or ROS. Uses .venv/bin/python when there is one, else $PYTHON or python3;
# nothing is installed or downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
# The check keeps itself well inside 5 minutes; this is the hard stop (results so far are kept:
# the file is rewritten after every component).
exec timeout --signal=TERM --kill-after=10 300 "$PYTHON" bench/gpu_check.py "$@"
