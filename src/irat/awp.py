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
    def __init__(self, model: nn.Module, gamma: float, proxy_lr: float = 0.01):
        self.model = model
        self.proxy = copy.deepcopy(model)
        self.proxy_opt = torch.optim.SGD(self.proxy.parameters(), lr=proxy_lr)
        self.gamma = gamma

    def compute(self, loss_fn: Callable[[nn.Module], Tensor]) -> dict[str, Tensor]:
        """One proxy ascent step on `loss_fn(proxy)`; returns γ·‖w‖/‖Δ‖·Δ per perturbable weight."""
        self.proxy.load_state_dict(self.model.state_dict())
        self.proxy.train()
        loss = -loss_fn(self.proxy)
        self.proxy_opt.zero_grad(set_to_none=True)
        loss.backward()
        # under DDP every rank holds its slice of the batch: sum the proxy gradients, so that every
        # rank takes the same ascent step and perturbs its replica identically (loss_fn returns this
        # rank's share of the global-batch mean)
        grads = [p.grad for p in self.proxy.parameters() if p.grad is not None]
        if grads and dist_utils.rank_world()[1] > 1:
            flat = dist_utils.all_reduce_sum(torch.cat([g.reshape(-1) for g in grads]))
            for g, summed in zip(grads, flat.split([g.numel() for g in grads])):
                g.copy_(summed.view_as(g))
        self.proxy_opt.step()
        diff = {}
        with torch.no_grad():
            real = _perturbable(self.model)
            proxy = _perturbable(self.proxy)
            for name, w in real.items():
                d = proxy[name] - w
                diff[name] = self.gamma * w.norm() / (d.norm() + 1e-20) * d
        return diff

    @torch.no_grad()
    def apply(self, diff: dict[str, Tensor], sign: float = 1.0) -> None:
        for name, w in _perturbable(self.model).items():
            w.add_(diff[name], alpha=sign)

    def state_dict(self) -> dict:
        return {"proxy": self.proxy.state_dict(), "proxy_opt": self.proxy_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.proxy.load_state_dict(state["proxy"])
        self.proxy_opt.load_state_dict(state["proxy_opt"])
