"""The measuring instruments of `irat bench`: timed rounds, host-sync counting, one step, one epoch.

They drive the trainer only through its public entry points (`Trainer.step`, `Trainer.train_epoch`,
`Trainer.autocast`), so what is timed is the code path a run takes.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attacks.pgd import pgd
from ..margins import MARGINS, MarginInputs
from ..training import EpochStats, Trainer
from ..weighting import reweight

# ops that, on CUDA, make the host wait for the device (or copy host data to it synchronously)
SYNC_OPS = ("aten._local_scalar_dense", "aten.lift_fresh", "aten.lift_fresh_copy", "aten.nonzero",
            "aten.masked_select", "aten._unique2", "aten.unique_dim", "aten.repeat_interleave")

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_attack(model: torch.nn.Module, x: Tensor, y: Tensor, eps: float, alpha: float, steps: int,
                noise: Tensor, autocast: Callable[[], Any]) -> Tensor:
    """The floor of an L∞ attack: per step one eval-mode forward, ∇_x CE, a signed step, a clamp."""
    lo, hi = (x - eps).clamp_(0.0, 1.0), (x + eps).clamp_(0.0, 1.0)
    x_adv = torch.clamp(x + eps * noise, lo, hi)
    was = model.training
    model.eval()
    try:
        with autocast():
            for _ in range(steps):
                x_adv.requires_grad_(True)
                loss = F.cross_entropy(model(x_adv).float(), y, reduction="sum")
                (g,) = torch.autograd.grad(loss, x_adv)
                x_adv = torch.clamp(x_adv.detach().add_(g.sign_(), alpha=alpha), lo, hi)
    finally:
        model.train(was)
    return x_adv


def count_sync_ops(fn: Callable[[], Any]) -> dict[str, int]:
    """Run fn under a dispatch mode and count the ops that are host-device syncs on CUDA."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: dict[str, int] = {}

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)
            name = name if name.startswith("aten.") else f"aten.{name.split('::')[-1]}"
            if name in SYNC_OPS:
                counts[name] = counts.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with _Count():
        fn()
    return counts


class Rounds:
    """Time named items round after round, in a rotated order; medians and paired ratios."""

    def __init__(self, device: torch.device):
        self.device = device
        self.items: dict[str, Callable[[], Any]] = {}
        self.times: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def add(self, name: str, fn: Callable[[], Any]) -> None:
        self.items[name] = fn
        self.times[name] = []
        self.cpu[name] = []

    def run(self, rounds: int, warmup: int = 1, log: Callable[[str], None] | None = None) -> None:
        names = list(self.items)
        for _ in range(warmup):
            for n in names:
                self.items[n]()
        for r in range(rounds):
            k = r % max(len(names), 1)
            for n in names[k:] + names[:k]:
                sync(self.device)
                t, c = time.perf_counter(), time.process_time()
                self.items[n]()
                sync(self.device)
                self.times[n].append(time.perf_counter() - t)
                self.cpu[n].append(time.process_time() - c)
            if log:
                log(f"round {r + 1}/{rounds} done")

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    def ratio(self, num: Callable[[int], float] | str, den: Callable[[int], float] | str, cpu: bool = False) -> float:
        """Median over rounds of num/den, each a name or a function of the round index (wall or CPU time)."""
        t = self.cpu if cpu else self.times
        f = (lambda r, n=num: t[n][r]) if isinstance(num, str) else num
        g = (lambda r, n=den: t[n][r]) if isinstance(den, str) else den
        return statistics.median(self.ratios(f, g))

    def ratios(self, f: Callable[[int], float], g: Callable[[int], float]) -> list[float]:
        return [f(r) / g(r) for r in range(len(next(iter(self.times.values()))))]

    def iqr(self, num: str, den: str) -> list[float]:
        """The 25th and 75th percentiles of the per-round wall-time ratios (the noise of `ratio`)."""
        q = statistics.quantiles(self.ratios(lambda r: self.times[num][r], lambda r: self.times[den][r]), n=4)
        return [q[0], q[2]]


def step_fn(trainer: Trainer, batches: list, epoch: int = 1) -> Callable[[], None]:
    """Time per step: one call of Trainer.step on each fixed batch (result ÷ len(batches))."""
    stats = EpochStats(trainer.device)

    def run() -> None:
        for b in batches:
            trainer.step(b.x, b.y, b.noise, b.global_size, epoch, stats)
        stats.__init__(trainer.device)  # keep the per-epoch buffers from growing without bound
    return run


def irat_epoch(trainer: Trainer, epoch: int) -> tuple[int, float]:
    """One epoch of the trainer's own loop (`Trainer.train_epoch`: no summary, no checkpoint):
    (images, seconds)."""
    stats = EpochStats(trainer.device)
    sync(trainer.device)
    t = time.perf_counter()
    n = trainer.train_epoch(epoch, stats)
    trainer.check_finite()
    sync(trainer.device)
    return n, time.perf_counter() - t


def reweight_ops_seconds(trainer: Trainer, batch, reps: int = 200) -> float:
    """Seconds per step of the method's own reweighting ops (margin → weights → batch normalization →
    (Σω, Σω²)), timed alone on the tensors a real step produces (pgd result, training-mode logits):
    the part of a step that differs between a method and its base objective, measured precisely
    where a wall-clock difference of whole steps would drown in noise."""
    cfg, r = trainer.cfg, trainer.cfg.reweight
    if r.margin == "none":
        return 0.0
    needs = MARGINS[r.margin].needs
    with trainer.autocast():
        res = pgd(trainer.attack_model, batch.x, batch.y, cfg.attack.eps, cfg.attack.steps, cfg.attack.step_size,
                  loss="ce", start=cfg.training_attack.start, noise=batch.noise,
                  keep_lps_iterate="probs_at_lps" in needs)
        with torch.no_grad():
            probs_adv = torch.softmax(trainer.model(res.x_adv).float(), dim=1)
            probs_nat = torch.softmax(trainer.model(batch.x).float(), dim=1)
    inputs = MarginInputs(labels=batch.y, probs_adv=probs_adv, probs_nat=probs_nat, probs_nat_eval=probs_nat,
                          probs_at_lps=res.probs_at_first_wrong, kappa=res.kappa, first_wrong=res.first_wrong,
                          lps_mode=r.lps_mode)

    def ops() -> Tensor:
        return reweight(r, inputs, cfg.attack.steps, True, batch.global_size)[0]

    ops()
    sync(trainer.device)
    t = time.perf_counter()
    for _ in range(reps):
        ops()
    sync(trainer.device)
    return (time.perf_counter() - t) / reps
