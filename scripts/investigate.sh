#!/usr/bin/env bash
# The analysis's whole plan on the embedded default: investigations/smollm2.yaml runs one experiment
# per hypothesis in order, each later step on the prompt and settings the earlier ones picked.
# Pass --limit N for a quick pass (the full run takes hours on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/runner run investigations/smollm2.yaml "$@"
