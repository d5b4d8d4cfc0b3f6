"""One epoch of the reference-style loop (`irat.bench.reference_loop`) alone; prints images/s.

    python benchmarks/reference_loop.py --method at --subset 2048 --batch-size 128
"""
from __future__ import annotations

import argparse
import time

import torch

from irat.bench.reference_loop import METHODS, make_loader, train_epoch
from irat.data.datasets import load_dataset
from irat.models import create_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=METHODS, default="at")
    p.add_argument("--model", default="smallcnn")
    p.add_argument("--subset", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    ds = load_dataset("fashion-mnist")
    x, y = ds.x_train[:a.subset], ds.y_train[:a.subset]
    torch.manual_seed(0)
    model = create_model(a.model, 10, int(x.shape[1]), tuple(x.shape[2:])).to(a.device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = make_loader(x, y, a.batch_size, num_workers=a.workers)
    t = time.perf_counter()
    n = train_epoch(model, loader, opt, torch.device(a.device), method=a.method, num_steps=a.steps)
    dt = time.perf_counter() - t
    print(f"{a.method}: {n} images in {dt:.2f} s = {n / dt:.1f} images/s")


if __name__ == "__main__":
    main()
