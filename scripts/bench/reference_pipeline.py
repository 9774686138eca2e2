#!/usr/bin/env python3
"""Images/s of the reference's CIFAR training pipeline (train_search.py + utils._data_transforms_cifar10):
a torch DataLoader with 2 workers, batch 64, SubsetRandomSampler over the first half of the training set,
and torchvision transforms RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize applied to
PIL images built per item as torchvision's CIFAR10.__getitem__ does (Image.fromarray of an HWC uint8 array).

The data are synthetic (fixed seed) in CIFAR's layout, so no download is needed. Prints one line:
`reference_images_per_s <value>`.

Needs torch + torchvision 0.26 + pillow + numpy, e.g.
PYTHONPATH=/root/.cache/evnas/torch-2.11.0:/root/.cache/evnas/bench-py python3 reference_pipeline.py
"""
import argparse
import time

import numpy as np
import torch
import torchvision.transforms as transforms
from PIL import Image

CIFAR_MEAN = [0.49139968, 0.48215827, 0.44653124]
CIFAR_STD = [0.24703233, 0.24348505, 0.26158768]


class SyntheticCifar(torch.utils.data.Dataset):
    """Stands in for torchvision's CIFAR10: uint8 [N, 32, 32, 3] in memory, PIL image per item."""

    def __init__(self, n, transform):
        rng = np.random.default_rng(0)
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, size=n).tolist()
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img = Image.fromarray(self.data[index])
        return self.transform(img), self.targets[index]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-images", type=int, default=50000, help="size of the training set")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    torch.set_num_threads(1)
    train_transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
    ])
    data = SyntheticCifar(args.train_images, train_transform)
    split = args.train_images // 2
    queue = torch.utils.data.DataLoader(
        data, batch_size=args.batch_size, num_workers=args.workers, pin_memory=False,
        sampler=torch.utils.data.sampler.SubsetRandomSampler(list(range(split))))

    images = 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        # A new iterator per epoch, as the reference's `for step, (x, y) in enumerate(train_queue)`,
        # so worker start-up is part of the cost.
        for inputs, _targets in queue:
            images += inputs.shape[0]
    elapsed = time.perf_counter() - start
    print(f"reference_images_per_s {images / elapsed:.1f}  ({images} images in {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
