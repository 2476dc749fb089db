#!/usr/bin/env bash
# bubblewrap (bwrap) is the boundary the code_tests scorer runs answers in (runner/scoring/sandbox_boundary.py).
set -euo pipefail
# shellcheck source=apt_install.sh
. "${BASH_SOURCE[0]%/*}/apt_install.sh"
apt_install all "bwrap" "bubblewrap" "installing bubblewrap, the code sandbox's boundary" \
  "bubblewrap is not installed: code_tests will need root (unshare) or RUNNER_SANDBOX=weak; apt-get install bubblewrap"
