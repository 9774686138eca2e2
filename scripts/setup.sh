#!/usr/bin/env bash
# One-time (idempotent) set-up of everything evnas needs to build and run:
#   1. libtorch 2.11.0, from PyPI's torch==2.11.0 wheel, installed once into a shared cache
#      (EVNAS_CACHE, default ~/.cache/evnas) and linked into the checkout as .libtorch;
#   2. the default dataset, Fashion-MNIST, from Debian's dataset-fashion-mnist package.
# Skip step 1 by exporting LIBTORCH (a libtorch 2.11 dir) or LIBTORCH_USE_PYTORCH=1 (a python
# whose torch is 2.11); see README.md.
set -euo pipefail

TORCH_VERSION=2.11.0
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EVNAS_CACHE:-$HOME/.cache/evnas}
target="$cache/torch-$TORCH_VERSION"
fmnist=/usr/share/datasets/fashion-mnist

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {
  if ! as_root true 2>/dev/null; then
    log "need root (or sudo) to install Debian packages: $*"
    log "ask an administrator to run: apt-get install -y $*"
    return 1
  fi
  if [ ! -f /tmp/.evnas-apt-updated ]; then
    as_root apt-get update -qq && touch /tmp/.evnas-apt-updated
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- 1. libtorch -------------------------------------------------------------------------------
if [ -n "${LIBTORCH:-}" ] || [ -n "${LIBTORCH_USE_PYTORCH:-}" ]; then
  # Linked as the downloaded one would be, for what reads it there (install-service.sh, benches):
  # the one torch-sys builds with, which takes LIBTORCH_USE_PYTORCH over LIBTORCH.
  if [ -n "${LIBTORCH_USE_PYTORCH:-}" ]; then
    chosen=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null) ||
      { log "LIBTORCH_USE_PYTORCH is set, but python3 cannot import torch"; exit 1; }
  else
    chosen=$(readlink -f "$LIBTORCH") || { log "LIBTORCH=$LIBTORCH: no such directory"; exit 1; }
  fi
  [ -d "$chosen/lib" ] || { log "no lib/ in $chosen: not a libtorch 2.11 directory"; exit 1; }
  if [ -e "$root/.libtorch" ] && [ ! -L "$root/.libtorch" ]; then
    log "$root/.libtorch is not a link: move it away to let setup link $chosen there"
    exit 1
  fi
  ln -sfn "$chosen" "$root/.libtorch"
  log "using libtorch from the environment: $root/.libtorch -> $chosen (NCCL only where its CUDA headers are complete)"
else
  if [ ! -f "$target/.complete" ]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
      log "python3 pip is missing; installing python3-pip"
      apt_install python3-pip python3-venv
    fi
    log "installing PyPI torch==$TORCH_VERSION into $target (about 4.6 GB, once per machine)"
    rm -rf "$target.partial"
    python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir \
      --target "$target.partial" "torch==$TORCH_VERSION"
    rm -rf "$target"
    mv "$target.partial" "$target"
    touch "$target/.complete"
  fi
  # The safetensors package lets the tests check that PyTorch loads the weights evnas writes.
  if [ ! -d "$target/safetensors" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
      --target "$target" "safetensors==0.7.0"
  fi
  # NCCL through c10d (src/distributed/nccl_shim.cpp) compiles against ProcessGroupNCCL's
  # headers, which include CUDA's runtime headers; the wheel's nvidia packages lack two parts of
  # them: crt/ (nvidia-cuda-crt) and nv/ (from nvidia-cuda-cccl), both headers only, of the CUDA
  # release the wheel was built for. Without them evnas builds without NCCL (Gloo only).
  cuda_include="$target/nvidia/cu13/include"
  if [ -d "$cuda_include" ] && { [ ! -f "$cuda_include/crt/host_config.h" ] || [ ! -f "$cuda_include/nv/target" ]; }; then
    log "adding CUDA 13.0's crt/ and nv/ headers to $cuda_include (for NCCL through c10d)"
    headers=$(mktemp -d)
    python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
      --target "$headers" "nvidia-cuda-crt==13.0.88" "nvidia-cuda-cccl==13.0.85"
    cp -r "$headers/nvidia/cu13/include/crt" "$headers/nvidia/cu13/include/nv" "$cuda_include/"
    rm -rf "$headers"
  fi
  ln -sfn "$target/torch" "$root/.libtorch"
  log "libtorch $TORCH_VERSION: $root/.libtorch -> $target/torch"
fi

# --- 1b. Build tools of libjpeg-turbo ---------------------------------------------------------
# The turbojpeg crate builds the libjpeg-turbo that decodes ImageNet JPEGs as Pillow does (the
# one Pillow's wheels bundle) from source, statically: it needs CMake and, for its SIMD, NASM.
if command -v cmake >/dev/null && command -v nasm >/dev/null; then
  log "cmake and nasm present"
elif apt_install cmake nasm; then
  log "installed cmake and nasm (to build libjpeg-turbo)"
else
  log "cmake and nasm are missing: install the Debian packages cmake and nasm as root"
  exit 1
fi

# --- 1c. Gloo's headers ---------------------------------------------------------------------
# evnas reaches PyTorch's c10d (several replicas, several machines) through a small C++ shim
# (src/distributed/c10d_shim.cpp); c10d's Gloo header includes gloo's, which the torch wheel
# does not ship (the library itself is inside libtorch_cpu). Debian's libgloo-dev has them.
if [ -f /usr/include/gloo/algorithm.h ]; then
  log "gloo headers present"
elif apt_install libgloo-dev; then
  log "installed libgloo-dev (gloo's headers, for the c10d shim)"
else
  log "gloo's headers are missing: install the Debian package libgloo-dev as root"
  exit 1
fi

# --- 2. Fashion-MNIST ------------------------------------------------------------------------
if [ -f "$fmnist/train-images-idx3-ubyte.gz" ]; then
  log "Fashion-MNIST present in $fmnist"
elif apt_install dataset-fashion-mnist; then
  log "installed Fashion-MNIST into $fmnist"
else
  log "Fashion-MNIST is missing: install the Debian package dataset-fashion-mnist as root,"
  log "or point [data] path in your config at a directory holding its IDX files"
  exit 1
fi

# --- 3. Prometheus ----------------------------------------------------------------------------
# The daemon's tests scrape `evnas serve` with a real Prometheus server and check its /metrics
# with promtool (Debian package prometheus; the tests start their own server on loopback).
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  log "Prometheus present: $(prometheus --version 2>&1 | head -1)"
elif apt_install prometheus; then
  log "installed Prometheus (the tests start their own server; the packaged service is not needed)"
else
  log "Prometheus is missing: install the Debian package prometheus as root"
  exit 1
fi
