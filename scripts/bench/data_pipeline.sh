#!/usr/bin/env bash
# Runs the evnas data-pipeline benchmark (criterion, benches/data_pipeline.rs) and the reference PyTorch
# pipeline (scripts/bench/reference_pipeline.py) back to back on the same machine, and prints images/s of
# each and their ratio. Both use synthetic CIFAR-format data: 25,000 training images, batch 64.
#
# Needs LIBTORCH/CARGO_TARGET_DIR as for any cargo command, and a Python with torch, torchvision 0.26,
# pillow and numpy on PYTHONPATH (default: the evnas caches below).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
export PYTHONPATH="${PYTHONPATH:-/root/.cache/evnas/torch-2.11.0:/root/.cache/evnas/bench-py}"

cargo bench --bench data_pipeline -- --noplot >/tmp/evnas-data-bench.log 2>&1 || {
  cat /tmp/evnas-data-bench.log
  exit 1
}
grep -E "^(cifar_train_transform|prefetcher_epoch)|thrpt" /tmp/evnas-data-bench.log || true

ref_line=$(python3 scripts/bench/reference_pipeline.py --train-images 50000 --epochs 1 2>/dev/null | grep reference_images_per_s)
echo "$ref_line"

python3 - "$target" "$ref_line" <<'PY'
import json, sys, pathlib
target, ref_line = sys.argv[1], sys.argv[2]
ref = float(ref_line.split()[1])

def images_per_s(group, bench):
    d = pathlib.Path(target, "criterion", group, bench, "new")
    mean_ns = json.loads((d / "estimates.json").read_text())["mean"]["point_estimate"]
    elements = json.loads((d / "benchmark.json").read_text())["throughput"]["Elements"]
    return elements / (mean_ns * 1e-9)

transform = images_per_s("cifar_train_transform", "batch64")
prefetch = images_per_s("prefetcher_epoch", "cifar25k_batch64")
print(f"evnas transform (batch of 64):       {transform:12.0f} images/s  ({transform / ref:6.1f}x reference)")
print(f"evnas prefetcher end to end (epoch): {prefetch:12.0f} images/s  ({prefetch / ref:6.1f}x reference)")
print(f"reference DataLoader (2 workers):    {ref:12.0f} images/s")
PY
