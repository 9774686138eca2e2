#!/usr/bin/env bash
# GPU check, for a machine with NVIDIA GPUs and PyTorch 2.11 (CUDA 13) but no registry: runs a
# release binary built elsewhere against that PyTorch's libtorch, in a few minutes.
#  1. evnas sees CUDA and runs a tensor op on every GPU (evnas doctor).
#  2. On every GPU, one generation of a small search of the paper config (C=16, 8 cells, 4
#     individuals, 256 training and 256 validation images): a training pass and a fitness pass.
#  3. The benchmark rows on the first GPU: one generation of the paper config (P=50, batch 64,
#     fitness batch 1024) on 1/FRACTION of CIFAR-10's 25k training and 25k validation images,
#     its time split and extrapolated to a whole generation (the goal: <= 6 minutes): as shipped
#     (channels-last, fp32 fitness), with bf16 fitness (and the Kendall tau of its ranking
#     against fp32: same seed, so the same population and trained weights), with bf16 training
#     too (its time and training loss against fp32's), and in NCHW layout
#     (channels-last is a CPU choice; its time ratio says whether it pays on the GPU too).
#  4. A small search data-parallel as a job of 2 processes started by torchrun: the replicas' GPU
#     path (shards from pinned memory, grouped loss checks, counts kept on the device until the
#     pass ends). Each rank on a GPU of its own with NCCL where there are two; else both on the
#     one GPU (or the CPU) with Gloo (NCCL refuses two ranks on one GPU).
#  5. With two GPUs or more: NCCL's all-reduce across all of them (step 1, evnas doctor, which runs
#     it on one GPU too), and the paper config's generation data-parallel on the first two, with
#     NCCL and with Gloo, against one GPU (the goal: >= 1.8x).
# The images are random bytes in CIFAR-10's binary format (no dataset can be downloaded there):
# timings do not depend on pixel values.
#
#   usage: scripts/gpu-check.sh [path/to/evnas]   (default target/release/evnas; to carry it to
#          another machine, strip a copy first: `mkdir -p target/gpu && strip -o target/gpu/evnas
#          target/release/evnas` is about 11 MB, the release binary with line tables over 120 MB)
#   env:   FRACTION (default 20), DEVICES (default: every CUDA device; "cpu" tries the script's
#          steps on the CPU, without the CUDA checks), PYTHON (default python3), ROW_TIMEOUT
#          (seconds a search may take before it counts as hung, default 240), BUDGET (seconds
#          for the whole script, default 540: rows that would pass it are cut short or skipped),
#          OUT (a folder that gets OUT/gpu-check.tar.gz, every log and generation record so
#          far, rewritten as each row ends: the device runner's $OUT gives back 8 files at most)
set -euo pipefail
bin=$(readlink -f "${1:-target/release/evnas}")
py=${PYTHON:-python3}
fraction=${FRACTION:-20}
row_timeout=${ROW_TIMEOUT:-240}
budget=${BUDGET:-540}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
kept=${OUT:+$(realpath -m "$OUT")/gpu-check.tar.gz}
# The device machine gives back only what is under $OUT (8 files at most), and nothing of a
# command it kills: the logs and records (not the generated images) are packed there, in one
# file, as each row ends.
keep_results() {
    [[ -n $kept ]] || return 0
    mkdir -p "$(dirname "$kept")" || return 0
    # tar's exit 1 is "a file changed as it was read" (a log still written by a killed row's
    # processes): the archive is still good.
    local code=0
    (cd "$work" && find . -path ./cifar -prune -o -type f \( -name '*.log' -o -name '*.time' -o -name '*.txt' \
        -o -name generations.jsonl -o -name timings.jsonl \) -print0 |
        tar --null -czf "$kept.partial" -T -) || code=$?
    if ((code <= 1)); then mv "$kept.partial" "$kept"; else rm -f "$kept.partial"; fi
}
trap 'keep_results; rm -rf "$work"' EXIT
# Seconds left of BUDGET for a row that may take up to $1 (0: none left).
time_for() {
    local left=$((budget - SECONDS))
    ((left >= 30)) || { echo 0; return; }
    echo $((left < $1 ? left : $1))
}
fail() { echo "gpu-check: FAIL: $*"; exit 1; }
nccl_failed=0
failed_rows=()

