# Sourced by the install_*.sh scripts setup.sh runs: one Debian package set the machine may lack,
# installed when missing and apt-get can (as root: CI), else a line saying what goes without it.
# Idempotent and quiet: prints nothing when the commands are already there.
#
#   apt_install MODE "COMMANDS" "PACKAGES" "what installing says" "what a machine without it loses" ["done"]
#
# MODE all: every one of COMMANDS must be on PATH; any: one of them is enough (a browser's names).
# After the install the first command must be on PATH (all of them in mode all), else exit 1.

say() { printf '[setup] %s\n' "$*" >&2; }

_apt_present() {  # MODE COMMANDS...
  local mode=$1 name
  shift
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then
      [ "$mode" = any ] && return 0
    else
      [ "$mode" = all ] && return 1
    fi
  done
  [ "$mode" = all ]
}

apt_install() {
  local mode=$1 commands=$2 packages=$3 installing=$4 missing=$5 done=${6:-}
  # shellcheck disable=SC2086  # word lists on purpose
  _apt_present "$mode" $commands && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "$missing"
    return 0
  fi
  say "$installing"
  # shellcheck disable=SC2206
  local install=(apt-get install -y -qq --no-install-recommends $packages)
  export DEBIAN_FRONTEND=noninteractive
  # A fresh image may have no package lists (or stale ones): update them only when the install fails.
  if ! "${install[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    "${install[@]}" >/dev/null
  fi
  local check=${commands%% *}
  [ "$mode" = all ] && check=$commands
  # shellcheck disable=SC2086
  _apt_present all $check || { say "$packages installed, but ${check// / or } is not on PATH"; exit 1; }
  [ -z "$done" ] || say "$done"
}
