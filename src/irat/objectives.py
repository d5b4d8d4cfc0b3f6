"""Objectives (SPEC §3) as per-sample losses: (weighted term, unweighted term).

The training loss is mean_i(ω_i · weighted_i + unweighted_i); the caller multiplies by ω, so every
objective works with every margin and weighting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_per_sample(logits_nat: Tensor, logits_adv: Tensor) -> Tensor:
    """KL(p(x) ‖ p(x̃)) = Σ_k p_k(x) (log p_k(x) − log p_k(x̃)), one value per sample."""
    log_p_nat = F.log_softmax(logits_nat.float(), dim=1)
    log_p_adv = F.log_softmax(logits_adv.float(), dim=1)
    return (log_p_nat.exp() * (log_p_nat - log_p_adv)).sum(dim=1)


def at_loss(logits_nat: Tensor | None, logits_adv: Tensor, labels: Tensor, tradeoff: float) -> tuple[Tensor, Tensor]:
    """AT (Madry): weighted CE(f(x̃), y); no unweighted term."""
    ce = F.cross_entropy(logits_adv.float(), labels, reduction="none")
    return ce, torch.zeros_like(ce)


def trades_loss(logits_nat: Tensor | None, logits_adv: Tensor, labels: Tensor, tradeoff: float) -> tuple[Tensor, Tensor]:
    """TRADES: weighted β_t · KL(p(x) ‖ p(x̃)); unweighted CE(f(x), y)."""
    assert logits_nat is not None
    ce_nat = F.cross_entropy(logits_nat.float(), labels, reduction="none")
    return tradeoff * kl_per_sample(logits_nat, logits_adv), ce_nat


def mart_loss(logits_nat: Tensor | None, logits_adv: Tensor, labels: Tensor, tradeoff: float) -> tuple[Tensor, Tensor]:
    """MART: weighted BCE_i = −log p_y(x̃) − log(1 − max_{k≠y} p_k(x̃));
    unweighted λ_m · KL(p(x) ‖ p(x̃)) · (1 − p_y(x))."""
    assert logits_nat is not None
    probs_adv = torch.softmax(logits_adv.float(), dim=1)
    ce_adv = F.cross_entropy(logits_adv.float(), labels, reduction="none")
    wrong_max = probs_adv.scatter(1, labels[:, None], float("-inf")).max(dim=1).values
    bce = ce_adv - torch.log((1.0 - wrong_max).clamp_min(1e-12))
    p_y_nat = torch.softmax(logits_nat.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    return bce, tradeoff * kl_per_sample(logits_nat, logits_adv) * (1.0 - p_y_nat)


@dataclass(frozen=True)
class ObjectiveSpec:
    """An objective: its per-sample terms and what the rest of irat needs to know about it."""

    fn: Callable[[Tensor | None, Tensor, Tensor, float], tuple[Tensor, Tensor]]
    needs_nat: bool  # needs the training-mode natural forward (with gradient)
    attack_loss: str  # default training attack loss
    attack_start: str  # default random start
    doc: str
    tradeoff: float = 0.0  # default of `tradeoff` (TRADES β_t, MART λ_m); unused by AT
    awp: bool = False  # AWP is defined on top of it (Wu et al. 2020: AT and TRADES)
    # MAIL's sigmoid slope γ and bias β with this objective (MAIL §4.1: 10, −0.5 for AT; 2, 0 for TRADES and
    # MART): what a sigmoid weighting takes when neither the method, the preset nor an override sets them
    sigmoid: tuple[float, float] = (2.0, 0.0)


OBJECTIVES: dict[str, ObjectiveSpec] = {
    "at": ObjectiveSpec(at_loss, False, "ce", "uniform", "(1/M) Σ ω_i CE(f(x̃_i), y_i)", awp=True,
                        sigmoid=(10.0, -0.5)),
    "trades": ObjectiveSpec(trades_loss, True, "kl", "normal",
                            "(1/M) Σ CE(f(x_i), y_i) + β_t (1/M) Σ ω_i KL(p(x_i) ‖ p(x̃_i))", tradeoff=6.0, awp=True),
    "mart": ObjectiveSpec(mart_loss, True, "ce", "uniform",
                          "(1/M) Σ ω_i BCE_i + λ_m (1/M) Σ KL(p(x_i) ‖ p(x̃_i)) (1 − p_y(x_i))", tradeoff=6.0),
}


def weighted_loss(weights: Tensor, weighted: Tensor, unweighted: Tensor) -> Tensor:
    """mean_i(ω_i · weighted_i + unweighted_i)."""
    return (weights * weighted + unweighted).mean()
