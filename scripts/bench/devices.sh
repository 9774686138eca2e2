#!/usr/bin/env bash
# One device against several (data-parallel supernet training, run.devices), in one run on the
# same machine: per config, the same search on `run.device` alone and on `run.devices = DEVICES`,
# ROUNDS times, alternating which goes first. The table gives seconds per generation (wall,
# start-up included), its split into training (of it: the leader's all-reduce time, transfer and
# waiting for the slowest replica), fitness, GA and checkpoint, training and fitness images/s and
# peak RSS, each the median over the rounds, then the ratio several/one. With REFERENCE_DIR (a
# checkout of the authors' EvNAS code), the reference supernet's training and fitness images/s on
# the same supernet, batch sizes and thread count follow (scripts/bench/reference_supernet_throughput.py;
# the reference trains on one device only). With PROCESSES=N (N > 1), a third row: the same search
# as a job of N processes on loopback (RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT, as torchrun sets
# them), each on the one device with THREADS / N threads; its peak RSS is the processes' sum.
#
# Usage: scripts/bench/devices.sh [REFERENCE_DIR]
#   env: DEVICES (default "cpu cpu": two CPU replicas; on a GPU machine e.g. "cuda:0 cuda:1"),
#        CONFIGS (default "default paper-supernet"), ROUNDS (2), THREADS (default: the CPUs),
#        PROCESSES (default 0: no job row),
#        DATA (Fashion-MNIST dir), TORCH_PYTHONPATH (for the reference), EVNAS_BIN (default
#        target/release/evnas, built and copied to a temp file first).
# Measure on a quiet machine; compare the ratios within one run, not absolutes across runs.
set -euo pipefail

ref=${1:-}
read -r -a devices <<<"${DEVICES:-cpu cpu}"
configs=${CONFIGS:-default paper-supernet}
rounds=${ROUNDS:-2}
threads=${THREADS:-$(nproc)}
processes=${PROCESSES:-0}
data=${DATA:-/usr/share/datasets/fashion-mnist}
torch_path=${TORCH_PYTHONPATH:-$HOME/.cache/evnas/torch-2.11.0}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ -z ${EVNAS_BIN:-} ]]; then
    (cd "$root" && cargo build --release --quiet)
    EVNAS_BIN=$root/target/release/evnas
fi
cp "$EVNAS_BIN" "$work/evnas"

# The devices as a TOML list for --set: [cpu,cpu].
list=$(IFS=,; echo "[${devices[*]}]")
one=${devices[0]}

# Each config's supernet and input (C, cells, image channels, side), given to evnas and to the
# reference alike; an unknown config ends the script here, before anything runs.
supernet() {
    case $1 in
    default) echo "4 4 1 28" ;;
    paper-supernet) echo "16 8 1 28" ;;
    *) echo "unknown config $1" >&2; exit 2 ;;
    esac
}

for config in $configs; do supernet "$config" >/dev/null; done

settings() {
    local c layers
    read -r c layers _ <<<"$(supernet "$1")"
    echo "supernet.init_channels=$c supernet.layers=$layers search.population=4 search.tournament_size=2"
    echo "search.generations=2"
    case $1 in
    # The shipped CPU default (C=4, 4 cells, Fashion-MNIST 1x28x28, batch 64), cut to 2
    # generations of 4 individuals on 512 training images.
    default) echo "data.train_subset=512 fitness.subset=512" ;;
    # The paper's supernet (C=16, 8 cells), batch 64, fitness batch 256, on the same images.
    paper-supernet) echo "data.train_subset=256 fitness.subset=256 fitness.batch_size=256" ;;
    esac
}

echo "$(lscpu | grep 'Model name' | sed 's/ \+/ /g'); $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "threads $threads; one device: $one; several: $list; job of processes: $processes" >&2
results=$work/results.jsonl
for config in $configs; do
    for round in $(seq "$rounds"); do
        order=(one several)
        ((processes > 1)) && order+=(processes)
        ((round % 2 == 0)) && order=("${order[@]:1}" one)
        for kind in "${order[@]}"; do
            run=$work/runs/$config-$kind-$round
            run_threads=$threads
            [[ $kind == processes ]] && run_threads=$((threads / processes > 0 ? threads / processes : 1))
            args=(search --quiet --run-dir "$run" --set "data.path=$data" --set "run.threads=$run_threads"
                  --set "run.device=$one")
            [[ $kind == several ]] && args+=(--set "run.devices=$list")
            for s in $(settings "$config"); do args+=(--set "$s"); done
            log=$work/stderr-$config-$kind-$round
            if [[ $kind == processes ]]; then
                port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
                job=(env WORLD_SIZE="$processes" MASTER_ADDR=127.0.0.1 MASTER_PORT="$port")
                pids=()
                for rank in $(seq 1 $((processes - 1))); do
                    "${job[@]}" RANK="$rank" /usr/bin/time -f '%e %M' -o "$work/time-$rank" "$work/evnas" \
                        "${args[@]}" >/dev/null 2>"$log-$rank" &
                    pids+=($!)
                done
                "${job[@]}" RANK=0 /usr/bin/time -f '%e %M' -o "$work/time" "$work/evnas" "${args[@]}" \
                    >/dev/null 2>"$log" || { cat "$log" >&2; exit 1; }
                for pid in "${pids[@]}"; do wait "$pid" || { cat "$log"-* >&2; exit 1; }; done
                read -r wall rss_kb <"$work/time"
                for rank in $(seq 1 $((processes - 1))); do
                    read -r _ rank_kb <"$work/time-$rank"
                    rss_kb=$((rss_kb + rank_kb))
                done
            else
                /usr/bin/time -f '%e %M' -o "$work/time" "$work/evnas" "${args[@]}" >/dev/null 2>"$log" ||
                    { cat "$log" >&2; exit 1; }
                read -r wall rss_kb <"$work/time"
            fi
            python3 - "$config" "$kind" "$wall" "$rss_kb" "$run" >>"$results" <<'PY'
