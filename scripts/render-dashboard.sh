#!/usr/bin/env bash
# Render the Grafana dashboard (config/grafana/evnas.json) to a PNG from a Prometheus, without
# Grafana: runs scripts/render-dashboard.py (all arguments passed on) with matplotlib from a venv
# kept in ${EVNAS_CACHE:-$HOME/.cache/evnas}/render-venv (created on first use with
# `python3 -m venv`; python3-venv installed with apt-get when missing and we are root or have
# sudo; matplotlib installed from PyPI).
#
#   scripts/render-dashboard.sh --prometheus http://127.0.0.1:9090 --out /tmp/evnas.png \
#       [--start UNIX_S --end UNIX_S] [--instance REGEX]
#
# EVNAS_RENDER_PYTHON: the python3 to build the venv with (default: python3 on PATH).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${EVNAS_CACHE:-$HOME/.cache/evnas}
venv="$cache/render-venv"
python=${EVNAS_RENDER_PYTHON:-python3}

log() { printf 'render-dashboard: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

install_venv_package() {
  if ! as_root true 2>/dev/null; then
    log "python3 -m venv does not work here (Debian: the python3-venv package is missing);"
    log "ask an administrator to run: apt-get install -y python3-venv"
    return 1
  fi
  log "installing python3-venv (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
}

if ! command -v "$python" >/dev/null; then
  log "$python not found; install python3 (apt-get install -y python3 python3-venv)"
  exit 1
fi

if [ ! -f "$venv/.complete" ] || [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  # Debian's python3 has venv but no ensurepip without python3-venv: venv creation fails then.
  if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    install_venv_package
  fi
  log "creating $venv"
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    install_venv_package
    "$python" -m venv "$venv"
  fi
  log "installing matplotlib into $venv (PyPI)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check matplotlib
  "$venv/bin/python" -c 'import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot'
  touch "$venv/.complete"
fi

exec "$venv/bin/python" "$here/render-dashboard.py" "$@"
