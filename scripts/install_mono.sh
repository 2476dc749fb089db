#!/usr/bin/env bash
# Mono's C# compiler (mcs, Debian's mono-mcs) and runtime (mono, mono-runtime), for the code_tests
# scorer's `language: csharp` (runner/scoring/csharp.py; experiments/codegen_csharp.yaml). Without
# them only C# scoring stops (Python code generation does not need them).
set -euo pipefail
# shellcheck source=apt_install.sh
. "${BASH_SOURCE[0]%/*}/apt_install.sh"
apt_install all "mcs mono" "mono-mcs mono-runtime" \
  "installing mono-mcs and mono-runtime, for C# code generation (language: csharp)" \
  "mono is not installed: code_tests with language csharp will need it; apt-get install mono-mcs mono-runtime" \
  "installed mcs and mono"
