"""Per-epoch training statistics, accumulated on the device and read back once per epoch."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..margins import MARGINS

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HIST_BINS = 20


class EpochStats:
    """On-device accumulators for one epoch; read back once at its end (no per-step sync).

    Tensor values are summed on the device with one stack + add per step; plain numbers (batch
    counts, known on the host) are summed on the host, so no host data is copied to the device in
    a step. Per-sample weights and margins go into one buffer preallocated for `capacity` samples
    (grown if needed), not into a list of per-step tensors.
    """

    KEYS = ("loss_sum", "correct", "count", "ess_sum", "batches", "cl_one", "cl_several", "misclassified",
            "w_correct", "w_wrong", "excluded")

    def __init__(self, device: torch.device, capacity: int = 0):
        self.device = device
        self._dev = torch.zeros(len(self.KEYS), dtype=torch.float64, device=device)
        self._host = [0.0] * len(self.KEYS)
        self._zero = torch.zeros((), dtype=torch.float64, device=device)
        self._samples = torch.empty(2, max(int(capacity), 0), device=device)  # weights, margins
        self._n = 0

    def add(self, **values: Tensor | float) -> None:
        if any(k not in self.KEYS for k in values):
            raise KeyError(f"unknown epoch statistics {sorted(set(values) - set(self.KEYS))}")
        dev = []
        for i, k in enumerate(self.KEYS):
            v = values.get(k)
            if isinstance(v, Tensor):
                dev.append(v)
            else:
                dev.append(self._zero)
                if v is not None:
                    self._host[i] += float(v)
        self._dev += torch.stack(dev)

    def add_samples(self, weights: Tensor, margins: Tensor) -> None:
        """Append this step's per-sample ω and margins (device copies into the preallocated buffer)."""
        b = weights.shape[0]
        if self._n + b > self._samples.shape[1]:
            grown = torch.empty(2, max(2 * self._samples.shape[1], self._n + b), device=self.device)
            grown[:, :self._n] = self._samples[:, :self._n]
            self._samples = grown
        self._samples[0, self._n:self._n + b] = weights
        self._samples[1, self._n:self._n + b] = margins
        self._n += b

    @property
    def sums(self) -> Tensor:
        """The KEYS sums as one float64 vector on the device (one host-to-device copy; read at epoch end)."""
        return self._dev + torch.tensor(self._host, dtype=torch.float64, device=self.device)

    @property
    def weights(self) -> Tensor:
        return self._samples[0, :self._n]

    @property
    def margins(self) -> Tensor:
        return self._samples[1, :self._n]

    def state(self) -> dict[str, Tensor]:
        return {"sums": self.sums.cpu(), "weights": self.weights.cpu(), "margins": self.margins.cpu()}

    def load(self, state: dict[str, Tensor]) -> None:
        sums = state["sums"].to(self.device, torch.float64)
        if sums.numel() < len(self.KEYS):  # a checkpoint of an earlier version: the statistics added since are 0
            sums = torch.cat([sums, sums.new_zeros(len(self.KEYS) - sums.numel())])
        self._dev = sums
        self._host = [0.0] * len(self.KEYS)
        self._n = 0
        w, m = state["weights"].to(self.device).float(), state["margins"].to(self.device).float()
        if w.numel():
            self.add_samples(w, m)


def epoch_line(epoch: int, lr: float, s: dict[str, float], w: Tensor, m: Tensor, margin: str, steps: int,
               reweight_active: bool, exclude: str = "none") -> dict[str, Any]:
    """metrics.jsonl's line for an epoch from the summed statistics `s` (EpochStats.KEYS) and all ranks'
    ω (`w`, float64) and margins (`m`): loss, training accuracy, the weight and margin statistics with
    histograms over the margin's own range, the confused-label counts, and (with reweight.exclude) how
    many examples left the loss."""
    log_margin = margin if margin != "none" else "pm_adv"
    lo, hi = MARGINS[log_margin].range(steps)
    n = max(s["count"], 1.0)
    w_hi = max(float(w.max()), 1.0) if w.numel() else 1.0
    line = {
        "epoch": epoch,
        "lr": lr,
        "loss": s["loss_sum"] / n,
        "train_acc": 100.0 * s["correct"] / n,
        "reweight_active": bool(reweight_active),
        "weights": {
            "mean": float(w.mean()) if w.numel() else 1.0,
            "std": float(w.std(unbiased=False)) if w.numel() else 0.0,
            "min": float(w.min()) if w.numel() else 1.0,
            "max": float(w.max()) if w.numel() else 1.0,
            "ess": s["ess_sum"] / max(s["batches"], 1e-12),
            # mean ω of training examples the model gets right / wrong under attack
            "mean_correct": s["w_correct"] / max(s["correct"], 1.0),
            "mean_misclassified": s["w_wrong"] / max(s["count"] - s["correct"], 1.0),
            "hist": torch.histc(w, HIST_BINS, 0.0, w_hi).tolist(),
            "hist_range": [0.0, w_hi],
        },
        "margin": {
            "name": log_margin,
            **{f"q{int(q * 100):02d}": float(torch.quantile(m, q)) if m.numel() else 0.0 for q in QUANTILES},
            "hist": torch.histc(m, HIST_BINS, lo, hi).tolist() if m.numel() else [0.0] * HIST_BINS,
            "hist_range": [lo, hi],
        },
        "confused": {"one": int(s["cl_one"]), "several": int(s["cl_several"]), "misclassified": int(s["misclassified"])},
    }
    if exclude != "none":
        line["excluded"] = int(s["excluded"])
    return line


def format_line(m: dict[str, Any]) -> str:
    s = f"epoch {m['epoch']:>3}  lr {m['lr']:.4g}  loss {m['loss']:.4f}  train-adv-acc {m['train_acc']:.2f}%"
    if "val" in m:
        s += f"  val nat {m['val']['nat']:.2f}%  pgd20 {m['val']['pgd20']:.2f}%"
    if m["reweight_active"]:
        s += f"  ω std {m['weights']['std']:.3f} ess {m['weights']['ess']:.1f}"
    return s + f"  {m['images_per_s']:.0f} img/s"
