#!/usr/bin/env bash
# Checks systemd/evnas.service with systemd's own tools, for scripts/test.sh and CI:
#   1. `systemd-analyze verify` (syntax, unknown keys, executables that exist) on a copy whose
#      /usr/local/bin/evnas is the binary given as $1 (default: target/release/evnas), since
#      verify checks that every Exec*= binary exists;
#   2. `systemd-analyze security --offline=true`: fails above an exposure of 2.5 ("OK").
# Usage: scripts/check-service.sh [PATH/TO/evnas]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unit="$root/systemd/evnas.service"
binary=${1:-$root/target/release/evnas}
max_exposure=2.5

log() { printf 'check-service: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Same policy as scripts/setup.sh: install Debian packages as root, else say what is missing.
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    die "$1 is missing and installing it needs root: ask an administrator to run: apt-get install -y $2"
  fi
  log "$1 is missing; installing the Debian package $2"
  if [ ! -f /tmp/.evnas-apt-updated ]; then
    apt-get update -qq && touch /tmp/.evnas-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

command -v systemd-analyze >/dev/null || apt_install systemd-analyze systemd
# The unit's ExecReload= uses /bin/kill, which Debian ships in procps (not in minimal images).
[ -x /bin/kill ] || apt_install /bin/kill procps

[ -f "$unit" ] || die "no unit file at $unit"
[ -x "$binary" ] || die "no executable evnas at $binary (build it: cargo build --release, or pass its path)"
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
case $binary in *[[:space:]]*) die "the binary's path must not contain spaces: $binary" ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Keep the file name: systemd names the unit after it. ExecStart= and ExecReload= point at
# the binary under test; /bin/kill stays.
escaped=$(printf '%s' "$binary" | sed 's/[#&\\]/\\&/g') # for sed's replacement
sed "s#/usr/local/bin/evnas#$escaped#g" "$unit" >"$tmp/evnas.service"

# --- 1. verify ---------------------------------------------------------------------------
# In a container without a running systemd, verify may also complain about the host (other
# units, /proc, the manager): only lines that name evnas.service are about our unit.
status=0
output=$(systemd-analyze verify "$tmp/evnas.service" 2>&1) || status=$?
problems=$(grep -F 'evnas.service' <<<"$output" || true)
if [ -n "$problems" ]; then
  log "systemd-analyze verify found problems in systemd/evnas.service:"
  printf '%s\n' "$problems" | sed "s#$tmp/#systemd/#g" >&2
  exit 1
fi
if [ "$status" != 0 ]; then
  log "note: systemd-analyze verify exited $status without naming evnas.service (host noise):"
  printf '%s\n' "$output" | sed 's/^/  /' >&2
fi
log "systemd-analyze verify: no problems in systemd/evnas.service"

# --- 2. security exposure ------------------------------------------------------------------
report=$(systemd-analyze security --offline=true --no-pager "$tmp/evnas.service" 2>&1) || {
  printf '%s\n' "$report" >&2
  die "systemd-analyze security failed"
}
# Last line: "→ Overall exposure level for evnas.service: 1.4 OK 🙂"
exposure=$(sed -n 's/.*Overall exposure level for evnas\.service: \([0-9][0-9.]*\).*/\1/p' <<<"$report")
[ -n "$exposure" ] || {
  printf '%s\n' "$report" >&2
  die "could not read the exposure level from systemd-analyze security"
}
if awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
  # Show what costs exposure: the failed checks (✗) with their weight.
  grep -F '✗' <<<"$report" >&2 || true
  die "exposure $exposure is above $max_exposure: tighten systemd/evnas.service"
fi
printf 'systemd/evnas.service: exposure %s (limit %s)\n' "$exposure" "$max_exposure"
