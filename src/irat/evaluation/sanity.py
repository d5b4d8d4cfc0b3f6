"""The sanity flags of an evaluation: signs that its numbers cannot be trusted.

eval mode; inputs in [0, 1]; PGD at ε = 0 equal to natural accuracy; CE input gradients that are
exactly zero (masking); more steps never weaker; PGD not far above the per-example worst case
(gradient masking); every adversarial input in the ε-ball and the box; AutoAttack's own checks.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import seeds
from ..attacks.pgd import eval_mode
from ..attacks.registry import ATTACKS
from .outcomes import BROKEN, ROBUST, Outcomes, float_batch, predict_correct
from .protocols import EvalSettings

EPS_ZERO_ATTACK = "pgd20"  # run at ε = 0 on the first `sanity_examples` examples
MASKING_REFERENCE = ("pgd20", "pgd100")  # the strongest of these is compared with the worst case


def data_range(x: Tensor) -> tuple[float, float]:
    """(min, max) of the inputs in [0, 1] units."""
    if x.dtype == torch.uint8:
        return float(x.min()) / 255.0, float(x.max()) / 255.0
    return float(x.min()), float(x.max())


def binomial_margin(p_percent: float, n: int) -> float:
    """Noise margin (points) for comparing two accuracies on n examples: 2σ of a binomial, at least 1 example."""
    p = min(max(p_percent / 100.0, 0.0), 1.0)
    return max(100.0 / max(n, 1), 200.0 * math.sqrt(p * (1.0 - p) / max(n, 1)))


def zero_gradient_share(model: nn.Module, x: Tensor, y: Tensor) -> tuple[int, int]:
    """(examples whose CE input gradient is exactly zero, examples) at the natural inputs."""
    with eval_mode(model), torch.enable_grad():
        xr = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xr).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xr)
    zero = grad.flatten(1).abs().amax(1) == 0
    return int(zero.sum()), int(zero.numel())


def sanity_flags(model: nn.Module, x: Tensor, y: Tensor, device: torch.device, settings: EvalSettings,
                 out: Outcomes) -> dict[str, Any]:
    """Every flag with its evidence; `flags["any"]` is set if one fired. `settings.eps` is resolved."""
    assert settings.eps is not None
    eps, proto, batch_size = settings.eps, settings.protocol, settings.batch_size
    n = x.shape[0]
    flags: dict[str, Any] = {}
    flags["train_mode"] = {"flag": False, "model_training": bool(model.training),
                           "note": "attacks ran in eval mode (a model in train mode is refused)"}
    lo, hi = data_range(x)
    flags["input_range"] = {"flag": bool(lo < 0.0 or hi > 1.0), "min": lo, "max": hi,
                            "note": "inputs must be in [0, 1]; normalization belongs inside the model"}

    # ε = 0: PGD must reproduce natural accuracy exactly
    m = min(n, settings.sanity_examples)
    overrides = proto.overrides.get(EPS_ZERO_ATTACK)
    g = seeds.generator(device, settings.seed, seeds.EVAL_SANITY)
    nat_ok = pgd_ok = zero = 0
    for s in range(0, m, batch_size):
        idx = torch.arange(s, min(s + batch_size, m))
        xb, yb = float_batch(x, idx, device), y[idx].to(device)
        nat_ok += int(predict_correct(model, xb, yb).sum())
        x0 = ATTACKS[EPS_ZERO_ATTACK].run(model, xb, yb, 0.0, g, overrides=overrides)
        pgd_ok += int(predict_correct(model, x0, yb).sum())
        zero += zero_gradient_share(model, xb, yb)[0]
    flags["eps_zero"] = {"flag": nat_ok != pgd_ok, "n_examples": m, "nat_accuracy": 100.0 * nat_ok / m,
                         "pgd_eps0_accuracy": 100.0 * pgd_ok / m,
                         "attack": ATTACKS[EPS_ZERO_ATTACK].params(0.0, overrides),
                         "note": "PGD with ε = 0 must give natural accuracy"}
    share = 100.0 * zero / m
    flags["zero_gradients"] = {"flag": share > settings.zero_grad_threshold, "share": share, "n_zero": zero,
                               "n_examples": m, "threshold": settings.zero_grad_threshold,
                               "note": "share (%) of inputs whose CE input gradient is exactly zero: "
                                       "gradient-based attacks cannot move them (masking)"}

    codes, coverage = out.codes, out.coverage
    flags["more_steps_stronger"] = _more_steps_stronger(out)

    # gap between the strongest PGD and the worst case
    pgds = [a for a in MASKING_REFERENCE if a in codes]
    others = [a for a in out.order if a not in ("nat", *pgds)]
    k = min(coverage.values())
    worst_k = codes["nat"][:k] == ROBUST
    for a in out.order[1:]:
        worst_k = worst_k & (codes[a][:k] != BROKEN)
    worst_acc = 100.0 * float(worst_k.sum()) / k
    if pgds:
        best_pgd = min(pgds, key=lambda a: _accuracy(out, a, k))
        gap = _accuracy(out, best_pgd, k) - worst_acc
        margin = binomial_margin(worst_acc, k)
        flags["gradient_masking"] = {"flag": gap > settings.masking_threshold and gap > margin,
                                     "checked": bool(others), "pgd": best_pgd, "pgd_accuracy": _accuracy(out, best_pgd, k),
                                     "worst": worst_acc, "gap": gap, "threshold": settings.masking_threshold,
                                     "noise_margin": margin, "compared_with": others, "n_examples": k,
                                     "note": "PGD accuracy above the worst case over all attacks by more than the "
                                             "threshold and the noise margin: possible gradient masking"}
    else:
        flags["gradient_masking"] = {"flag": False, "checked": False, "threshold": settings.masking_threshold,
                                     "note": "not checked: no PGD attack was run"}

    max_linf, box = out.max_linf, out.box
    bound_ok = all(v <= eps + 1e-6 for v in max_linf.values())
    box_ok = not max_linf or (box[0] >= -1e-6 and box[1] <= 1.0 + 1e-6) or lo < 0.0 or hi > 1.0
    flags["perturbation_bound"] = {"flag": not (bound_ok and box_ok), "eps": eps, "max_linf": max_linf,
                                   "adv_min": box[0] if max_linf else None, "adv_max": box[1] if max_linf else None,
                                   "note": "every adversarial input within the ε-ball and the [0, 1] box"}
    warnings = out.package_warnings
    flags["autoattack_checks"] = {"flag": any(warnings.values()), "checked": bool(warnings),
                                  "warnings": {a: w for a, w in warnings.items() if w},
                                  "note": "the AutoAttack package's own checks (randomized or dynamic defense, zero "
                                          "gradients, Square stronger than the gradient attacks, ...)"}
    flags["any"] = any(v["flag"] for v in flags.values() if isinstance(v, dict))
    return flags


def _accuracy(out: Outcomes, a: str, k: int) -> float:
    """Accuracy (%) of attack `a` on the first k examples."""
    return 100.0 * float((out.codes[a][:k] == ROBUST).sum()) / k


def _more_steps_stronger(out: Outcomes) -> dict[str, Any]:
    """Within a family (`AttackSpec.family`), an attack with more steps must not be weaker."""
    pairs = []
    run = sorted((a for a in ATTACKS if ATTACKS[a].family is not None and a in out.codes),
                 key=lambda a: out.params[a]["steps"])
    for i, fewer in enumerate(run):
        for more in run[i + 1:]:
            if ATTACKS[more].family != ATTACKS[fewer].family:
                continue
            k = min(out.coverage[fewer], out.coverage[more])
            a_few, a_more = _accuracy(out, fewer, k), _accuracy(out, more, k)
            margin = binomial_margin(a_few, k)
            pairs.append({"fewer": fewer, "more": more,
                          "steps": [out.params[fewer]["steps"], out.params[more]["steps"]],
                          "accuracy_fewer": a_few, "accuracy_more": a_more, "difference": a_more - a_few,
                          "noise_margin": margin, "flag": a_more > a_few + margin, "n_examples": k})
    return {"flag": any(p["flag"] for p in pairs), "checked": bool(pairs), "pairs": pairs,
            "note": "an attack with more steps giving higher accuracy than one with fewer "
                    "(beyond noise) hints at gradient masking or a broken attack"}


__all__ = ["EPS_ZERO_ATTACK", "MASKING_REFERENCE", "binomial_margin", "data_range", "sanity_flags",
           "zero_gradient_share"]
