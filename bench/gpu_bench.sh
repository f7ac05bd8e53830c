#!/usr/bin/env bash
# The prepared GPU benchmark: full SD 1.4 architecture, random weights, fp16, 512x512.
# Run on a machine with an NVIDIA GPU and a CUDA build of torch (one short script, ~5 min).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-python}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" bench/engine_cost.py --model sd14-random --device cuda --dtype fp16 --faces 1 --warmup
"$PY" bench/engine_cost.py --model sd14-random --device cuda --dtype fp16 --faces 4 --skip-baseline
