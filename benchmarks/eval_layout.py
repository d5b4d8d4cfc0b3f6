"""Evaluation speed with the model's weights in NCHW versus channels-last layout (`irat eval`'s default).

Times each component of the official AutoAttack (APGD-CE, APGD-T, FAB-T, Square) and PGD-20 on the
same examples of a trained checkpoint, once per layout, in one process, and reports the ratio
NCHW seconds ÷ channels-last seconds (> 1: channels-last is faster) and whether both layouts break
the same examples. Prints a table and writes JSON:

    OMP_NUM_THREADS=1 python benchmarks/eval_layout.py \\
        --checkpoint docs/results/fmnist-smallcnn/at/seed0/checkpoints/last.pt \\
        --n-examples 128 --out benchmarks/results/eval-layout.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from irat.api import model_from_checkpoint
from irat.attacks.autoattack import autoattack
from irat.attacks.pgd import pgd
from irat.checkpoint import load_checkpoint
from irat.data.datasets import load_dataset

COMPONENTS = ("pgd20", "apgd-ce", "apgd-t", "fab-t", "square")


def _attack(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    if name == "pgd20":
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)).mul_(2).sub_(1)
        return pgd(model, x, y, eps, 20, eps / 4, noise=noise).x_adv
    return autoattack(model, x, y, eps, version="custom", attacks=[name], seed=0, batch_size=x.shape[0],
                      num_classes=int(model(x[:1]).shape[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="docs/results/fmnist-smallcnn/at/seed0/checkpoints/last.pt")
    p.add_argument("--n-examples", type=int, default=128, help="naturally correct test examples attacked")
    p.add_argument("--components", default=",".join(COMPONENTS))
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before measuring")
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    model, cfg = model_from_checkpoint(ckpt, args.checkpoint)
    model.eval()
    ds = load_dataset(cfg.data.name, cfg.data.root)
    x = ds.x_test[: 4 * args.n_examples].float().div(255)
    y = ds.y_test[: 4 * args.n_examples].long()
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).nonzero().flatten()[: args.n_examples]
    x, y = x[correct], y[correct]
    eps = float(cfg.attack.eps)
    rows = {}
    for name in args.components.split(","):
        seconds, robust = {}, {}
        for layout in ("nchw", "channels_last"):  # interleaved per component: the same machine load
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            model.to(memory_format=fmt)
            t0 = time.perf_counter()
            x_adv = _attack(name, model, x, y, eps)
            seconds[layout] = time.perf_counter() - t0
            with torch.no_grad():
                robust[layout] = (model(x_adv).argmax(1) == y).tolist()
        model.to(memory_format=torch.contiguous_format)
        rows[name] = {"seconds_nchw": round(seconds["nchw"], 3),
                      "seconds_channels_last": round(seconds["channels_last"], 3),
                      "speedup": round(seconds["nchw"] / seconds["channels_last"], 3),
                      "robust_nchw": sum(robust["nchw"]), "robust_channels_last": sum(robust["channels_last"]),
                      "same_examples_broken": robust["nchw"] == robust["channels_last"]}
        print(f"{name:>8}: NCHW {seconds['nchw']:7.1f} s  channels-last {seconds['channels_last']:7.1f} s  "
              f"speedup {rows[name]['speedup']:.2f}  robust {rows[name]['robust_nchw']}/"
              f"{rows[name]['robust_channels_last']} of {len(y)}", flush=True)
    aa = [c for c in ("apgd-ce", "apgd-t", "fab-t", "square") if c in rows]
    out = {"command": " ".join([Path(sys.argv[0]).as_posix()] + (argv if argv is not None else sys.argv[1:])),
           "checkpoint": str(args.checkpoint), "n_examples": len(y), "eps": eps,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.processor() or
           platform.machine(), "components": rows}
    if aa:
        out["autoattack_speedup"] = round(sum(rows[c]["seconds_nchw"] for c in aa)
                                          / sum(rows[c]["seconds_channels_last"] for c in aa), 3)
        print(f"AutoAttack components together: speedup {out['autoattack_speedup']:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
