#!/usr/bin/env bash
# Mono's C# compiler (mcs, Debian's mono-mcs) and runtime (mono, mono-runtime), for the code_tests
# scorer's `language: csharp` (runner/scoring/csharp.py; experiments/codegen_csharp.yaml).
# Installs them when missing and apt-get can (as root: CI); otherwise says what C# scoring needs and
# goes on (Python code generation does not need them). Idempotent: prints nothing when both are there.
set -euo pipefail
say() { printf '[setup] %s\n' "$*" >&2; }

command -v mcs >/dev/null 2>&1 && command -v mono >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "mono is not installed: code_tests with language csharp will need it; apt-get install mono-mcs mono-runtime"
  exit 0
fi
say "installing mono-mcs and mono-runtime, for C# code generation (language: csharp)"
install=(apt-get install -y -qq --no-install-recommends mono-mcs mono-runtime)
export DEBIAN_FRONTEND=noninteractive
# A fresh image may have no package lists (or stale ones): update them only when the install fails.
if ! "${install[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  "${install[@]}" >/dev/null
fi
command -v mcs >/dev/null 2>&1 && command -v mono >/dev/null 2>&1 || {
  say "mono-mcs and mono-runtime were installed but mcs or mono is not on PATH"; exit 1; }
say "installed mcs and mono"
