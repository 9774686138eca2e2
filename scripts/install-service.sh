#!/usr/bin/env bash
# Installs (or upgrades) the evnas service on a Debian GPU server from a built checkout:
#   /usr/local/bin/evnas                     target/release/evnas
#   /usr/local/lib/evnas/libtorch/lib        the libtorch libraries of .libtorch/lib (scripts/setup.sh)
#   /usr/local/lib/evnas/nvidia/*/lib        the CUDA libraries of PyPI's torch wheel, where
#                                            libtorch_cuda.so's rpath ($ORIGIN/../../nvidia/...) finds them
#   /etc/systemd/system/evnas.service        systemd/evnas.service
#   /etc/evnas/evnas.toml                    config/evnas.toml, only when there is none yet
# and the system user and group evnas. It never starts or restarts the service (--no-start,
# the default): it prints the commands to do so. Re-running it upgrades binary and libraries.
# Usage: sudo scripts/install-service.sh [--dry-run] [--no-start]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_src="$root/target/release/evnas"
unit_src="$root/systemd/evnas.service"
config_src="$root/config/evnas.toml"

bin_dst=/usr/local/bin/evnas
lib_dst=/usr/local/lib/evnas
unit_dst=/etc/systemd/system/evnas.service
config_dir=/etc/evnas
config_dst=$config_dir/evnas.toml
state_dir=/var/lib/evnas
# The unit's User= and Group=.
user=evnas
group=evnas
# The same environment as the unit's Environment= lines, for the checks run here.
service_env=("EVNAS__RUN__DIR=$state_dir/runs" "LD_LIBRARY_PATH=$lib_dst/libtorch/lib")

dry_run=0
usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=1 ;;
    --no-start) ;; # the default; accepted so that scripts can say so
    -h | --help) usage; exit 0 ;;
    *) printf 'install-service: unknown option %s\n' "$arg" >&2; usage >&2; exit 2 ;;
  esac
done

