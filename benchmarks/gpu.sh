#!/usr/bin/env bash
# The GPU figures of the one-engine issue, for a task that is lent a device machine (one
# NVIDIA H200 here): distthrml and thrml 0.1.4 on pegasus(14) with 256 to 65,536 chains and a
# 4096x4096 torus, and the sharded engine at 1 part against the unsharded kernel on the same GPU.
# About 8 minutes. The image has JAX, Equinox, Orbax, SciPy and NetworkX; carry the rest as
# wheels. Once, on this (CPU) machine, in the repository's root:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl pymetis==2025.2.2 thrml==0.1.4 dwave-networkx==0.8.19 dimod==0.12.23
#
# then run it there with the device tool: command `bash benchmarks/gpu.sh`, carry [".whl"],
# timeout 600 s. JSON lines and the GPU's description come back in $OUT; copy them to
# benchmarks/results/ and the figures to RESULTS.md ("GPU").
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT="${OUT:-out/gpu}"
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import jax; print(jax.__version__, jax.devices())"; } | tee "$OUT/gpu.txt"

# single device, both libraries, THRML's API (jit(vmap(sample_states)))
timeout 330 python3 benchmarks/single_device.py --budget 1.5 --repeats 2 --sweeps 20 \
  --case pegasus:14:256 --case pegasus:14:4096 --case pegasus:14:65536 --case torus:4096:8 --case torus:4096:64 \
  --jsonl "$OUT/gpu_single_device.jsonl" 2>&1 | tail -n 20

# the sharded engine on the GPU (1 part: the same engine on re-indexed tables) against unsharded
timeout 200 python3 benchmarks/sharded.py --case torus:4096:8 --case torus:4096:64 --case torus:1024:1024 \
  --parts 1 --repeats 3 --flips 2e9 --jsonl "$OUT/gpu_sharded.jsonl" 2>&1 | tail -n 10
