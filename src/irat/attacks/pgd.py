"""Batched L∞ PGD with the per-example bookkeeping the reweighting methods need, in one place.

Per example it returns GAIRAT's κ (correctly classified iterates x^(0)…x^(T−1)), the first
misclassified step, and optionally that iterate and its probabilities (for PM_dif); with `tau`
it stops an example τ steps after it is first misclassified (FAT's early-stopped PGD).
Only the input gradient is computed (`torch.autograd.grad` w.r.t. the input), never the weights'.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STARTS = ("uniform", "normal", "none")
ATTACK_LOSSES = ("ce", "kl", "cw")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with the model in eval mode and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def attack_loss(logits: Tensor, labels: Tensor, kind: str, target_probs: Tensor | None = None,
                cw_kappa: float = 50.0) -> Tensor:
    """Per-sample loss the attacker maximizes.

    ce: CE(f(x̃), y); kl: KL(p(x) ‖ p(x̃)) against fixed natural probabilities (TRADES);
    cw: −max(z_y − max_{j≠y} z_j, −κ), the CW margin loss.
    """
    logits = logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, labels, reduction="none")
    if kind == "kl":
        if target_probs is None:
            raise ValueError("attack loss 'kl' needs target_probs (the natural prediction)")
        return F.kl_div(F.log_softmax(logits, dim=1), target_probs, reduction="none").sum(dim=1)
    if kind == "cw":
        z_y = logits.gather(1, labels[:, None]).squeeze(1)
        z_other = logits.scatter(1, labels[:, None], float("-inf")).max(dim=1).values
        return -torch.clamp(z_y - z_other, min=-cw_kappa)
    raise ValueError(f"attack.loss: must be one of {', '.join(ATTACK_LOSSES)} (got {kind!r})")


def _as_radius(eps: float | Tensor, x: Tensor) -> Tensor | float:
    if isinstance(eps, Tensor) and eps.dim() > 0:
        return eps.to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return float(eps)


def _project(x_adv: Tensor, x: Tensor, eps: Tensor | float) -> Tensor:
    return torch.clamp(torch.minimum(torch.maximum(x_adv, x - eps), x + eps), 0.0, 1.0)


def random_start(x: Tensor, eps: Tensor | float, start: str, noise: Tensor | None = None) -> Tensor:
    """uniform: x + U(−ε, ε); normal: x + 0.001·N(0, I); none: x. Projected to the ε-ball and box.

    `noise` (same shape as x) replaces the random draw: U(−1, 1) for uniform, N(0, 1) for normal,
    so callers can draw it from their own generator (e.g. identically across DDP ranks).
    """
    if start == "none":
        return x.clone()
    if start == "uniform":
        u = noise if noise is not None else torch.empty_like(x).uniform_(-1.0, 1.0)
        return _project(x + eps * u, x, eps)
    if start == "normal":
        n = noise if noise is not None else torch.randn_like(x)
        return _project(x + 0.001 * n, x, eps)
    raise ValueError(f"attack.start: must be one of {', '.join(STARTS)} (got {start!r})")


@dataclass
class PGDResult:
    x_adv: Tensor
    kappa: Tensor  # int64 [B]: iterates x^(0)…x^(T−1) classified correctly
    first_wrong: Tensor  # int64 [B]: least t with x^(t) misclassified; T if never
    x_at_first_wrong: Tensor | None = None  # x^(t_i) (x^(T) if never), with keep_lps_iterate
    probs_at_first_wrong: Tensor | None = None  # eval-mode p(x^(t_i)), with keep_lps_iterate
    steps_taken: Tensor | None = None  # int64 [B]: updates applied (differs from T under FAT's τ)


def pgd(
    model: nn.Module,
    x: Tensor,
    labels: Tensor,
    eps: float | Tensor,
    steps: int,
    step_size: float | Tensor,
    *,
    loss: str = "ce",
    start: str = "uniform",
    target_probs: Tensor | None = None,
    tau: int | None = None,
    keep_lps_iterate: bool = False,
    lps_probs: bool = True,
    cw_kappa: float = 50.0,
    noise: Tensor | None = None,
) -> PGDResult:
    """L∞ PGD: x^(t+1) = Proj_{B_ε(x) ∩ [0,1]}(x^(t) + α sign ∇_x ℓ(x^(t), y)).

    Runs the model in eval mode and restores its mode. ε and α may be per-sample tensors. With
    `keep_lps_iterate` it also returns x^(t_i) and, unless `lps_probs` is False (a caller that recomputes
    them, e.g. in fp32), the eval-mode probabilities there.
    """
    radius = _as_radius(eps, x)
    alpha = _as_radius(step_size, x)
    x = x.detach()
    batch = x.shape[0]
    device = x.device
    kappa = torch.zeros(batch, dtype=torch.long, device=device)
    first_wrong = torch.full((batch,), steps, dtype=torch.long, device=device)
    steps_taken = torch.zeros(batch, dtype=torch.long, device=device)
    active = torch.ones(batch, dtype=torch.bool, device=device)
    remaining = torch.full((batch,), tau if tau is not None else 0, dtype=torch.long, device=device)
    x_lps: Tensor | None = None
    probs_lps: Tensor | None = None
    shape = (-1,) + (1,) * (x.dim() - 1)

    with eval_mode(model), torch.enable_grad():
        x_adv = random_start(x, radius, start, noise)
        # the box ∩ ε-ball as two bounds, computed once: each step is then one clamp
        # (clamp(clamp(a, x−ε, x+ε), 0, 1) = clamp(a, clamp(x−ε, 0, 1), clamp(x+ε, 0, 1)) for ε ≥ 0)
        lower, upper = (x - radius).clamp_(0.0, 1.0), (x + radius).clamp_(0.0, 1.0)
        if keep_lps_iterate:
            x_lps = x_adv.clone()
        for t in range(steps):
            x_adv.requires_grad_(True)
            logits = model(x_adv)
            loss_vec = attack_loss(logits, labels, loss, target_probs, cw_kappa)
            (grad,) = torch.autograd.grad(loss_vec.sum(), x_adv)
            with torch.no_grad():
                correct = logits.argmax(dim=1) == labels
                kappa += correct
                newly_wrong = (~correct) & (first_wrong == steps)
                first_wrong = torch.where(newly_wrong, t, first_wrong)
                if keep_lps_iterate and lps_probs:
                    probs = torch.softmax(logits.float(), dim=1)
                    probs_lps = probs if probs_lps is None else probs_lps
                    probs_lps = torch.where(newly_wrong[:, None], probs, probs_lps)
                if keep_lps_iterate:
                    x_lps = torch.where(newly_wrong.view(shape), x_adv.detach(), x_lps)
                if tau is not None:
                    wrong = ~correct
                    stop = wrong & (remaining <= 0)
                    active = active & ~stop
                    remaining = torch.where(wrong & active, remaining - 1, remaining)
                    step = alpha * grad.sign_() * active.view(shape)
                else:
                    step = alpha * grad.sign_()
                steps_taken += active
                x_adv = torch.clamp(x_adv.detach() + step, lower, upper)

    never_wrong = first_wrong == steps
    if keep_lps_iterate and lps_probs:
        with torch.no_grad(), eval_mode(model):
            probs_final = torch.softmax(model(x_adv).float(), dim=1)
        probs_lps = torch.where(never_wrong[:, None], probs_final, probs_lps if probs_lps is not None
                                else probs_final)
    if keep_lps_iterate:
        x_lps = torch.where(never_wrong.view(shape), x_adv, x_lps)
    return PGDResult(x_adv=x_adv.detach(), kappa=kappa, first_wrong=first_wrong, x_at_first_wrong=x_lps,
                     probs_at_first_wrong=probs_lps, steps_taken=steps_taken)
