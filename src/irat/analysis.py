"""Diagnostics of a trained checkpoint from the MAIL paper: LPS vs PM, and the path dependence of LPS.

- `lps_vs_pm` (MAIL Fig. 1b and Fig. 4): on (a subset of) the run's own training data, run the
  training attack (PGD-T with the training ε, α, start and loss), record GAIRAT's least PGD steps
  (LPS, κ or the first misclassified step per `reweight.lps_mode`) and the path-independent
  PM_nat = p_y(x) − max_{j≠y} p_j(x) per example.
- `path_dependence` (MAIL Fig. 1a, Sec. 2.2): from the same start, PGD and LM-PGD (line-searched
  step size + Nesterov momentum, `irat.attacks.lmpgd`) follow different paths through the same
  ε-ball; the fraction of examples whose LPS differs between the two paths measures how much LPS
  depends on the attack, while PM_nat, computed from the natural example alone, cannot change.

`irat analyze paths CHECKPOINT` and `irat analyze lps CHECKPOINT` write JSON + PNG figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .attacks.lmpgd import lm_pgd
from .attacks.pgd import eval_mode, pgd
from .config import Config
from .errors import ConfigError
from . import seeds
from .checkpoint import load_checkpoint
from .data.loader import load_splits, to_float
from .distributed import local_device
from .files import atomic_write_json
from .margins import lps, pm_nat
from .runs import model_from_checkpoint
from .seeds import generator

SPLITS = ("train", "test")


# ---------------------------------------------------------------------------------------------
# inputs


def load_checkpoint_model(path: str | Path, device: str = "auto") -> tuple[nn.Module, Config, torch.device]:
    """The checkpoint's model (eval mode, on `device`) and its training config."""

    ckpt = load_checkpoint(path)
    model, cfg = model_from_checkpoint(ckpt, path)
    dev = local_device(device)
    return model.to(dev).eval(), cfg, dev


