"""What the attacks of one evaluation found, per example, and the two batch helpers every part uses.

Per attack and example a code: ROBUST (still classified correctly), BROKEN, or NOT_RUN (a
natural error, broken earlier in the cascade, or outside the attack's example limit).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..attacks.pgd import eval_mode

NOT_RUN, BROKEN, ROBUST = -1, 0, 1


@dataclass
class Outcomes:
    """The attacks in run order and, filled in as each one runs (or is reused), what it found.

    params: each attack's concrete parameters; coverage: the first N examples it runs on; codes:
    int8 per example; meta: mode, counts, accuracy, seconds; max_linf: max |x̃ − x|∞ per attack
    (nat aside); box: [min, max] of every adversarial input; package_warnings: the AutoAttack
    package's own checks, per attack that reports them.
    """

    order: list[str]
    params: dict[str, dict[str, Any]]
    coverage: dict[str, int]
    codes: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_linf: dict[str, float] = field(default_factory=dict)
    box: list[float] = field(default_factory=lambda: [float("inf"), float("-inf")])
    package_warnings: dict[str, list[str]] = field(default_factory=dict)

    def widen_box(self, lo: float, hi: float) -> None:
        self.box[0], self.box[1] = min(self.box[0], lo), max(self.box[1], hi)

    def broken_before(self) -> Tensor:
        """Per example: broken by any attack recorded so far."""
        n = len(next(iter(self.codes.values())))
        broken = torch.zeros(n, dtype=torch.bool)
        for prev in self.codes.values():
            broken |= prev == BROKEN
        return broken


def float_batch(x: Tensor, idx: Tensor, device: torch.device) -> Tensor:
    """x[idx] on `device` as floats in [0, 1] (uint8 images are divided by 255)."""
    xb = x[idx.to(x.device)].to(device)
    return xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb.float()


@torch.no_grad()
def predict_correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per example: argmax f(x) = y, in eval mode."""
    with eval_mode(model):
        return model(x).argmax(dim=1) == y


__all__ = ["BROKEN", "NOT_RUN", "ROBUST", "Outcomes", "float_batch", "predict_correct"]
