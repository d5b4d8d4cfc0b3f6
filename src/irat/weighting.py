"""Instance weights (SPEC §2): MAIL/CLIRAT sigmoid, GAIRAT's κ weights, normalization, burn-in."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from .margins import compute_margin, confused_label_count

NORMS = ("batch", "constant")
EXCLUDE = ("none", "single", "multiple")
GAIR_KINDS = ("tanh", "sigmoid", "discrete")


@torch.no_grad()
def sigmoid_weights(margin: Tensor, gamma: float, beta: float) -> Tensor:
    """w_i = sigmoid(−γ (m_i − β))  (MAIL Eq. 8). Non-increasing in the margin for γ ≥ 0."""
    return torch.sigmoid(-gamma * (margin.detach().float() - beta))


@torch.no_grad()
def gair_weights(kappa: Tensor, steps: int, lam: float = -1.0, kind: str = "tanh") -> Tensor:
    """GAIRAT's weights of κ ∈ {0…T}.

    tanh:     (1 + tanh(λ + 5 (⌊T/2⌋ − κ) / ⌊T/2⌋)) / 2
    sigmoid:  sigmoid(λ + 5 (⌊T/2⌋ − κ) / ⌊T/2⌋)
    discrete: (T + 1 − κ) / (T + 1)
    """
    k = kappa.detach().float()
    if kind == "discrete":
        return (steps + 1 - k) / (steps + 1)
    half = max(steps // 2, 1)
    arg = lam + 5.0 * (half - k) / half
    if kind == "tanh":
        return (1.0 + torch.tanh(arg)) / 2.0
    if kind == "sigmoid":
        return torch.sigmoid(arg)
    raise ValueError(f"reweight.gair_kind: must be one of {', '.join(GAIR_KINDS)} (got {kind!r})")


@torch.no_grad()
def normalize(w: Tensor, mode: str = "batch", c: float = 3.0, global_sum: Tensor | None = None,
              global_count: int | None = None) -> Tensor:
    """ω from w: "batch" ω_i = M · w_i / Σ_j w_j (Σω = M); "constant" ω_i = c · w_i.

    Under data parallelism pass the all-reduced `global_sum` and `global_count` (the global batch
    size M), so that the weights do not depend on the number of processes.
    """
    if mode == "constant":
        return c * w
    if mode == "batch":
        total = w.sum() if global_sum is None else global_sum
        m = w.numel() if global_count is None else global_count
        return w * (m / total.clamp_min(torch.finfo(w.dtype).tiny))
    raise ValueError(f"reweight.norm: must be one of {', '.join(NORMS)} (got {mode!r})")


def reweighting_active(epoch: int, from_epoch: int) -> bool:
    """Burn-in: before `from_epoch` (1-indexed) every ω_i = 1."""
    return epoch >= from_epoch


@dataclass(frozen=True)
class WeightingSpec:
    fn: Callable[..., Tensor]  # (margin, cfg: ReweightConfig, steps) -> unnormalized w
    doc: str


WEIGHTINGS: dict[str, WeightingSpec] = {
    "none": WeightingSpec(lambda m, r, steps: torch.ones_like(m), "all ones"),
    "sigmoid": WeightingSpec(lambda m, r, steps: sigmoid_weights(m, r.gamma, r.beta), "sigmoid(−γ(m − β))"),
    "gair": WeightingSpec(lambda m, r, steps: gair_weights(m, steps, r.lam, r.gair_kind), "GAIRAT weights of κ"),
}


def excluded(exclude: str, probs_adv: Tensor, labels: Tensor) -> Tensor:
    """CLIRAT's ablation: the misclassified adversarial examples with exactly one confused label (S^sig,
    "single") or with several (S^mul, "multiple"); all False for "none"."""
    if exclude == "none":
        return torch.zeros_like(labels, dtype=torch.bool)
    n_cl = confused_label_count(probs_adv, labels)
    if exclude == "single":
        return n_cl == 1
    if exclude == "multiple":
        return n_cl >= 2
    raise ValueError(f"reweight.exclude: must be one of {', '.join(EXCLUDE)} (got {exclude!r})")


def reweight(r: Any, inputs: Any, steps: int, active: bool, global_size: int,
             reduce: Callable[[Tensor], Tensor] = lambda t: t) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The step's whole reweighting chain: margin → w → ω (normalized over the global batch) and ESS.

    `r` is the ReweightConfig; `inputs` the MarginInputs of this batch; `active` False during the
    burn-in (every ω_i = 1, nothing excluded). After it, `r.exclude` sets w_i = 0 for the excluded
    examples before the normalization, so they leave the loss (their gradient is zero) and the others
    share Σω = M. `reduce` all-reduces (Σw, Σw²) under data parallelism. The margin that is returned
    (for the statistics) is r.margin's, or PM_adv when the method does not reweight.
    Returns (ω, margin, ESS = (Σω)² / Σω², the excluded mask).
    """
    margin = compute_margin(r.margin if r.margin != "none" else "pm_adv", inputs)
    if not active or (r.margin == "none" and r.exclude == "none"):
        ones = torch.ones_like(margin)
        return ones, margin, torch.full((), float(global_size), device=margin.device), ones == 0
    w = WEIGHTINGS[r.weighting].fn(margin, r, steps)
    drop = excluded(r.exclude, inputs.probs_adv, inputs.labels)
    if r.exclude != "none":
        w = w * ~drop
    sums = reduce(torch.stack([w.sum(), (w * w).sum()]))
    omega = normalize(w, r.norm, r.c, global_sum=sums[0], global_count=global_size)
    return omega, margin, sums[0] ** 2 / sums[1].clamp_min(1e-30), drop
