#!/usr/bin/env bash
# GPU smoke check, for a machine with an NVIDIA GPU and PyTorch 2.11 (CUDA 13) but no registry:
# runs a release binary built elsewhere against that PyTorch's libtorch and checks that evnas sees
# the GPU and runs a tensor op on it.
#   usage: scripts/gpu-check.sh [path/to/evnas]   (default target/release/evnas)
set -euo pipefail
bin=${1:-target/release/evnas}
py=${PYTHON:-python3}

torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "gpu-check: libtorch from $torch_lib"

"$bin" --version | tee /tmp/evnas-version.txt
grep -q '^libtorch 2\.11\.0' /tmp/evnas-version.txt || { echo "gpu-check: FAIL: libtorch is not 2.11.0"; exit 1; }
grep -q '^CUDA available' /tmp/evnas-version.txt || { echo "gpu-check: FAIL: evnas does not see CUDA"; exit 1; }
"$bin" doctor --data "${EVNAS_GPU_CHECK_DATA:-/tmp}" | tee /tmp/evnas-doctor.txt
grep -q '^ok: tensor op on cuda:0' /tmp/evnas-doctor.txt || { echo "gpu-check: FAIL: no tensor op ran on cuda:0"; exit 1; }
echo "gpu-check: OK"
