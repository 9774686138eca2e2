#!/usr/bin/env bash
# EvNAS against the random-search baseline at equal budget: the same supernet training and the
# same number of fitness evaluations per generation (config/evnas.toml, Fashion-MNIST, CPU-sized),
# same seed. Prints best / mean validation top-1 per generation for both and writes a plot.
#   usage: scripts/bench/evnas_vs_random.sh [GENERATIONS] [extra --set overrides...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
generations=${1:-8}
shift || true
out=${EVNAS_BENCH_OUT:-runs/bench-evnas-vs-random-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$out"
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/evnas
common=(--config config/evnas.toml --set "search.generations=$generations" "$@")
for strategy in evolution random; do
  echo "== $strategy"
  "$bin" search --quiet "${common[@]}" --set "search.strategy=$strategy" --run-dir "$out/$strategy" | tail -n 3
done
"$bin" compare "$out/evolution" "$out/random" --out "$out/evnas-vs-random.svg"