def analysis_examples(cfg: Config, n: int | None, split: str = "train", seed: int = 0,
                      device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Float [0, 1] images and labels: a seeded subset of `n` examples of the run's own training split
    (the same subset and validation hold-out as training) or of the test split."""

    if split not in SPLITS:
        raise ConfigError("--split", "train or test", split)
    if n is not None and n < 1:
        raise ConfigError("--n", "an integer >= 1", n)
    splits = load_splits(cfg, torch.device("cpu"))
    x, y = (splits.x_train, splits.y_train) if split == "train" else (splits.x_test, splits.y_test)
    if n is not None and n < x.shape[0]:
        pick = torch.randperm(x.shape[0], generator=generator("cpu", seed, seeds.ANALYSIS_SUBSET))[:n].sort().values
        x, y = x[pick], y[pick]
    return to_float(x).to(device), y.to(device)


def _start_noise(shape: torch.Size, kind: str, g: torch.Generator, device: torch.device) -> Tensor:
    if kind == "normal":
        return torch.randn(shape, generator=g, device=device)
    return torch.rand(shape, generator=g, device=device).mul_(2).sub_(1)


@torch.no_grad()
def _probs(model: nn.Module, x: Tensor) -> Tensor:
    with eval_mode(model):
        return torch.softmax(model(x).float(), dim=1)


# ---------------------------------------------------------------------------------------------
# LPS vs PM (MAIL Fig. 1b, Fig. 4)


@dataclass
class LPSAnalysis:
    lps: np.ndarray  # int [N]: LPS per `lps_mode`
    kappa: np.ndarray  # int [N]: correctly classified iterates x^(0)…x^(T−1)
    first_wrong: np.ndarray  # int [N]: first misclassified step, T if never
    pm_nat: np.ndarray  # float [N]: p_y(x) − max_{j≠y} p_j(x)
    robust: np.ndarray  # bool [N]: x^(T) still classified correctly
    steps: int
    lps_mode: str
    attack: dict[str, Any]
    method: str

    def summary(self) -> dict[str, Any]:
        counts = np.bincount(self.lps, minlength=self.steps + 1)
        at_max = self.lps == self.steps
        return {
            "method": self.method, "n_examples": int(self.lps.size), "lps_mode": self.lps_mode,
            "attack": self.attack, "lps_counts": counts.tolist(),
            "fraction_at_max_lps": float(at_max.mean()) if self.lps.size else 0.0,
            "non_robust_at_max_lps": int((at_max & ~self.robust).sum()),
            "pm_nat_median_by_lps": {int(k): float(np.median(self.pm_nat[self.lps == k]))
                                     for k in range(self.steps + 1) if (self.lps == k).any()},
        }


def lps_vs_pm(model: nn.Module, cfg: Config, x: Tensor, y: Tensor, *, batch_size: int = 256, seed: int = 0,
              method: str | None = None) -> LPSAnalysis:
    """Run the training attack on (x, y) and return LPS, κ and PM_nat per example (MAIL Fig. 1b / 4)."""

    a = cfg.attack
    loss, start = cfg.training_attack.loss, cfg.training_attack.start
    g = generator(x.device, seed, seeds.ANALYSIS_LPS_START)
    out: dict[str, list[Tensor]] = {k: [] for k in ("kappa", "first", "pm", "robust")}
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        probs_nat = _probs(model, xb)
        res = pgd(model, xb, yb, a.eps, a.steps, a.step_size, loss=loss, start=start,
                  target_probs=probs_nat if loss == "kl" else None, noise=_start_noise(xb.shape, start, g, xb.device))
        out["kappa"].append(res.kappa.cpu())
        out["first"].append(res.first_wrong.cpu())
        out["pm"].append(pm_nat(probs_nat, yb).cpu())
        out["robust"].append((_probs(model, res.x_adv).argmax(1) == yb).cpu())
    kappa, first = torch.cat(out["kappa"]), torch.cat(out["first"])
    return LPSAnalysis(
        lps=lps(kappa, first, cfg.reweight.lps_mode).long().numpy(), kappa=kappa.numpy(), first_wrong=first.numpy(),
        pm_nat=torch.cat(out["pm"]).numpy(), robust=torch.cat(out["robust"]).numpy(), steps=a.steps,
        lps_mode=cfg.reweight.lps_mode, method=method or cfg.method,
        attack={"eps": a.eps, "steps": a.steps, "step_size": a.step_size, "loss": loss, "random_start": start})


def analyze_checkpoint_lps(path: str | Path, n_examples: int | None = 2000, *, split: str = "train",
                           batch_size: int = 256, seed: int = 0, device: str = "auto") -> LPSAnalysis:
    model, cfg, dev = load_checkpoint_model(path, device)
    x, y = analysis_examples(cfg, n_examples, split, seed, dev)
    return lps_vs_pm(model, cfg, x, y, batch_size=batch_size, seed=seed)


# ---------------------------------------------------------------------------------------------
# path dependence of LPS (MAIL Fig. 1a)


@dataclass
class PathAnalysis:
    losses_pgd: np.ndarray  # [T + 1, N]
    losses_lmpgd: np.ndarray  # [T + 1, N]
    lps_pgd: np.ndarray  # int [N]: first misclassified step along the PGD path (T if never)
    lps_lmpgd: np.ndarray  # int [N]: the same along the LM-PGD path
    pm_nat: np.ndarray  # float [N]: the natural example's PM, path-independent
    pm_nat_max_change: float  # |PM_nat after both attacks − before|, max over examples (0: unchanged)
    steps: int
    settings: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        n, t = self.lps_pgd.size, self.steps
        differs = self.lps_pgd != self.lps_lmpgd
        return {
            "n_examples": int(n), "steps": t, "settings": self.settings,
            "fraction_lps_differs": float(differs.mean()) if n else 0.0,
            "n_lps_differs": int(differs.sum()),
            "mean_lps_pgd": float(self.lps_pgd.mean()) if n else 0.0,
            "mean_lps_lmpgd": float(self.lps_lmpgd.mean()) if n else 0.0,
            "fraction_broken_only_by_lmpgd": float(((self.lps_pgd == t) & (self.lps_lmpgd < t)).mean()) if n else 0.0,
            "fraction_broken_only_by_pgd": float(((self.lps_pgd < t) & (self.lps_lmpgd == t)).mean()) if n else 0.0,
            "mean_final_loss_pgd": float(self.losses_pgd[-1].mean()) if n else 0.0,
            "mean_final_loss_lmpgd": float(self.losses_lmpgd[-1].mean()) if n else 0.0,
            "fraction_lmpgd_loss_higher": float((self.losses_lmpgd[-1] > self.losses_pgd[-1]).mean()) if n else 0.0,
            "pm_nat_mean": float(self.pm_nat.mean()) if n else 0.0,
            "pm_nat_max_change": self.pm_nat_max_change,
        }

    def chosen_examples(self, k: int = 4) -> list[int]:
        """Examples to plot: first those whose LPS differs most between the paths, then the rest."""
        gap = np.abs(self.lps_pgd - self.lps_lmpgd)
        order = np.argsort(-gap, kind="stable")
        return [int(i) for i in order[:k]]


def path_dependence(model: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int, step_size: float, *,
                    lm_step_size: float | None = None, momentum: float = 0.75, start: str = "uniform",
                    batch_size: int = 256, seed: int = 0) -> PathAnalysis:
    """PGD and LM-PGD from the same start point; LPS along each path and PM_nat of the natural example.

    PGD's loss curve is LM-PGD's special case μ = 0 without line search (exactly PGD's update); its LPS
    comes from `irat.attacks.pgd.pgd` itself.
    """

    lm_step = lm_step_size if lm_step_size is not None else 2 * step_size
    g = generator(x.device, seed, seeds.ANALYSIS_PATHS_START)
    parts: dict[str, list[Tensor]] = {k: [] for k in ("lp", "ll", "fp", "fl", "pm0", "pm1")}
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        noise = _start_noise(xb.shape, start, g, xb.device) if start != "none" else None
        parts["pm0"].append(pm_nat(_probs(model, xb), yb).cpu())
        res = pgd(model, xb, yb, eps, steps, step_size, start=start, noise=noise)
        plain = lm_pgd(model, xb, yb, eps, steps, step_size, momentum=0.0, line_search=False, start=start,
                       noise=noise)
        lm = lm_pgd(model, xb, yb, eps, steps, lm_step, momentum=momentum, start=start, noise=noise)
        parts["lp"].append(plain.losses.cpu())
        parts["ll"].append(lm.losses.cpu())
        parts["fp"].append(res.first_wrong.cpu())
        parts["fl"].append(lm.first_wrong.cpu())
        parts["pm1"].append(pm_nat(_probs(model, xb), yb).cpu())
    pm0, pm1 = torch.cat(parts["pm0"]), torch.cat(parts["pm1"])
    return PathAnalysis(
        losses_pgd=torch.cat(parts["lp"], dim=1).numpy(), losses_lmpgd=torch.cat(parts["ll"], dim=1).numpy(),
        lps_pgd=torch.cat(parts["fp"]).numpy(), lps_lmpgd=torch.cat(parts["fl"]).numpy(), pm_nat=pm0.numpy(),
        pm_nat_max_change=float((pm1 - pm0).abs().max()) if pm0.numel() else 0.0, steps=steps,
        settings={"eps": eps, "pgd_step_size": step_size, "lmpgd_max_step_size": lm_step,
                  "lmpgd_momentum": momentum, "random_start": start, "seed": seed,
                  "lps": "first misclassified step (T if never)"})


def analyze_paths(path: str | Path, n: int = 256, steps: int = 50, *, split: str = "train", seed: int = 0,
                  momentum: float = 0.75, lm_step_size: float | None = None, start: str = "uniform",
                  batch_size: int = 256, device: str = "auto", out: str | Path | None = None,
                  plot_examples: int = 4) -> dict[str, Any]:
    """`irat analyze paths`: PGD vs LM-PGD on `n` examples; writes paths.json and paths.png to `out`."""
    from .figures import loss_paths  # matplotlib: loaded only when a figure is drawn

    if steps < 1:
        raise ConfigError("--steps", "an integer >= 1", steps)
    if start not in ("uniform", "normal", "none"):
        raise ConfigError("--start", "uniform, normal or none", start)
    model, cfg, dev = load_checkpoint_model(path, device)
    x, y = analysis_examples(cfg, n, split, seed, dev)
    res = path_dependence(model, x, y, cfg.attack.eps, steps, cfg.attack.step_size, lm_step_size=lm_step_size,
                          momentum=momentum, start=start, batch_size=batch_size, seed=seed)
    summary = {"checkpoint": str(path), "method": cfg.method, "split": split, **res.summary()}
    out_dir = Path(out) if out is not None else Path(path).parent.parent / "analysis"
    chosen = res.chosen_examples(plot_examples)
    loss_paths(res.losses_pgd[:, chosen], res.losses_lmpgd[:, chosen], res.lps_pgd[chosen], res.lps_lmpgd[chosen],
               res.pm_nat[chosen], [f"example {i}" for i in chosen], path=out_dir / "paths.png")
    summary["plotted_examples"] = chosen
    summary["figure"] = str(out_dir / "paths.png")
    atomic_write_json(out_dir / "paths.json", summary)
    summary["path"] = str(out_dir / "paths.json")
    return summary
