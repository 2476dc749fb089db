#!/usr/bin/env bash
# Chromium is the real browser the HTML report's tests load the page in (tests/test_html_report.py,
# runner/testing/browser.py); the runner itself never needs it. Installs Debian's `chromium` when it
# is missing and apt-get can (as root: CI); otherwise says that those tests will be skipped.
# Idempotent and quiet: prints nothing when chromium is already there.
set -euo pipefail
say() { printf '[setup] %s\n' "$*" >&2; }

for name in chromium chromium-browser google-chrome; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "chromium is not installed: the HTML report's browser tests will be skipped; apt-get install chromium"
  exit 0
fi
say "installing chromium, the headless browser of the HTML report's tests (about 20 s, 300 MB)"
install=(apt-get install -y -qq --no-install-recommends chromium)
export DEBIAN_FRONTEND=noninteractive
# A fresh image may have no package lists (or stale ones): update them only when the install fails.
if ! "${install[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  "${install[@]}" >/dev/null
fi
command -v chromium >/dev/null 2>&1 || { say "chromium was installed but is not on PATH"; exit 1; }
