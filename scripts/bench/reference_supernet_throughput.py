#!/usr/bin/env python3
"""Images/s of the reference DARTS supernet (model_search.Network) on the CPU, for comparison with
`cargo run --release --example supernet_throughput`.

Usage: PYTHONPATH=/root/.cache/evnas/torch-2.11.0 python3 scripts/bench/reference_supernet_throughput.py \
           REFERENCE_REPO_DIR [batch] [iters] [threads]
"""
import sys
import time

import torch


def main():
    ref, *rest = sys.argv[1:]
    batch, iters, threads = (int(v) for v in (rest + ["32", "3", "2"][len(rest):]))
    torch.set_num_threads(threads)
    sys.path.insert(0, ref)
    from model_search import Network

    alpha = torch.zeros(14, 8)
    start = 0
    for node in range(4):
        alpha[start, 4] = alpha[start + 1, 4] = 1.0
        start += 2 + node
    for channels_last in (False, True):
        torch.manual_seed(0)
        net = Network(16, 10, 8, torch.nn.CrossEntropyLoss(), "cpu")
        net.alphas_normal.copy_(alpha)
        net.alphas_reduce.copy_(alpha)
        x = torch.randn(batch, 3, 32, 32)
        y = torch.randint(10, (batch,))
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)

        def train_step():
            net.train()
            net._loss(x, y).backward()

        train_step()
        t = time.perf_counter()
        for _ in range(iters):
            train_step()
        train_ips = batch * iters / (time.perf_counter() - t)
        net.eval()
        with torch.no_grad():
            net(x)
            t = time.perf_counter()
            for _ in range(iters):
                net(x)
            eval_ips = batch * iters / (time.perf_counter() - t)
        print(f"reference supernet C=16 L=8 batch {batch} threads {threads} channels_last={channels_last}: "
              f"train {train_ips:.1f} img/s, eval {eval_ips:.1f} img/s")


if __name__ == "__main__":
    main()
