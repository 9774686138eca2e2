#!/usr/bin/env python3
"""Images/s of the reference train.py step on the reference NetworkCIFAR (model.py, imported from
the directory given on the command line), for comparison with `evnas train`
(scripts/bench/train_vs_reference.sh runs both).

The network is the reference's `model.NetworkCIFAR(C, 10, layers, auxiliary=True, EvNASA)` with
EvNAS-A from the reference's genotypes module; the optimiser is SGD(lr 0.025, momentum 0.9,
weight decay 3e-4). One step is exactly train.py's `train` body on one fixed random batch
(3x32x32 standard normal images, random labels):

  optimizer.zero_grad(); model.train(); logits, logits_aux = model(x)
  loss = CE(logits, y) + 0.4 * CE(logits_aux, y); loss.backward()
  clip_grad_norm_(model.parameters(), 5); optimizer.step()

with `model.drop_path_prob` set to --drop-path. One untimed warm-up step, then --steps timed
steps. No data loading or augmentation is timed (the batch is already in memory).
images_per_s counts the timed steps only; images_per_s_with_warmup counts `steps` steps of which
the first is the warm-up one (comparable with a first training epoch of `steps` batches).

Drop path: the reference's utils.drop_path builds its mask with `torch.cuda.FloatTensor`, so it
only runs on CUDA. This script therefore replaces the name `drop_path` inside the reference `model`
module (which did `from utils import drop_path`) with a CPU function of the same semantics:
mask = bernoulli(1 - p) of shape (N, 1, 1, 1); x.div(1 - p).mul(mask) (out of place; the reference
does it in place). With --drop-path 0 the function is never called (Cell.forward only calls it when
drop_prob > 0).

Usage: PYTHONPATH=/root/.cache/evnas/torch-2.11.0:/root/.cache/evnas/bench-py \
           python3 reference_train_step.py REF_DIR [--steps N] [--threads T] [--batch 96]
           [--init-channels 36] [--layers 20] [--drop-path 0.2] [--seed 0]
Prints one JSON line on stdout (the reference's own prints go to stderr).
"""
import argparse
import contextlib
import json
import sys
import time

import torch
import torch.nn as nn


def cpu_drop_path(x, drop_prob):
    """utils.drop_path without its CUDA-only mask."""
    if drop_prob > 0.0:
        keep_prob = 1.0 - drop_prob
        mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep_prob)
        x = x.div(keep_prob).mul(mask)
    return x


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=96)
    p.add_argument("--init-channels", type=int, default=36)
    p.add_argument("--layers", type=int, default=20)
    p.add_argument("--drop-path", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    sys.path.insert(0, args.ref)
    import genotypes
    import model as ref_model

    ref_model.drop_path = cpu_drop_path

    torch.manual_seed(args.seed)
    with contextlib.redirect_stdout(sys.stderr):  # the reference's Cell prints its channel counts
        net = ref_model.NetworkCIFAR(args.init_channels, 10, args.layers, True, genotypes.EvNASA)
    net.drop_path_prob = args.drop_path
    optimizer = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    criterion = nn.CrossEntropyLoss()
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(10, (args.batch,))

    def step():
        optimizer.zero_grad()
        net.train()
        logits, logits_aux = net(x)
        loss = criterion(logits, y)
        loss = loss + 0.4 * criterion(logits_aux, y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5)
        optimizer.step()
        return loss.item()

    t0 = time.perf_counter()
    step()
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    total = sum(times)
    print(json.dumps({
        "impl": "reference",
        "images_per_s": args.batch * args.steps / total,
        "seconds_per_step": total / args.steps,
        "steps": args.steps,
        "threads": args.threads,
        "batch": args.batch,
        "init_channels": args.init_channels,
        "layers": args.layers,
        "drop_path": args.drop_path,
        # `steps` steps of which the first is the cold one, as evnas's first epoch.
        "images_per_s_with_warmup": args.batch * args.steps / (warmup + sum(times[:-1])),
        "warmup_seconds": warmup,
        "min_step_seconds": min(times),
        "max_step_seconds": max(times),
        "last_loss": loss,
        "parameters": sum(p.numel() for p in net.parameters()),
        "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
