"""Per-epoch training statistics, accumulated on the device and read back once per epoch."""
from __future__ import annotations

import torch
from torch import Tensor

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
            "w_correct", "w_wrong")

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
        self._dev = state["sums"].to(self.device, torch.float64)
        self._host = [0.0] * len(self.KEYS)
        self._n = 0
        w, m = state["weights"].to(self.device).float(), state["margins"].to(self.device).float()
        if w.numel():
            self.add_samples(w, m)
