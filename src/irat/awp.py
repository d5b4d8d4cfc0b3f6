"""Adversarial weight perturbation (Wu et al., 2020) on top of AT or TRADES.

A proxy copy of the model takes one ascent step on the (global-batch) training loss; the per-layer relative
difference, scaled by γ_awp, perturbs the conv/linear weights of the real model for its update,
and is removed right after the optimizer step. BN statistics are touched only in the proxy.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import Tensor, nn

from . import distributed as dist_utils


def _perturbable(model: nn.Module) -> dict[str, Tensor]:
    """conv and linear weights only (never biases or BN parameters)."""
    out = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            out[f"{mod_name}.weight"] = mod.weight
    return out


class AWP:
    """The proxy is a scratch copy of the model, reloaded before each ascent (its BatchNorm statistics
    move, never the real model's). The proxy's one plain SGD ascent step Δ = lr·∇ℓ is computed from the
    gradient itself, not as the difference (w + Δ) − w of two close float32 numbers, whose rounding
    would swamp Δ's last digits; normalized per layer, lr cancels: the perturbation is γ·‖w‖·∇ℓ/‖∇ℓ‖."""

    def __init__(self, model: nn.Module, gamma: float, proxy_lr: float = 0.01):
        self.model = model
        self.proxy = copy.deepcopy(model)
        self.gamma = gamma
        self.proxy_lr = proxy_lr

    def compute(self, loss_fn: Callable[[nn.Module], Tensor]) -> dict[str, Tensor]:
        """The proxy's ascent on `loss_fn(proxy)`; returns γ·‖w‖/‖Δ‖·Δ per perturbable weight."""
        self.proxy.load_state_dict(self.model.state_dict())
        self.proxy.train()
        for p in self.proxy.parameters():
            p.grad = None
        loss_fn(self.proxy).backward()
        proxy = _perturbable(self.proxy)
        grads = [proxy[name].grad for name in proxy]
        # under DDP every rank holds its slice of the batch: sum the gradients (loss_fn returns this
        # rank's share of the global-batch mean), so every rank perturbs its replica identically
        if dist_utils.rank_world()[1] > 1:
            flat = dist_utils.all_reduce_sum(torch.cat([g.reshape(-1) for g in grads]))
            grads = [s.view_as(g) for g, s in zip(grads, flat.split([g.numel() for g in grads]))]
        diff = {}
        with torch.no_grad():
            for (name, w), g in zip(_perturbable(self.model).items(), grads):
                d = self.proxy_lr * g
                diff[name] = self.gamma * w.norm() / (d.norm() + 1e-20) * d
        return diff

    @torch.no_grad()
    def apply(self, diff: dict[str, Tensor], sign: float = 1.0) -> None:
        for name, w in _perturbable(self.model).items():
            w.add_(diff[name], alpha=sign)

    def state_dict(self) -> dict:
        return {"proxy": self.proxy.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.proxy.load_state_dict(state["proxy"])  # scratch: reloaded from the model before each ascent
