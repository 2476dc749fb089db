#!/usr/bin/env bash
# bubblewrap (bwrap) is the boundary the code_tests scorer runs answers in (runner/scoring/sandbox_boundary.py).
# Installs it when missing and apt-get can (as root: CI); otherwise says what code_tests will need.
# Idempotent and quiet: prints nothing when bwrap is already there.
set -euo pipefail
say() { printf '[setup] %s\n' "$*" >&2; }

command -v bwrap >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "bubblewrap is not installed: code_tests will need root (unshare) or RUNNER_SANDBOX=weak; apt-get install bubblewrap"
  exit 0
fi
say "installing bubblewrap, the code sandbox's boundary"
install=(apt-get install -y -qq --no-install-recommends bubblewrap)
export DEBIAN_FRONTEND=noninteractive
# A fresh image may have no package lists (or stale ones): update them only when the install fails.
if ! "${install[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  "${install[@]}" >/dev/null
fi
command -v bwrap >/dev/null 2>&1 || { say "bubblewrap was installed but bwrap is not on PATH"; exit 1; }
