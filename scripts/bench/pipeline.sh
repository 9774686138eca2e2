#!/usr/bin/env bash
# The actor pipeline against the sequential engine it replaced, in one run on the same machine:
# per config, both binaries run the same search; the table gives seconds per generation (wall,
# start-up included), its split into training, fitness, GA, checkpoint and the rest, the data
# wait of trainer and evaluators, and peak RSS. With a reference checkout, the reference
# supernet's peak RSS on the memory config (C=8, 5 cells, fitness batch 1024) is measured too.
#
# Usage: scripts/bench/pipeline.sh [REFERENCE_DIR]
#   env: BASELINE (commit of the sequential engine, default 0d3d1ce), BASELINE_TARGET (its cargo
#        target dir, default ~/.cache/evnas/bench-baseline-target), DATA (Fashion-MNIST dir),
#        TORCH_PYTHONPATH (for the reference), CONFIGS (default "default memory paper-supernet").
# Measure on a quiet machine; compare the ratios within one run.
set -euo pipefail

ref=${1:-}
baseline=${BASELINE:-0d3d1ce}
baseline_target=${BASELINE_TARGET:-$HOME/.cache/evnas/bench-baseline-target}
data=${DATA:-/usr/share/datasets/fashion-mnist}
torch_path=${TORCH_PYTHONPATH:-$HOME/.cache/evnas/torch-2.11.0}
configs=${CONFIGS:-default memory paper-supernet}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
cleanup() {
    git -C "$root" worktree remove --force "$work/baseline-src" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && cargo build --release --quiet)
cp "$root/target/release/evnas" "$work/evnas-pipeline"
git -C "$root" worktree add --detach --quiet "$work/baseline-src" "$baseline"
ln -s "$(readlink -f "$root/.libtorch")" "$work/baseline-src/.libtorch"
echo "building the sequential engine ($baseline) in $baseline_target ..." >&2
(cd "$work/baseline-src" && CARGO_TARGET_DIR=$baseline_target cargo build --release --quiet)
cp "$baseline_target/release/evnas" "$work/evnas-sequential"
# Its rpath points into the worktree, which goes at exit; the pipeline's libtorch is the same.
export LD_LIBRARY_PATH="$(readlink -f "$root/.libtorch")/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

settings() {
    case $1 in
    default) ;;
    # Peak RSS is set by the fitness forward of batch 1024 (one per evaluator), not by P or the
    # number of generations: kept small so that the script runs in minutes.
    memory) echo "supernet.init_channels=8 supernet.layers=5 search.population=4 search.tournament_size=2 \
        data.train_subset=256 fitness.subset=2048 fitness.batch_size=1024 search.generations=1" ;;
    paper-supernet) echo "supernet.init_channels=16 supernet.layers=8 search.population=4 \
        search.tournament_size=2 data.train_subset=256 fitness.subset=256 fitness.batch_size=256 \
        search.generations=2" ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
    esac
}

echo "$(lscpu | grep 'Model name' | sed 's/ \+/ /g'); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
results=$work/results.jsonl
# The sequential engine predates search.id, search.state, run.devices, run.log_level and [metrics] (and
# refuses unknown keys); the pipeline's defaults for them are these values (no metrics served).
sed -e '/^\[metrics\]/,$d' -e '/^id = /d' -e '/^devices = /d' -e '/^state = /d' -e '/^log_level = /d' \
    "$root/config/evnas.toml" >"$work/evnas.toml"
for config in $configs; do
    for impl in sequential pipeline; do
        run=$work/runs/$config-$impl
        args=(search --quiet --config "$work/evnas.toml" --run-dir "$run" --set "data.path=$data"
              --set run.device=cpu)
        for s in $(settings "$config"); do args+=(--set "$s"); done
        log=$work/stderr-$config-$impl
        /usr/bin/time -f '%e %M' -o "$work/time" "$work/evnas-$impl" "${args[@]}" >/dev/null 2>"$log" ||
            { cat "$log" >&2; exit 1; }
        read -r wall rss_kb <"$work/time"
        python3 - "$config" "$impl" "$wall" "$rss_kb" "$run" >>"$results" <<'PY'
