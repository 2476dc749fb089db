#!/usr/bin/env bash
# Chromium is the real browser the HTML report's tests load the page in (tests/test_html_report.py,
# runner/testing/browser.py); the runner itself never needs it.
set -euo pipefail
# shellcheck source=apt_install.sh
. "${BASH_SOURCE[0]%/*}/apt_install.sh"
apt_install any "chromium chromium-browser google-chrome" "chromium" \
  "installing chromium, the headless browser of the HTML report's tests (about 20 s, 300 MB)" \
  "chromium is not installed: the HTML report's browser tests will be skipped; apt-get install chromium"
