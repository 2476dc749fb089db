#!/usr/bin/env bash
# The tests on a fresh machine: set up, then lint, type-check and run the whole suite (real
# llama.cpp servers and the fault-injection server on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
# The test extras: Ray too, so the --ray test runs (it starts a local Ray cluster).
RUNNER_EXTRAS=dev,tokenizer,ray scripts/setup.sh
.venv/bin/ruff check runner tests bench
.venv/bin/mypy runner
exec .venv/bin/python -m pytest -q "$@"
