#!/usr/bin/env bash
# evnas train vs the reference train.py step, on the same network and thread count: training
# images/s of EvNAS-A's NetworkCIFAR (C=36, 20 cells, auxiliary head, batch 96, 3x32x32, SGD with
# momentum 0.9, weight decay 3e-4, gradient clipping 5, auxiliary weight 0.4), drop path 0 on both
# sides by default.
#
# evnas: `evnas train` on synthetic CIFAR-10 binary files (random pixels and labels, 96*steps
# training images spread over data_batch_1..5.bin, 96 test images) for EPOCHS epochs (default 2) of
# `steps` batches each, its figures read from the run's epochs.jsonl. Each epoch's
# images_per_second is train images / train_seconds: it includes the data pipeline (augmentation,
# prefetch wait) and, in epoch 1, the cold first step (libtorch's one-off set-up, which on a CPU
# takes several steps' time). Epoch 2 is warm: it is the figure to compare with the reference's
# timed steps. evnas ramps drop path from 0 (epoch k, 0-based, runs at drop_path_prob * k/epochs,
# so epoch 1 always runs at 0): with DROP_PATH=p it is given drop_path_prob = p*EPOCHS/(EPOCHS-1),
# so that its last epoch runs at p, as the reference does.
# reference: scripts/bench/reference_train_step.py (the reference's model.NetworkCIFAR and
# genotypes.EvNASA imported from REFERENCE_DIR; one fixed in-memory batch; 1 untimed warm-up step,
# then `steps` timed steps; a CPU drop_path patched in, as the reference's is CUDA-only). It also
# reports the figure with its warm-up step counted (`steps` steps, the first cold), comparable with
# evnas's epoch 1.
# The two run alternately, evnas first, ROUNDS times (default 2). With PRECISIONS="fp32 bf16", evnas
# runs once per precision in each round (final_training.precision; the reference stays fp32, as
# train.py is).
#
# Usage: scripts/bench/train_vs_reference.sh REFERENCE_DIR [steps] [threads]
#   env: EVNAS_BIN (default target/release/evnas, copied to a temp file first), TORCH_PYTHONPATH
#        (default /root/.cache/evnas/torch-2.11.0:/root/.cache/evnas/bench-py: torch, torchvision,
#        numpy, pillow for the reference's imports), ROUNDS (2), EPOCHS (2, at least 1),
#        DROP_PATH (0), PRECISIONS (fp32).
# The machine's load is printed: on a shared machine, rerun and compare ratios, not absolutes.
set -euo pipefail

ref=${1:?usage: $0 REFERENCE_DIR [steps] [threads]}
steps=${2:-8}
threads=${3:-2}
rounds=${ROUNDS:-2}
epochs=${EPOCHS:-2}
drop_path=${DROP_PATH:-0}
precisions=${PRECISIONS:-fp32}
batch=96
torch_path=${TORCH_PYTHONPATH:-/root/.cache/evnas/torch-2.11.0:/root/.cache/evnas/bench-py}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A private copy: the shared target dir may be rebuilt meanwhile.
cp "${EVNAS_BIN:-$root/target/release/evnas}" "$work/evnas"

# Synthetic CIFAR-10 binary: per image 1 label byte + 3,072 pixel bytes (channel-major).
data=$work/data
mkdir -p "$data"
python3 - "$data" $((batch * steps)) "$batch" <<'EOF'
import os, random, sys
out, train, test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(0)
def write(name, n):
    with open(os.path.join(out, name), "wb") as f:
        for _ in range(n):
            f.write(bytes([rng.randrange(10)]) + rng.randbytes(3072))
