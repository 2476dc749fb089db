#!/usr/bin/env bash
# The main job on a fresh machine: set up, then run the quantization experiment on the embedded
# llama.cpp backend (SmolLM2-135M-Instruct at Q4_K_M, Q8_0 and F16), printing progress and the table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/runner run experiments/smollm_quant.yaml "$@"
