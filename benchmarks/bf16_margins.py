"""How far bf16 autocast moves the margins and weights, against fp32, on one trained checkpoint.

PGD-10 adversarial test images are made in fp32; their logits are then computed in fp32, under bf16
autocast with the whole network in bf16, and under bf16 autocast with irat's fp32 classifier head.
Printed and written to JSON: the largest |ΔPM_adv|, |ΔCL-PM| and the largest relative change of
MAIL-AT's batch-normalized ω (sigmoid, γ = 10, β = −0.5).

    python benchmarks/bf16_margins.py docs/results/fmnist-smallcnn/mail-at/seed0/checkpoints/last.pt \
        --out benchmarks/results/bf16-margins.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

import irat
from irat.attacks.pgd import pgd
from irat.checkpoint import load_checkpoint
from irat.config import config_from_dict
from irat.data.datasets import load_dataset
from irat.margins import cl_pm, pm_adv
from irat.models import HeadFP32
from irat.weighting import normalize, sigmoid_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    torch.manual_seed(0)
    cfg = config_from_dict(load_checkpoint(a.checkpoint)["config"])
    model = irat.load_model(a.checkpoint)
    ds = load_dataset(cfg.data.name, cfg.data.root)
    x, y = ds.x_test[:a.n].float().div(255), ds.y_test[:a.n]
    x_adv = pgd(model, x, y, cfg.attack.eps, 10, cfg.attack.step_size).x_adv
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        p32 = model(x_adv).softmax(1)
    w32 = normalize(sigmoid_weights(pm_adv(p32, y), 10.0, -0.5))
    out = {"checkpoint": a.checkpoint, "n": int(y.numel()), "torch": torch.__version__}
    for name, cls in (("bf16_everywhere", nn.Linear), ("bf16_fp32_head", HeadFP32)):
        head.__class__ = cls
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            p16 = model(x_adv).float().softmax(1)
        w16 = normalize(sigmoid_weights(pm_adv(p16, y), 10.0, -0.5))
        out[name] = {"max_abs_pm_adv": float((pm_adv(p16, y) - pm_adv(p32, y)).abs().max()),
                     "max_abs_cl_pm": float((cl_pm(p16, y) - cl_pm(p32, y)).abs().max()),
                     "max_rel_omega": float(((w16 - w32).abs() / w32).max())}
        print(name, out[name])
    head.__class__ = HeadFP32
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