for i in range(5):
    write(f"data_batch_{i + 1}.bin", train // 5 + (i < train % 5))
write("test_batch.bin", test)
EOF

# evnas's drop path in 0-based epoch k is p * k / epochs: give it p so that the last epoch runs at
# DROP_PATH.
evnas_drop_path=$(python3 -c "e = $epochs; print($drop_path * e / (e - 1) if e > 1 else 0.0)")

results=$work/results.jsonl
evnas_round() {
    local run=$work/run-$1-$2
    if ! "$work/evnas" train --genotype EvNAS-A --dataset cifar10 --data "$data" --epochs "$epochs" \
        --train-subset $((batch * steps)) --batch-size "$batch" --init-channels 36 --layers 20 \
        --device cpu --quiet --run-dir "$run" --set run.threads="$threads" \
        --set final_training.test_batch_size="$batch" \
        --set final_training.drop_path_prob="$evnas_drop_path" --set final_training.precision="$2" \
        >"$work/evnas-$1-$2.log" 2>&1; then
        cat "$work/evnas-$1-$2.log" >&2
        return 1
    fi
    python3 - "$run/epochs.jsonl" "$1" "$2" >>"$results" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        print(json.dumps({"impl": "evnas", "round": int(sys.argv[2]), "precision": sys.argv[3],
                          "epoch": r["epoch"],
                          "images_per_s": r["images_per_second"], "train_seconds": r["train_seconds"],
                          "train_images": r["train_images"], "drop_path": r["drop_path_prob"]}))
EOF
}
reference_round() {
    PYTHONPATH=$torch_path python3 "$here/reference_train_step.py" "$ref" --steps "$steps" \
        --threads "$threads" --batch "$batch" --init-channels 36 --layers 20 \
        --drop-path "$drop_path" 2>"$work/reference-$1.log" |
        sed "s/^{/{\"round\": $1, /" >>"$results" || { cat "$work/reference-$1.log" >&2; return 1; }
}

echo "$(lscpu | grep 'Model name' | sed 's/  */ /g'); $(nproc) CPUs; threads $threads; $steps steps of batch $batch; evnas $epochs epochs; drop path $drop_path" >&2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$rounds"); do
    for precision in $precisions; do
        evnas_round "$round" "$precision"
        echo "round $round: evnas $precision done (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    done
    reference_round "$round"
    echo "round $round: reference done (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$results" "$rounds" "$epochs" "$batch" "$precisions" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds, epochs, batch = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
precisions = sys.argv[5].split()
ev = {(r["precision"], r["round"], r["epoch"]): r for r in rows if r["impl"] == "evnas"}
rf = {r["round"]: r for r in rows if r["impl"] == "reference"}
cols = "".join(f"{'round ' + str(i):>10}" for i in range(1, rounds + 1))
print(f"{'training images/s':<44}{cols}")
def line(name, values, fmt="{:>10.2f}"):
    print(f"{name:<44}" + "".join(fmt.format(v) for v in values))
R = range(1, rounds + 1)
warm = epochs if epochs > 1 else None
line("reference timed steps (warm, fp32)", [rf[i]["images_per_s"] for i in R])
for p in precisions:
    if warm:
        line(f"evnas {p} epoch {warm} (warm)", [ev[(p, i, warm)]["images_per_s"] for i in R])
        line(f"ratio evnas {p} / reference (warm)",
             [ev[(p, i, warm)]["images_per_s"] / rf[i]["images_per_s"] for i in R], "{:>9.2f}x")
line("reference, warm-up step counted", [rf[i]["images_per_s_with_warmup"] for i in R])
for p in precisions:
    line(f"evnas {p} epoch 1 (first step cold)", [ev[(p, i, 1)]["images_per_s"] for i in R])
    line(f"ratio evnas {p} / reference (cold)",
         [ev[(p, i, 1)]["images_per_s"] / rf[i]["images_per_s_with_warmup"] for i in R], "{:>9.2f}x")
print("seconds per step:")
line("reference timed", [rf[i]["seconds_per_step"] for i in R])
for p in precisions:
    if warm:
        line(f"evnas {p} epoch {warm}",
             [ev[(p, i, warm)]["train_seconds"] * batch / ev[(p, i, warm)]["train_images"] for i in R])
    line(f"evnas {p} epoch 1 total", [ev[(p, i, 1)]["train_seconds"] for i in R], "{:>10.1f}")
line("reference warm-up step", [rf[i]["warmup_seconds"] for i in R], "{:>10.1f}")
p = precisions[0]
print("drop path: evnas " + ", ".join(f"epoch {e} {ev[(p, 1, e)]['drop_path']:g}" for e in range(1, epochs + 1))
      + f"; reference {rf[1]['drop_path']:g}")
EOF
