"""Robustness evaluation: attacks by name (SPEC §5), per-example worst case, reports.

An attack is a function `(model, x, y, eps, generator) -> x_adv`; `ATTACKS` maps names to them with
their parameters, so the CLI, the trainer's validation and the report share one lookup.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .attacks.pgd import eval_mode, pgd


@dataclass(frozen=True)
class AttackSpec:
    name: str
    run: Callable[..., Tensor]  # (model, x, y, eps, generator) -> x_adv
    params: Callable[[float], dict[str, Any]]
    expensive: bool = False  # runs only on examples still unbroken (cascade)
    doc: str = ""


def _pgd_attack(steps: int, loss: str = "ce", rel_step: float = 0.25, start: str = "uniform",
                abs_step: float | None = None):
    def run(model: nn.Module, x: Tensor, y: Tensor, eps: float, g: torch.Generator | None = None) -> Tensor:
        noise = None
        if start == "uniform" and g is not None:
            noise = torch.rand(x.shape, generator=g, device=x.device).mul_(2).sub_(1)
        alpha = abs_step if abs_step is not None else rel_step * eps
        return pgd(model, x, y, eps, steps, alpha, loss=loss, start=start, noise=noise).x_adv

    def params(eps: float) -> dict[str, Any]:
        alpha = abs_step if abs_step is not None else rel_step * eps
        p = {"eps": eps, "steps": steps, "step_size": alpha, "loss": loss, "random_start": start}
        if loss == "cw":
            p["kappa"] = 50.0
        return p

    return run, params


def _nat(model: nn.Module, x: Tensor, y: Tensor, eps: float, g: torch.Generator | None = None) -> Tensor:
    return x


ATTACKS: dict[str, AttackSpec] = {
    "nat": AttackSpec("nat", _nat, lambda eps: {}, doc="natural accuracy"),
    "fgsm": AttackSpec("fgsm", *_pgd_attack(1, rel_step=1.0, start="none"), doc="FGSM, step ε"),
    "pgd20": AttackSpec("pgd20", *_pgd_attack(20), doc="PGD-20, CE, α = ε/4, uniform start"),
    "pgd100": AttackSpec("pgd100", *_pgd_attack(100), doc="PGD-100, CE, α = ε/4, uniform start"),
    "cw": AttackSpec("cw", *_pgd_attack(30, loss="cw"), doc="PGD-30 on the CW margin loss, κ = 50, α = ε/4"),
}


@torch.no_grad()
def _predict_correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    with eval_mode(model):
        return model(x).argmax(dim=1) == y


def robust_mask(model: nn.Module, x: Tensor, y: Tensor, attack: str, eps: float, batch_size: int = 256,
                generator: torch.Generator | None = None) -> Tensor:
    """Per-example bool: still correctly classified after the attack."""
    spec = ATTACKS[attack]
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        x_adv = spec.run(model, xb, yb, eps, generator)
        out.append(_predict_correct(model, x_adv, yb))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


@dataclass
class QuickEval:
    accuracy: dict[str, float] = field(default_factory=dict)


def quick_accuracy(model: nn.Module, x_u8: Tensor, y: Tensor, eps: float, attacks: list[str],
                   batch_size: int = 256, seed: int = 0, device: torch.device | None = None,
                   channels_last: bool = False, reduce: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:
    """Accuracy (%) under each attack for uint8 images, e.g. the trainer's validation (nat, PGD-20).

    `reduce` all-reduces a tensor of counts across data-parallel ranks (sharded evaluation).
    """
    from .data.loader import eval_batches, generator as make_gen

    device = device or x_u8.device
    from .distributed import rank_world
    rank, world = rank_world()
    g = make_gen(device, seed, 31)
    counts = torch.zeros(len(attacks) + 1, device=device, dtype=torch.float64)
    for _, xb, yb in eval_batches(x_u8, y, batch_size, device, rank, world, channels_last):
        for i, name in enumerate(attacks):
            x_adv = ATTACKS[name].run(model, xb, yb, eps, g)
            counts[i] += _predict_correct(model, x_adv, yb).sum()
        counts[-1] += yb.numel()
    if reduce is not None:
        counts = reduce(counts)
    total = max(float(counts[-1]), 1.0)
    return {name: 100.0 * float(counts[i]) / total for i, name in enumerate(attacks)}


# ---------------------------------------------------------------------------------------------
# checkpoint evaluation and reports


def evaluate_checkpoint(path, attacks: list[str] | None = None, eps: float | None = None,
                        n_examples: int | None = None, batch_size: int = 256, seed: int = 0,
                        device: str = "auto", out: str | None = None) -> dict[str, Any]:
    """Evaluate an irat checkpoint on its test split and write eval.json beside it (or to `out`)."""
    from pathlib import Path

    from .api import model_from_checkpoint
    from .checkpoint import load_checkpoint
    from .data.datasets import load_dataset
    from .distributed import local_device
    from .errors import ConfigError
    from .io import atomic_write_json, sha256_file

    attacks = attacks or ["nat", "pgd20"]
    for a in attacks:
        if a not in ATTACKS:
            raise ConfigError("--attacks", f"a comma list of: {', '.join(ATTACKS)}", a)
    if eps is not None and not (eps >= 0 and eps == eps and eps != float("inf")):
        raise ConfigError("--eps", "a finite number >= 0", eps)
    path = Path(path)
    ckpt = load_checkpoint(path)
    model, cfg = model_from_checkpoint(ckpt, path)
    dev = local_device(device)
    model = model.to(dev).eval()
    eps = cfg.attack.eps if eps is None else eps
    ds = load_dataset(cfg.data.name, cfg.data.root)
    x, y = ds.x_test, ds.y_test
    if n_examples is not None:
        x, y = x[:n_examples], y[:n_examples]
    acc = quick_accuracy(model, x.to(dev), y.to(dev), eps, attacks, batch_size=batch_size, seed=seed, device=dev)
    report = {
        "accuracy": acc,
        "eps": eps,
        "attacks": {a: ATTACKS[a].params(eps) for a in attacks},
        "checkpoint": {"path": str(path), "sha256": sha256_file(path), "epoch": int(ckpt["epoch"])},
        "data": {"name": cfg.data.name, "split": "test", "n_examples": int(x.shape[0])},
        "method": cfg.method,
    }
    out_path = Path(out) if out else path.parent.parent / "eval.json"
    atomic_write_json(out_path, report)
    report["path"] = str(out_path)
    return report
