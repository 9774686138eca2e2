#!/usr/bin/env bash
# evnas vs the reference PyTorch supernet, in one go on the same configs and thread count:
# training and fitness images/s for the CPU default (C=8, 5 cells, 1x28x28, batch 64 / 512) and the
# paper-sized supernet (C=16, 8 cells, 3x32x32, batch 64 / 256), the reference in its default layout
# and channels-last; logits parity on the reference's weights; the bf16 fitness row with the Kendall
# tau of its ranking against fp32.
#
# Usage: scripts/bench/supernet_vs_reference.sh REFERENCE_DIR [iters] [threads]
#   env: TORCH_PYTHONPATH (default /root/.cache/evnas/torch-2.11.0), TAU_INDIVIDUALS (20),
#        TAU_TRAIN_BATCHES (10), TAU_IMAGES (256), BF16_BATCH (64), LIBTORCH, CARGO_TARGET_DIR.
# The machine's load is printed: on a shared machine, rerun and compare ratios, not absolutes.
set -euo pipefail

ref=${1:?usage: $0 REFERENCE_DIR [iters] [threads]}
iters=${2:-2}
threads=${3:-2}
torch_path=${TORCH_PYTHONPATH:-/root/.cache/evnas/torch-2.11.0}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Build, then run a private copy: a shared target dir may be rebuilt by another checkout meanwhile.
(cd "$root" && cargo bench --bench supernet_throughput --no-run --message-format=json 2>/dev/null) |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "supernet_throughput" and m.get("executable"):
        print(m["executable"])' | tail -1 > "$work/exe"
cp "$(cat "$work/exe")" "$work/evnas-bench"

reference() { PYTHONPATH=$torch_path python3 "$here/reference_supernet_throughput.py" "$ref" "$@" 2>/dev/null; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; threads $threads; $iters timed batches" >&2
results=$work/results.jsonl
for config in default paper; do
    "$work/evnas-bench" --config "$config" --iters "$iters" --threads "$threads" --tau 0 --json \
        --bf16-batch "${BF16_BATCH:-64}" >>"$results"
    for layout in nchw channels-last; do
        reference --config "$config" --layout "$layout" --iters "$iters" --threads "$threads" >>"$results"
    done
    reference --config "$config" --parity-out "$work/parity-$config.pt"
    "$work/evnas-bench" --parity "$work/parity-$config.pt" --layout both --json |
        sed "s/{\"kind\":\"parity\"/{\"kind\":\"parity\",\"config\":\"$config\"/" >>"$results"
done
"$work/evnas-bench" --config default --iters 1 --threads "$threads" --no-bf16 --json \
    --tau "${TAU_INDIVIDUALS:-20}" --tau-train-batches "${TAU_TRAIN_BATCHES:-10}" \
    --tau-images "${TAU_IMAGES:-256}" | grep '"tau"' >>"$results"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
tp = {(r["impl"], r["config"], r["layout"]): r for r in rows if r["kind"] == "throughput"}
print(f"{'config':<8} {'what':<28} {'train img/s':>11} {'fitness img/s':>13} {'train x':>8} {'fitness x':>9}")
for config in ("default", "paper"):
    ours = tp[("evnas", config, "channels-last")]
    refs = [tp[("reference", config, l)] for l in ("nchw", "channels-last")]
    for name, r in [("evnas fp32 channels-last", ours)] + [(f"reference {r['layout']}", r) for r in refs]:
        print(f"{config:<8} {name:<28} {r['train_ips']:>11.1f} {r['eval_ips']:>13.1f}")
    for r in refs:
        print(f"{config:<8} {'evnas / reference ' + r['layout']:<28} {'':>11} {'':>13} "
              f"{ours['train_ips'] / r['train_ips']:>7.2f}x {ours['eval_ips'] / r['eval_ips']:>8.2f}x")
    print(f"{config:<8} {'evnas bf16 fitness':<28} {'':>11} {ours['eval_bf16_ips']:>13.1f} {'':>8} "
          f"{ours['eval_bf16_ips'] / ours['eval_ips']:>8.2f}x (vs fp32)")
    print(f"{config:<8} batches: train {ours['train_batch']}, fitness {ours['eval_batch']}")
for r in rows:
    if r["kind"] == "parity":
        print(f"parity {r['config']:<8} {r['layout']:<14} max |logits evnas - reference| = {r['max_abs_diff']:.2e}, "
              f"max |grad evnas - reference| / max |reference grad| = {r['max_grad_rel_diff']:.2e}")
    if r["kind"] == "tau":
        print(f"bf16 vs fp32 fitness ranking: Kendall tau top-1 {r['tau_top1']}, loss {r['tau_loss']} "
              f"({r['individuals']} individuals, {r['images']} {r['data']} images, "
              f"supernet trained {r['train_batches']} batches)")
EOF
