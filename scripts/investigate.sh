#!/usr/bin/env bash
# The analysis's whole plan, in order, on the embedded default: one experiment per hypothesis,
# then the findings of each. Pass --limit N for a quick pass (the full run takes hours on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
runner=.venv/bin/runner
$runner run experiments/context_window.yaml
for exp in prompt_ab system_prompt temperature_sweep consistency smollm_quant model_compare; do
  echo "=== experiments/$exp.yaml" >&2
  $runner run "experiments/$exp.yaml" --no-report "$@"
  $runner report "experiments/$exp.yaml" "$@"
done