# libtorch's own C++ warnings, which evnas leaves out by default, are what the end of this
# script counts.
export TORCH_CPP_LOG_LEVEL=${TORCH_CPP_LOG_LEVEL:-WARNING}
torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "gpu-check: libtorch from $torch_lib"
# A binary that cannot load here (an older glibc, a library missing) says so before anything runs.
missing=$(ldd "$bin" 2>&1 | grep 'not found' || true)
[[ -z $missing ]] || fail "the binary's libraries are not all here:"$'\n'"$missing"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
echo "gpu-check: $(lscpu | grep 'Model name' | sed 's/ \+/ /g'); $(nproc) CPUs"

"$bin" --version | tee "$work/version.txt"
grep -q '^libtorch 2\.11\.0' "$work/version.txt" || fail "libtorch is not 2.11.0"
if [[ -n ${DEVICES:-} ]]; then
    read -r -a devices <<<"$DEVICES"
else
    grep -q '^CUDA available' "$work/version.txt" || fail "evnas does not see CUDA"
    "$bin" doctor --data "$work" | tee "$work/doctor.txt" || true
    mapfile -t devices < <(sed -n 's/^ok: tensor op on \(cuda:[0-9]*\)$/\1/p' "$work/doctor.txt")
    ((${#devices[@]} > 0)) || fail "no tensor op ran on a GPU"
    # Checked at the end, so that the benchmark rows still run when NCCL does not.
    grep -q '^ok: NCCL .* all-reduce across' "$work/doctor.txt" || nccl_failed=1
fi
echo "gpu-check: devices ${devices[*]}"

# CIFAR-10's binary format: per image a label byte and 3x32x32 pixel bytes; 5 training files
# and a test file of 10,000 images each.
"$py" - "$work/cifar" <<'PY'
import os, sys
out = sys.argv[1]
os.makedirs(out)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    record = bytearray(os.urandom(10000 * 3073))
    for i in range(10000):
        record[i * 3073] %= 10
    open(os.path.join(out, name), "wb").write(record)
PY
# A binary that refuses the config the rows run (built before a key of it existed, say) says so
# at once, not after the device's start-up. On the images above: validate also checks that
# data.path holds the dataset.
EVNAS__DATA__PATH="$work/cifar" EVNAS__RUN__DIR="$work/runs" \
    "$bin" validate --config "$here/../config/evnas-cifar10-paper.toml" >"$work/validate.txt" 2>&1 ||
    { cat "$work/validate.txt"; fail "the binary refuses config/evnas-cifar10-paper.toml (built from an older checkout?)"; }

search() { # run-dir, then --set values
    local run=$1
    shift
    local limit
    limit=$(time_for "$row_timeout")
    ((limit > 0)) || { echo "gpu-check: no time left (BUDGET=$budget s) for $(basename "$run")"; return 1; }
    local args=(search --quiet --config "$here/../config/evnas-cifar10-paper.toml" --run-dir "$run"
                --set "data.path=$work/cifar" --set search.generations=1)
    for s in "$@"; do args+=(--set "$s"); done
    # Wall seconds and peak RSS (KiB) into $run.time, by Python: a bare machine may lack
    # /usr/bin/time. A search past ROW_TIMEOUT is killed (exit 124): a hang must not take the
    # device's whole time.
    "$py" -c 'import resource, subprocess, sys, time
start = time.monotonic()
with open(sys.argv[3], "w") as log:
    try:
        code = subprocess.call(sys.argv[4:], stdout=log, stderr=subprocess.STDOUT, timeout=float(sys.argv[1]))
    except subprocess.TimeoutExpired:
        print(f"gpu-check: killed after {sys.argv[1]} s", file=log)
        code = 124
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[2], "w").write(f"{time.monotonic() - start:.2f} {peak}\n")
sys.exit(code)' "$limit" "$run.time" "$run.log" "$bin" "${args[@]}" || { tail -n 60 "$run.log"; keep_results; return 1; }
    keep_results
}

for device in "${devices[@]}"; do
    search "$work/small-${device/:/-}" "run.device=$device" search.population=4 search.tournament_size=2 \
        data.train_subset=256 fitness.subset=256 fitness.batch_size=256 ||
        fail "a small search on $device"
    echo "gpu-check: ok: a training pass and a fitness pass on $device"
done

# (On the CPU too, so that DEVICES=cpu tries torchrun's launch before a GPU machine does.)
if ((${#devices[@]} >= 2)) && [[ ${devices[0]} == cuda* ]]; then
    job_gpus="${devices[0]} ${devices[1]}" job_backend=nccl
else
    job_gpus=${devices[0]} job_backend=gloo
fi
# Every rank gets the same command line, as torchrun gives it; each picks its GPU here.
cat >"$work/rank.sh" <<EOF
#!/usr/bin/env bash
gpus=($job_gpus)
exec "$bin" search --quiet --config "$here/../config/evnas-cifar10-paper.toml" --run-dir "$work/job" \\
    --set "data.path=$work/cifar" --set search.generations=1 --set search.population=4 \\
    --set search.tournament_size=2 --set data.train_subset=256 --set fitness.subset=256 \\
    --set fitness.batch_size=256 --set "run.device=\${gpus[LOCAL_RANK % \${#gpus[@]}]}" \\
    --set run.collectives=$job_backend
EOF
chmod +x "$work/rank.sh"
# A failure is reported at the end; the benchmark rows still run.
# Bounded: a job that hangs must not take the machine's whole time.
job_limit=$(time_for 180)
if ((job_limit > 0)) && timeout "$job_limit" "$py" -m torch.distributed.run --standalone --nproc-per-node 2 --no-python \
    "$work/rank.sh" >"$work/job.log" 2>&1; then
    "$py" - "$work/job" "$job_backend" <<'PY' || failed_rows+=("a job of 2 ranks with $job_backend")
import json, sys
g = json.loads(open(sys.argv[1] + "/generations.jsonl").readline())["train"]
assert g["images"] == 256, f"trained {g['images']} images, not 256"
print(f"gpu-check: ok: a job of 2 ranks trained data-parallel with {sys.argv[2]}: {g['images']} images, "
      f"all-reduce {g.get('communication_seconds', 0):.2f} s of {g['seconds']:.2f} s")
PY
else
    cat "$work/job.log" 2>/dev/null || echo "gpu-check: no time left (BUDGET=$budget s) for the job"
    failed_rows+=("a job of 2 ranks with $job_backend")
fi
keep_results

images=$((25000 / fraction))
# The paper config as shipped (channels-last, fp32), with bf16 fitness, with bf16 training too,
# and with NCHW layout.
for variant in fp32 bf16 bf16-train nchw; do
    case $variant in
    fp32) extra=() ;;
    bf16) extra=(fitness.precision=bf16) ;;
    bf16-train) extra=(fitness.precision=bf16 train.precision=bf16) ;;
    nchw) extra=(supernet.channels_last=false) ;;
    esac
    # A failed row is reported at the end; the others still run.
    search "$work/paper-$variant" "run.device=${devices[0]}" "data.train_subset=$images" \
        "fitness.subset=$images" "${extra[@]}" ||
        { failed_rows+=("the paper config ($variant) on ${devices[0]}"); rm -rf "$work/paper-$variant"; }
done
# Two GPUs data-parallel, NCCL (what "auto" picks) and Gloo through the host.
if ((${#devices[@]} >= 2)) && [[ ${devices[0]} == cuda* ]]; then
    for backend in nccl gloo; do
        # A backend that fails is reported at the end; the other rows still run.
        search "$work/paper-2gpu-$backend" "run.devices=[${devices[0]}, ${devices[1]}]" \
            "run.collectives=$backend" "data.train_subset=$images" "fitness.subset=$images" ||
            { failed_rows+=("the paper config on two GPUs with $backend"); rm -rf "$work/paper-2gpu-$backend"; }
    done
fi
"$py" - "$work" "$fraction" "${devices[0]}" <<'PY'
import json, os, sys
work, fraction, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def tau_b(a, b):
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    n = concordant + discordant
    return (concordant - discordant) / (((n + ties_a) * (n + ties_b)) ** 0.5 or 1.0)

fitness, seconds, generation, losses = {}, {}, {}, {}
variants = {"fp32": "channels-last, fp32 fitness", "bf16": "channels-last, bf16 fitness",
            "bf16-train": "channels-last, bf16 training and fitness", "nchw": "NCHW, fp32 fitness", "2gpu-nccl": "2 GPUs with NCCL",
            "2gpu-gloo": "2 GPUs with Gloo"}
for variant, label in variants.items():
    run = os.path.join(work, f"paper-{variant}")
    if not os.path.isdir(run):
        continue
    g = json.loads(open(os.path.join(run, "generations.jsonl")).readline())
    t = json.loads(open(os.path.join(run, "timings.jsonl")).readline())
    wall, rss_kb = open(run + ".time").read().split()
    train, fit = g["train"]["seconds"], g["evaluation_seconds"]
    ga, ckpt = t["ga_seconds"], t["checkpoint_capture_seconds"] + t["checkpoint_wait_seconds"]
    whole = fraction * (train + fit) + ga + ckpt
    print(f"gpu-check: paper config on {device}, {label}, 1/{fraction} of a generation: "
          f"training {train:.1f} s ({g['train']['images'] / train:.0f} img/s), fitness {fit:.1f} s "
          f"({g['evaluated_images'] / fit:.0f} img/s), GA {ga:.3f} s, checkpoint {ckpt:.3f} s; wall "
          f"{float(wall):.1f} s (start-up included), peak RSS {int(rss_kb) / 1024**2:.2f} GB")
    print(f"gpu-check: a whole generation extrapolated: {whole / 60:.2f} min (goal: <= 6 min)")
    if "communication_seconds" in g["train"]:
        print(f"gpu-check: of the training, all-reduce {g['train']['communication_seconds']:.1f} s")
    fitness[variant] = {i["id"]: i["fitness"]["top1"] for i in g["individuals"]}
    seconds[variant] = (train, fit)
    losses[variant] = g["train"]["loss"]
    generation[variant] = whole
# Each comparison needs both of its rows (a failed row is named at the end).
if {"fp32", "bf16"} <= fitness.keys():
    ids = sorted(fitness["fp32"])
    print(f"gpu-check: bf16 against fp32 fitness over {len(ids)} individuals: Kendall tau "
          f"{tau_b([fitness['fp32'][i] for i in ids], [fitness['bf16'][i] for i in ids]):.3f}")
if {"fp32", "bf16-train"} <= seconds.keys():
    print(f"gpu-check: bf16 training against fp32: training {seconds['bf16-train'][0] / seconds['fp32'][0]:.2f}x "
          f"the time, training loss {losses['bf16-train']:.4f} against {losses['fp32']:.4f}")
if {"fp32", "nchw"} <= seconds.keys():
    (cl_train, cl_fit), (nchw_train, nchw_fit) = seconds["fp32"], seconds["nchw"]
    print(f"gpu-check: channels-last against NCHW (time ratio): training {cl_train / nchw_train:.2f}x, "
          f"fitness {cl_fit / nchw_fit:.2f}x")
for variant in ("2gpu-nccl", "2gpu-gloo"):
    if variant in generation and "fp32" in generation:
        print(f"gpu-check: {variants[variant]}: a generation {generation['fp32'] / generation[variant]:.2f}x "
              f"as fast as on one GPU (goal: >= 1.8x)")
PY
# libtorch's warnings in the searches' logs (e.g. a deprecated argument warned every batch).
warnings=$(cat "$work"/*.log 2>/dev/null | grep -E '^\[W[0-9]+ |Warning: ' | sed 's/^\[W[^]]*\] //' | sort | uniq -c | sort -rn | head -n 5 || true)
[[ -z $warnings ]] || echo "gpu-check: libtorch warned in the logs (count, warning):"$'\n'"$warnings"
((${#failed_rows[@]} == 0)) || fail "${failed_rows[*]} (the logs are above)"
((nccl_failed == 0)) || fail "evnas doctor did not run NCCL's all-reduce (see its lines above)"
echo "gpu-check: OK"