log() { printf 'install-service: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# Runs a command, or only prints it with --dry-run.
run() {
  if [ "$dry_run" = 1 ]; then
    printf 'would run:'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}
# Runs a command as the service does: user evnas, its working directory and environment.
as_service_user() { run runuser -u "$user" -- env -C "$state_dir" "${service_env[@]}" "$@"; }

if [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then
  die "run as root (sudo $0), or with --dry-run to see what it would do"
fi

# --- What to install -----------------------------------------------------------------------
[ -x "$bin_src" ] || die "no $bin_src: build it first (./scripts/setup.sh && cargo build --release)"
[ -f "$unit_src" ] || die "no $unit_src"
[ -f "$config_src" ] || die "no $config_src"
[ -e "$root/.libtorch/lib" ] || die "no $root/.libtorch/lib: run ./scripts/setup.sh first (it links libtorch there)"
torch_dir=$(readlink -f "$root/.libtorch")
# PyPI's torch wheel keeps the CUDA libraries beside the torch package, in nvidia/<pkg>/lib;
# a standalone libtorch has them in its own lib/ and no such directory.
nvidia_src=$(dirname "$torch_dir")/nvidia
[ -d "$nvidia_src" ] || nvidia_src=
command -v systemctl >/dev/null || die "systemctl is missing: this script installs a systemd service"

# --- User and group --------------------------------------------------------------------------
# A static system user, so that everything under /var/lib/evnas keeps its owner across upgrades.
if ! getent group "$group" >/dev/null; then
  log "creating the system group $group"
  run groupadd --system "$group"
fi
if ! getent passwd "$user" >/dev/null; then
  log "creating the system user $user (no login shell, home $state_dir)"
  run useradd --system --gid "$group" --home-dir "$state_dir" --no-create-home \
    --shell /usr/sbin/nologin --comment "evnas neural architecture search" "$user"
fi
# systemd creates it too (StateDirectory=); created here so that the check below can run.
run install -d -o "$user" -g "$group" -m 0750 "$state_dir"

# --- Binary and libraries ------------------------------------------------------------------
# Never overwrite a file in place: a running evnas has it mapped. Each file is written beside
# its destination and renamed over it; a running service keeps the old files until restarted.
log "installing $bin_dst"
run install -m 0755 "$bin_src" "$bin_dst.new"
run mv -f "$bin_dst.new" "$bin_dst"

stage="$lib_dst/.new"
run rm -rf "$stage"
run install -d -m 0755 "$stage/libtorch/lib"
log "copying libtorch's libraries from $torch_dir/lib"
run find "$torch_dir/lib/" -maxdepth 1 -name '*.so*' \( -type f -o -type l \) \
  -exec cp -P --preserve=timestamps -t "$stage/libtorch/lib/" {} +
if [ -n "$nvidia_src" ]; then
  log "copying the CUDA libraries from $nvidia_src"
  for dir in "$nvidia_src"/*/lib; do
    pkg=$(basename "$(dirname "$dir")")
    run install -d -m 0755 "$stage/nvidia/$pkg/lib"
    run find "$dir/" -maxdepth 1 -name '*.so*' \( -type f -o -type l \) \
      -exec cp -P --preserve=timestamps -t "$stage/nvidia/$pkg/lib/" {} +
  done
fi
run chown -R root:root "$stage"
run chmod -R u=rwX,go=rX "$stage"
# Swap a directory in with two renames. (A running evnas keeps the files it has open; it should
# be restarted soon all the same, so that it loads nothing lazily from the new set.)
swap_in() {
  if [ -e "$lib_dst/$1" ]; then run mv "$lib_dst/$1" "$lib_dst/.old-$1"; fi
  run mv "$stage/$1" "$lib_dst/$1"
  run rm -rf "$lib_dst/.old-$1"
}
swap_in libtorch
if [ -n "$nvidia_src" ]; then
  swap_in nvidia
elif [ -e "$lib_dst/nvidia" ]; then
  # Now a standalone libtorch, which carries its own CUDA libraries: the wheel's are stale.
  run rm -rf "$lib_dst/nvidia"
fi
run rm -rf "$stage"

if [ "$dry_run" = 0 ]; then
  libs=$(env "${service_env[@]}" ldd "$bin_dst")
  missing=$(grep 'not found' <<<"$libs" | grep -v 'libcuda\.so' || true)
  [ -z "$missing" ] || die "$bin_dst cannot find its libraries: $missing"
  # The CUDA runtime loads the driver's libcuda.so.1 at run time, so ldd does not list it.
  if ! grep -q 'libcuda\.so\.1 ' <<<"$(ldconfig -p)"; then
    log "note: libcuda.so.1 (the NVIDIA driver's library) is not installed: evnas will run on the CPU"
  fi
fi

# --- Unit and configuration ----------------------------------------------------------------
log "installing $unit_dst"
run install -m 0644 "$unit_src" "$unit_dst.new"
run mv -f "$unit_dst.new" "$unit_dst"

# The service reads its config as user evnas; only root writes it.
run install -d -o root -g "$group" -m 0750 "$config_dir"
if [ -e "$config_dst" ]; then
  # Never overwrite an operator's config: it may hold a search that is under way.
  log "keeping the existing $config_dst (the shipped default is $config_src)"
else
  log "installing the default config (CPU, Fashion-MNIST) as $config_dst: edit it for your search"
  run install -o root -g "$group" -m 0640 "$config_src" "$config_dst"
fi

# --- GPU device nodes ----------------------------------------------------------------------
# The service cannot create device nodes or load modules (see the unit), so check them here.
if [ -e /dev/nvidiactl ]; then
  if [ ! -e /dev/nvidia-uvm ]; then
    log "warning: /dev/nvidia-uvm is missing and CUDA needs it; create it with"
    log "  nvidia-modprobe -u -c=0   (and load nvidia-uvm at boot, e.g. via nvidia-persistenced)"
  fi
  mode=$(stat -c %a /dev/nvidiactl)
  dev_group=$(stat -c %G /dev/nvidiactl)
  case ${mode: -1} in
    6 | 7) ;; # world read-write, the driver's default
    *)
      if [ "$dev_group" != root ] && ! id -nG "$user" 2>/dev/null | grep -qw "$dev_group"; then
        log "adding $user to the group $dev_group, which owns the NVIDIA devices (mode $mode)"
        run usermod -a -G "$dev_group" "$user"
      fi
      ;;
  esac
fi

# --- Check and load ------------------------------------------------------------------------
valid=1
log "validating $config_dst as the service will (user $user, the unit's environment)"
as_service_user "$bin_dst" validate --config "$config_dst" || valid=0
active=0
if [ -d /run/systemd/system ]; then
  run systemctl daemon-reload
  if systemctl is-active --quiet evnas; then active=1; fi
else
  log "warning: systemd is not running here: skipped systemctl daemon-reload"
fi
if [ "$valid" = 0 ]; then
  die "$config_dst is not valid (problems above): fix it, then check with: $bin_dst validate --config $config_dst"
fi

if [ "$dry_run" = 1 ]; then
  printf '\n(dry run: nothing was changed)\n'
  exit 0
fi
cat <<EOF

evnas is installed. Next:
EOF
if [ "$active" = 1 ]; then
  cat <<EOF
  systemctl restart evnas         # the running service still has the old binary; a restart
                                  # checkpoints the search and resumes it with the new one
EOF
else
  cat <<EOF
  systemctl enable --now evnas    # start it now and at every boot
EOF
fi
cat <<EOF
  systemctl status evnas          # state and the search's STATUS= line
  journalctl -u evnas -f          # one line per generation
  curl -s 127.0.0.1:9464/metrics  # Prometheus metrics
EOF
