"""Weight averaging (EMA) of the parameters and BatchNorm's statistics.

After optimizer update t (t = 1, 2, …): θ̄ ← θ (t = 1), then θ̄ ← d_t θ̄ + (1 − d_t) θ with
d_t = ema.decay · min(1, (t − 1) / ema.warmup) (a linear ramp of the decay over the first ema.warmup
updates; no ramp when it is 0). Floating-point buffers (BatchNorm's running mean and variance) are
averaged like the parameters; integer buffers (num_batches_tracked) are copied. The update count lives
on the host, so an update makes no host-device sync. torch.optim.swa_utils.AveragedModel would average
the integer buffers too and keeps its count on the device, hence this small class.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, warmup: int = 0):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup = float(decay), int(warmup)
        self.updates = 0

    def decay_at(self, t: int) -> float:
        """d_t of update t (1-indexed); update 1 copies the weights."""
        if t <= 1:
            return 0.0
        return self.decay * min(1.0, (t - 1) / self.warmup) if self.warmup > 0 else self.decay

    def _pairs(self, model: nn.Module) -> tuple[list, list, list, list]:
        """(averaged, current) float tensors and integer tensors, paired by name; built once per model
        (the optimizer and load_state_dict change these tensors in place, never replace them)."""
        if getattr(self, "_paired_with", None) is not model:
            avg, cur = self.model.state_dict(), model.state_dict()
            fl = [k for k, v in avg.items() if v.is_floating_point()]
            ints = [k for k, v in avg.items() if not v.is_floating_point()]
            self._pairs_cache = ([avg[k] for k in fl], [cur[k].detach() for k in fl],
                                 [avg[k] for k in ints], [cur[k] for k in ints])
            self._paired_with = model
        return self._pairs_cache

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay_at(self.updates)
        avg_f, cur_f, avg_i, cur_i = self._pairs(model)
        if avg_f:  # θ̄ + (1 − d)(θ − θ̄) = d θ̄ + (1 − d) θ
            torch._foreach_lerp_(avg_f, cur_f, 1.0 - d)
        for a, c in zip(avg_i, cur_i):
            a.copy_(c)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
