#!/usr/bin/env python3
"""Images/s of the reference DARTS supernet (model_search.Network, imported from the directory given
on the command line) doing what the EvNAS search does per batch, for comparison with
`cargo bench --bench supernet_throughput`:

  train:   zero_grad, forward (train mode), cross-entropy, backward, clip_grad_norm_(5),
           SGD(momentum 0.9, weight decay 3e-4) step  (reference train_search.py `train`)
  fitness: no_grad forward with BatchNorm in train mode (the reference never calls model.eval()
           during the search), cross-entropy, top-1/top-5  (train_search.py `validation`)

Configs: default = C=8, 5 cells, 1x28x28 (the reference's stem is built for 3 channels; its first
conv is replaced by a 1-channel one), paper = C=16, 8 cells, 3x32x32.

With --parity-out FILE it instead writes the supernet's weights ("w.<key>"), an input batch "x"
with labels "y", decoded alphas, the train-mode logits and the gradients of the cross-entropy
loss ("g.<key>") to FILE (torch.save of a dict), for the evnas bench's
--parity check.

Usage: PYTHONPATH=/root/.cache/evnas/torch-2.11.0 python3 reference_supernet_throughput.py REF_DIR \
           [--config default|paper] [--layout nchw|channels-last] [--iters N] [--threads T]
           [--train-batch B] [--eval-batch B] [--supernet C,LAYERS,IN_CHANNELS,SIZE] [--parity-out FILE]
Prints one JSON line per measurement.
"""
import argparse
import json
import sys
import time

import torch

CONFIGS = {
    "default": dict(C=8, layers=5, in_channels=1, hw=28, train_batch=64, eval_batch=512),
    "paper": dict(C=16, layers=8, in_channels=3, hw=32, train_batch=64, eval_batch=256),
}


def decoded_alpha(gen):
    """A decoded alpha as the search makes: per node two distinct inputs, one non-`none` op each."""
    alpha = torch.zeros(14, 8)
    start = 0
    for node in range(4):
        inputs = torch.randperm(2 + node, generator=gen)[:2]
        for i in inputs.tolist():
            alpha[start + i, 1 + int(torch.randint(7, (1,), generator=gen))] = 1.0
        start += 2 + node
    return alpha


def build(ref_dir, cfg, seed):
    sys.path.insert(0, ref_dir)
    from model_search import Network

    torch.manual_seed(seed)
    net = Network(cfg["C"], 10, cfg["layers"], torch.nn.CrossEntropyLoss(), "cpu")
    if cfg["in_channels"] != 3:
        stem_out = net.stem[0].out_channels
        net.stem[0] = torch.nn.Conv2d(cfg["in_channels"], stem_out, 3, padding=1, bias=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.alphas_normal.copy_(decoded_alpha(gen))
        net.alphas_reduce.copy_(decoded_alpha(gen))
    return net


def batch(cfg, n, channels_last):
    x = torch.randn(n, cfg["in_channels"], cfg["hw"], cfg["hw"])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(10, (n,))


def measure(args, cfg):
    channels_last = args.layout == "channels-last"
    net = build(args.ref, cfg, 0)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    weights = [p for n, p in net.named_parameters() if "alphas" not in n]
    opt = torch.optim.SGD(weights, 0.025, momentum=0.9, weight_decay=3e-4)
    criterion = torch.nn.CrossEntropyLoss()
    x, y = batch(cfg, args.train_batch or cfg["train_batch"], channels_last)

    def train_step():
        net.train()
        opt.zero_grad()
        logits = net(x)
        loss = criterion(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        opt.step()
        logits.topk(5, 1)
        return loss.item()

    train_step()
    t = time.perf_counter()
    for _ in range(args.iters):
        train_step()
    train_ips = x.shape[0] * args.iters / (time.perf_counter() - t)

    xe, ye = batch(cfg, args.eval_batch or cfg["eval_batch"], channels_last)

    def fitness_step():
        with torch.no_grad():
            logits = net(xe)
            criterion(logits, ye).item()
            logits.topk(5, 1)

    net.train()
    fitness_step()
    t = time.perf_counter()
    for _ in range(args.iters):
        fitness_step()
    eval_ips = xe.shape[0] * args.iters / (time.perf_counter() - t)
    return train_ips, eval_ips, x.shape[0], xe.shape[0]


def parity(args, cfg):
    net = build(args.ref, cfg, 1)
    net.train()
    torch.manual_seed(2)
    x, y = batch(cfg, 8, False)
    entries = {f"w.{k}": v.clone() for k, v in net.state_dict().items() if "alphas" not in k}
    with torch.no_grad():
        logits = net(x)
    # Gradients of the training loss (train mode, cross-entropy) for every weight.
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    entries.update({f"g.{k}": p.grad.clone() for k, p in net.named_parameters() if "alphas" not in k})
    entries.update(
        y=y,
        x=x,
        alpha_normal=net.alphas_normal.detach().clone(),
        alpha_reduce=net.alphas_reduce.detach().clone(),
        logits=logits,
        config=torch.tensor([cfg["C"], cfg["layers"], cfg["in_channels"], 10]),
    )
    torch.save(entries, args.parity_out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ref")
    p.add_argument("--config", choices=sorted(CONFIGS), default="default")
    p.add_argument("--layout", choices=["nchw", "channels-last"], default="nchw")
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-batch", type=int, default=0)
    p.add_argument("--eval-batch", type=int, default=0)
    p.add_argument("--parity-out")
    p.add_argument("--supernet", metavar="C,LAYERS,IN_CHANNELS,SIZE",
                   help="the config's supernet and input replaced, e.g. 4,4,1,28 (to match an evnas run)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = dict(CONFIGS[args.config])
    if args.supernet:
        c, layers, in_channels, hw = (int(v) for v in args.supernet.split(","))
        cfg.update(C=c, layers=layers, in_channels=in_channels, hw=hw)
    if args.parity_out:
        parity(args, cfg)
        return
    train_ips, eval_ips, tb, eb = measure(args, cfg)
    print(json.dumps(dict(kind="throughput", impl="reference", config=args.config, layout=args.layout,
                          train_batch=tb, eval_batch=eb, train_ips=round(train_ips, 3),
                          eval_ips=round(eval_ips, 3))))


if __name__ == "__main__":
    main()