import json, os, sys
config, kind, wall, rss_kb, run = sys.argv[1:]
gens = [json.loads(l) for l in open(os.path.join(run, "generations.jsonl"))]
timings = [json.loads(l) for l in open(os.path.join(run, "timings.jsonl"))]
n = len(gens)
train = sum(g["train"]["seconds"] for g in gens)
fitness = sum(g["evaluation_seconds"] for g in gens)
print(json.dumps(dict(
    config=config, kind=kind,
    per_gen=float(wall) / n,
    train=train / n,
    communication=sum(g["train"].get("communication_seconds", 0.0) for g in gens) / n,
    fitness=fitness / n,
    ga=sum(t["ga_seconds"] for t in timings) / n,
    checkpoint=sum(t["checkpoint_capture_seconds"] + t["checkpoint_wait_seconds"] for t in timings) / n,
    train_ips=sum(g["train"]["images"] for g in gens) / train,
    fitness_ips=sum(g["evaluated_images"] for g in gens) / fitness,
    rss_gb=int(rss_kb) / 1024**2,
)))
PY
        done
    done
    if [[ -n $ref ]]; then
        # The supernet and images of evnas's rows (Fashion-MNIST's 1x28x28 for both configs).
        ref_supernet=$(supernet "$config" | tr ' ' ,)
        case $config in
        default) ref_args=(--config default --train-batch 64 --eval-batch 512) ;;
        paper-supernet) ref_args=(--config paper --train-batch 64 --eval-batch 256) ;;
        esac
        ref_args+=(--supernet "$ref_supernet")
        PYTHONPATH="$torch_path" python3 "$here/reference_supernet_throughput.py" "$ref" "${ref_args[@]}" \
            --iters 3 --threads "$threads" 2>/dev/null |
            python3 -c 'import json,sys
r = json.loads(sys.stdin.readline()); print(json.dumps(dict(config=sys.argv[1], kind="reference",
    train_ips=r["train_ips"], fitness_ips=r["eval_ips"])))' "$config" >>"$results"
    fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$results" "${#devices[@]}" "$processes" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
replicas, processes = sys.argv[2], sys.argv[3]
fields = ["per_gen", "train", "communication", "fitness", "ga", "checkpoint", "train_ips", "fitness_ips", "rss_gb"]
print(f"{'config':<15} {'devices':<12} {'s/gen':>7} {'train':>7} {'comm':>6} {'fitness':>8} {'GA':>6} {'ckpt':>6} "
      f"{'train img/s':>11} {'fit img/s':>10} {'peak RSS':>9}")
for config in dict.fromkeys(r["config"] for r in rows):
    med = {}
    labels = {"one": "1", "several": replicas, "processes": f"{processes} processes"}
    for kind in labels:
        runs = [r for r in rows if r["config"] == config and r["kind"] == kind]
        if not runs:
            continue
        med[kind] = {f: statistics.median(r[f] for r in runs) for f in fields}
        m = med[kind]
        label = labels[kind]
        print(f"{config:<15} {label:<12} {m['per_gen']:>7.1f} {m['train']:>7.1f} {m['communication']:>6.2f} "
              f"{m['fitness']:>8.1f} {m['ga']:>6.3f} {m['checkpoint']:>6.3f} {m['train_ips']:>11.1f} "
              f"{m['fitness_ips']:>10.1f} {m['rss_gb']:>7.2f}GB")
    a = med["one"]
    for kind in ("several", "processes"):
        if kind not in med:
            continue
        b = med[kind]
        print(f"{config:<15} {labels[kind] + ' / 1':<12} generation time {b['per_gen'] / a['per_gen']:.3f}x, training "
              f"images/s {b['train_ips'] / a['train_ips']:.3f}x, fitness images/s {b['fitness_ips'] / a['fitness_ips']:.3f}x, "
              f"peak RSS {b['rss_gb'] / a['rss_gb']:.3f}x")
    for r in rows:
        if r["config"] == config and r["kind"] == "reference":
            print(f"{config:<15} {'reference':<12} {'':>7} {'':>7} {'':>6} {'':>8} {'':>6} {'':>6} "
                  f"{r['train_ips']:>11.1f} {r['fitness_ips']:>10.1f}   (one device; evnas one device: "
                  f"training {a['train_ips'] / r['train_ips']:.2f}x, fitness {a['fitness_ips'] / r['fitness_ips']:.2f}x)")
print("medians over the rounds; s/gen: wall time / generations, start-up included; comm: the leader's")
print("all-reduce time within training (transfer and waiting for the slowest replica).")
PY