import json, os, sys
config, impl, wall, rss_kb, run = sys.argv[1:]
gens = [json.loads(l) for l in open(os.path.join(run, "generations.jsonl"))]
path = os.path.join(run, "timings.jsonl")
timings = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
print(json.dumps(dict(config=config, impl=impl, wall=float(wall), rss_gb=int(rss_kb) / 1024**2,
                      generations=gens, timings=timings)))
PY
    done
done
if [[ -n $ref ]]; then
    /usr/bin/time -f '%M' -o "$work/time" env PYTHONPATH="$torch_path" python3 \
        "$here/reference_supernet_throughput.py" "$ref" --config default --eval-batch 1024 --iters 1 \
        >/dev/null 2>&1
    echo "{\"config\": \"memory\", \"impl\": \"reference\", \"rss_gb\": $(($(cat "$work/time") ))}" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); r["rss_gb"]/=1024**2; print(json.dumps(r))' >>"$results"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'config':<15} {'engine':<11} {'s/gen':>7} {'train':>7} {'fitness':>8} {'GA':>6} {'ckpt':>6} "
      f"{'rest':>6} {'train wait':>10} {'fit wait':>9} {'ckpt write':>10} {'peak RSS':>9}")
base = {}
for r in rows:
    if r["impl"] == "reference":
        print(f"{r['config']:<15} {'reference':<11} {'':>7} {'':>7} {'':>8} {'':>6} {'':>6} {'':>6} {'':>10} "
              f"{'':>9} {'':>10} {r['rss_gb']:>7.2f}GB  (supernet train step + fitness batch 1024)")
        continue
    gens = r["generations"]
    n = len(gens)
    per_gen = r["wall"] / n
    train = sum(g["train"]["seconds"] for g in gens) / n
    fitness = sum(g["evaluation_seconds"] for g in gens) / n
    t = r["timings"]
    if t:
        ga = sum(x["ga_seconds"] for x in t) / n
        ckpt = sum(x["checkpoint_capture_seconds"] + x["checkpoint_wait_seconds"] for x in t) / n
        write = f"{sum(x['checkpoint_write_seconds'] for x in t) / n:.2f}s off"
        busy = sum(x["fitness_busy_seconds"] for x in t)
        fit_wait = f"{100 * sum(x['fitness_data_wait_seconds'] for x in t) / max(busy, 1e-9):.2f}%"
    else:
        ga = ckpt = float("nan")
        write = fit_wait = "n/a"
    rest = per_gen - train - fitness - (0 if ga != ga else ga) - (0 if ckpt != ckpt else ckpt)
    train_wait = 100 * sum(g["train"]["data_wait_seconds"] for g in gens) / max(sum(g["train"]["seconds"] for g in gens), 1e-9)
    print(f"{r['config']:<15} {r['impl']:<11} {per_gen:>7.1f} {train:>7.1f} {fitness:>8.1f} {ga:>6.3f} {ckpt:>6.3f} "
          f"{rest:>6.1f} {train_wait:>9.2f}% {fit_wait:>9} {write:>10} {r['rss_gb']:>7.2f}GB")
    if r["impl"] == "sequential":
        base[r["config"]] = (per_gen, r["rss_gb"])
    else:
        b = base.get(r["config"])
        if b:
            print(f"{r['config']:<15} {'pipeline / sequential':<22} generation time {per_gen / b[0]:.3f}x, peak RSS {r['rss_gb'] / b[1]:.3f}x")
print("s/gen: wall time / generations, start-up included; rest: start-up, recording, waiting.")
PY
for config in $configs; do
    echo "--- $config, pipeline: what evnas search printed"
    grep '^gen' "$work/stderr-$config-pipeline" || true
done
