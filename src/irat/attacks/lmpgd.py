"""LM-PGD: L∞ PGD with a line-searched step size and Nesterov momentum (MAIL, Sec. 2.2 / Fig. 1a).

The MAIL paper ("Probabilistic Margins for Instance Reweighting in Adversarial Training", Wang et
al., NeurIPS 2021) uses LM-PGD to show that GAIRAT's least PGD steps (LPS) are *path-dependent*:
the same natural example, the same ε-ball and the same number of steps give a different LPS when the
attack takes a different path, while the probabilistic margin PM_nat of the natural example does not
depend on any path at all.

One step, for every example i of the batch at once (no per-sample Python):

    z      = Proj(x^(t) + μ v^(t))                          Nesterov look-ahead
    g      = sign ∇_z CE(f(z), y)                            L∞ steepest ascent at z
    x_k    = Proj(z + s_i α ρ^k g),   k = 0 … K−1            a decreasing schedule of steps
    accept the largest step whose loss exceeds CE(f(x^(t)), y) (backtracking line search);
    if none does: x^(t+1) = x^(t), v = 0 and s_i ← s_i ρ^K (shrink)
    v^(t+1) = x^(t+1) − x^(t)

Proj is the projection onto B_ε(x) ∩ [0, 1]^d. Accepted steps only ever raise the loss, so the
per-example loss trajectory is non-decreasing. With μ = 0 and `line_search=False` the update is
exactly PGD's x^(t+1) = Proj(x^(t) + α sign ∇ CE); `irat analyze paths` uses that special case to
record PGD's loss curve along its own path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .pgd import _as_radius, _project, attack_loss, eval_mode, random_start


@dataclass
class LMPGDResult:
    x_adv: Tensor  # [B, ...] the final iterate x^(T)
    losses: Tensor  # float [T + 1, B]: CE(f(x^(t)), y) for t = 0 … T
    first_wrong: Tensor  # int64 [B]: least t ≤ T − 1 with x^(t) misclassified; T if never (LPS, GAIRAT paper)
    kappa: Tensor  # int64 [B]: iterates x^(0) … x^(T−1) classified correctly (LPS, reference code)
    wrong_at_end: Tensor  # bool [B]: x^(T) misclassified
    accepted: Tensor  # int64 [B]: line-search steps that raised the loss


def lm_pgd(
    model: nn.Module,
    x: Tensor,
    labels: Tensor,
    eps: float | Tensor,
    steps: int,
    step_size: float | Tensor | None = None,
    *,
    momentum: float = 0.75,
    line_search: bool = True,
    shrink: float = 0.5,
    candidates: int = 4,
    start: str = "none",
    noise: Tensor | None = None,
) -> LMPGDResult:
    """L∞ PGD with Nesterov momentum μ and a per-example backtracking line search (MAIL's LM-PGD).

    `step_size` α is the largest step tried (default ε/2); the schedule is α ρ^k for k < `candidates`
    (ρ = `shrink`), scaled per example by s_i (starts at 1, shrinks when no step raises the loss and
    grows back by one notch after a success). `start`/`noise` as in `pgd` (uniform, normal, none), so
    PGD and LM-PGD can start from the same point. The model runs in eval mode; its mode is restored.
    """
    if steps < 0:
        raise ValueError(f"steps: must be >= 0 (got {steps})")
    if not 0.0 < shrink < 1.0:
        raise ValueError(f"shrink: must be in (0, 1) (got {shrink})")
    if candidates < 1:
        raise ValueError(f"candidates: must be >= 1 (got {candidates})")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum: must be in [0, 1) (got {momentum})")
    radius = _as_radius(eps, x)
    if step_size is None:
        step_size = (eps / 2) if not isinstance(eps, Tensor) else eps / 2
    alpha = _as_radius(step_size, x)
    x = x.detach()
    batch = x.shape[0]
    shape = (-1,) + (1,) * (x.dim() - 1)
    n_cand = candidates if line_search else 1
    ladder = torch.tensor([shrink ** k for k in range(n_cand)], device=x.device, dtype=x.dtype)  # [K]

    def ce_and_pred(inputs: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(inputs)
        return attack_loss(logits, labels.repeat(inputs.shape[0] // batch), "ce"), logits.argmax(dim=1)

    with eval_mode(model):
        x_t = random_start(x, radius, start, noise).detach()
        with torch.no_grad():
            loss_t, pred_t = ce_and_pred(x_t)
        losses = [loss_t]
        kappa = torch.zeros(batch, dtype=torch.long, device=x.device)
        first_wrong = torch.full((batch,), steps, dtype=torch.long, device=x.device)
        accepted = torch.zeros(batch, dtype=torch.long, device=x.device)
        scale = torch.ones(batch, device=x.device, dtype=x.dtype)
        velocity = torch.zeros_like(x)
        for t in range(steps):
            correct = pred_t == labels
            kappa += correct
            first_wrong = torch.where((~correct) & (first_wrong == steps), torch.full_like(first_wrong, t),
                                      first_wrong)
            z = _project(x_t + momentum * velocity, x, radius).requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(attack_loss(model(z), labels, "ce").sum(), z)
            with torch.no_grad():
                direction = grad.sign()
                # all K candidates of the whole batch in one forward: [K·B, ...]
                steps_k = (alpha * scale.view(shape)).unsqueeze(0) * ladder.view((-1,) + (1,) * x.dim())
                cand = _project(z.detach().unsqueeze(0) + steps_k * direction.unsqueeze(0), x.unsqueeze(0),
                                radius.unsqueeze(0) if isinstance(radius, Tensor) else radius)
                c_loss, c_pred = ce_and_pred(cand.reshape(-1, *x.shape[1:]))
                c_loss, c_pred = c_loss.view(n_cand, batch), c_pred.view(n_cand, batch)
                if line_search:
                    better = c_loss > loss_t.unsqueeze(0)  # [K, B]
                    ok = better.any(dim=0)
                    k_star = better.float().argmax(dim=0)  # the first True: the largest step that helps
                else:
                    ok = torch.ones(batch, dtype=torch.bool, device=x.device)
                    k_star = torch.zeros(batch, dtype=torch.long, device=x.device)
                idx = torch.arange(batch, device=x.device)
                x_new = torch.where(ok.view(shape), cand[k_star, idx], x_t)
                loss_t = torch.where(ok, c_loss[k_star, idx], loss_t)
                pred_t = torch.where(ok, c_pred[k_star, idx], pred_t)
                if line_search:
                    grown = scale * ladder[k_star] / shrink
                    scale = torch.where(ok, torch.clamp(grown, max=1.0), scale * shrink ** n_cand)
                velocity = torch.where(ok.view(shape), x_new - x_t, torch.zeros_like(x_t))
                accepted += ok
                x_t = x_new
            losses.append(loss_t)
    return LMPGDResult(x_adv=x_t.detach(), losses=torch.stack(losses).detach(), first_wrong=first_wrong,
                       kappa=kappa, wrong_at_end=(pred_t != labels), accepted=accepted)
