"""Per-sample margins (SPEC §1): probabilities in, one detached score per sample out; larger = safer.

Every function is batched over any number of classes K and runs on any device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


def _true_and_rest(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """p_y and the probabilities with the true class masked to -inf."""
    p_y = probs.gather(1, labels[:, None]).squeeze(1)
    others = probs.scatter(1, labels[:, None], float("-inf"))
    return p_y, others


@torch.no_grad()
def probabilistic_margin(probs: Tensor, labels: Tensor) -> Tensor:
    """PM(x, y) = p_y(x) − max_{j≠y} p_j(x)  (MAIL Eq. 4)."""
    p_y, others = _true_and_rest(probs.detach().float(), labels)
    return p_y - others.max(dim=1).values


def pm_adv(probs_adv: Tensor, labels: Tensor) -> Tensor:
    """PM_adv = p_y(x̃) − max_{j≠y} p_j(x̃)  (MAIL Eq. 5), in [−1, 1]."""
    return probabilistic_margin(probs_adv, labels)


def pm_nat(probs_nat: Tensor, labels: Tensor) -> Tensor:
    """PM_nat = p_y(x) − max_{j≠y} p_j(x)  (MAIL Eq. 6), in [−1, 1]."""
    return probabilistic_margin(probs_nat, labels)


@torch.no_grad()
def pm_dif(probs_nat: Tensor, probs_at_lps: Tensor, labels: Tensor) -> Tensor:
    """PM_dif = p_y(x) − p_y(x + δ^(t_i)), t_i the first misclassified PGD step  (MAIL Eq. 7)."""
    p_nat = probs_nat.detach().float().gather(1, labels[:, None]).squeeze(1)
    p_lps = probs_at_lps.detach().float().gather(1, labels[:, None]).squeeze(1)
    return p_nat - p_lps


@torch.no_grad()
def cl_pm(probs_adv: Tensor, labels: Tensor) -> Tensor:
    """Confused-label PM (CLIRAT Eq. 4).

    PM_adv if x̃ is classified correctly; otherwise Σ_{j: p_j(x̃) > p_y(x̃)} (p_y(x̃) − p_j(x̃)).
    Ties (p_j = p_y) are not confused labels. Range (−1, 1]: with C the confused labels the sum is
    |C|·p_y − Σ_C p_j ≥ |C|·p_y − (1 − p_y) = (|C| + 1)·p_y − 1 > −1. cl_pm ≤ pm_adv.
    """
    probs = probs_adv.detach().float()
    p_y, others = _true_and_rest(probs, labels)
    gaps = p_y[:, None] - others  # −inf → +inf at the true class
    confused = gaps < 0
    summed = torch.where(confused, gaps, torch.zeros_like(gaps)).sum(dim=1)
    pm = p_y - others.max(dim=1).values
    return torch.where(confused.any(dim=1), summed, pm)


@torch.no_grad()
def confused_label_count(probs_adv: Tensor, labels: Tensor) -> Tensor:
    """Number of labels j with p_j(x̃) > p_y(x̃) (CLIRAT Fig. 1A); 0 for a correct prediction."""
    p_y, others = _true_and_rest(probs_adv.detach().float(), labels)
    return (others > p_y[:, None]).sum(dim=1)


def lps(kappa: Tensor, first_wrong: Tensor, mode: str = "count") -> Tensor:
    """Least PGD steps, as a float margin (larger = safer).

    mode "count": GAIRAT's κ, the number of iterates x^(0)…x^(T−1) classified correctly (the
    reference code); mode "first": the first step whose iterate is misclassified, T if none (the
    GAIRAT paper's definition).
    """
    if mode == "count":
        return kappa.detach().float()
    if mode == "first":
        return first_wrong.detach().float()
    raise ValueError(f"reweight.lps_mode: must be count or first (got {mode!r})")


# ---------------------------------------------------------------------------------------------
# registry: a margin is a function of what the training step has; `needs` tells the step what to
# keep (so nothing is computed that no margin reads).


@dataclass(frozen=True)
class MarginInputs:
    labels: Tensor
    probs_adv: Tensor | None = None
    probs_nat: Tensor | None = None
    probs_nat_eval: Tensor | None = None
    probs_at_lps: Tensor | None = None
    kappa: Tensor | None = None
    first_wrong: Tensor | None = None
    lps_mode: str = "count"


def _unit(steps: int) -> tuple[float, float]:
    return (-1.0, 1.0)


@dataclass(frozen=True)
class MarginSpec:
    """A margin: its function, what it reads, and its range (for histograms) given the attack's steps T.

    `needs` names MarginInputs fields. `probs_nat` follows `reweight.margin_source` (the training
    forward of x when the objective makes one); `probs_nat_eval` is always the eval-mode p(x) of the
    model the attack saw, computed before the training forward updates BatchNorm's statistics.
    """

    fn: Callable[[MarginInputs], Tensor]
    needs: frozenset[str]
    doc: str
    range: Callable[[int], tuple[float, float]] = _unit
    weighting: str = "sigmoid"  # the weighting a custom method gets with this margin unless it names one


MARGINS: dict[str, MarginSpec] = {
    "none": MarginSpec(lambda m: torch.zeros_like(m.labels, dtype=torch.float32), frozenset(), "no reweighting",
                       weighting="none"),
    "pm_adv": MarginSpec(lambda m: pm_adv(m.probs_adv, m.labels), frozenset({"probs_adv"}),
                         "p_y(x̃) − max_{j≠y} p_j(x̃)"),
    "pm_nat": MarginSpec(lambda m: pm_nat(m.probs_nat, m.labels), frozenset({"probs_nat"}),
                         "p_y(x) − max_{j≠y} p_j(x)"),
    "pm_dif": MarginSpec(lambda m: pm_dif(m.probs_nat_eval, m.probs_at_lps, m.labels),
                         frozenset({"probs_nat_eval", "probs_at_lps"}), "p_y(x) − p_y(x + δ^(t_i))"),
    "cl_pm": MarginSpec(lambda m: cl_pm(m.probs_adv, m.labels), frozenset({"probs_adv"}),
                        "confused-label PM (CLIRAT)"),
    "lps": MarginSpec(lambda m: lps(m.kappa, m.first_wrong, m.lps_mode), frozenset({"kappa"}),
                      "least PGD steps κ (GAIRAT)", range=lambda steps: (0.0, float(steps)), weighting="gair"),
}


def compute_margin(name: str, inputs: MarginInputs) -> Tensor:
    return MARGINS[name].fn(inputs)
