"""What changes with the epoch besides the LR: FAT's τ, AWP's warm-up, and the constant-classifier check."""
from __future__ import annotations

import math

from ..config import Config


def fat_tau(cfg: Config, epoch: int) -> int | None:
    """FAT's τ for this epoch: grows by one at each of `fat.tau_epochs`. The default follows the FAT
    reference code, scaled to the run: τ = 0 for the first 50/120 of the epochs, 1 up to 90/120, then 2
    (epochs 1–50, 51–90, 91–120 of the 120-epoch run)."""
    if not cfg.fat.enabled:
        return None
    marks = cfg.fat.tau_epochs
    if marks is None:
        marks = [cfg.epochs * 50 // 120 + 1, cfg.epochs * 90 // 120 + 1]
    return min(cfg.fat.tau_max, sum(1 for m in marks if epoch >= m))


def stuck_at_constant(train_acc: float, loss: float, num_classes: int) -> bool:
    """The constant classifier: training accuracy within 2 points of 100/K and the loss within 5 % of
    ln K (what CE gives for near-uniform predictions). The trainer flags a run whose first two epochs both
    look like this: PGD-AT from scratch can stay there for good (seed 5 of the Fashion-MNIST grid did)."""
    return train_acc <= 100.0 / num_classes + 2.0 and abs(loss - math.log(num_classes)) <= 0.05 * math.log(num_classes)


def awp_active(cfg: Config, epoch: int) -> bool:
    """AWP perturbs the weights from epoch `awp.warmup + 1` on (1-indexed): warm-up N = N epochs of the
    plain objective. The AWP reference code's `epoch >= --awp-warmup` in its 1-indexed TRADES loop is
    warm-up 9 here (its default 10); its AT loop is 0-indexed with warm-up 0, which is warm-up 0 here."""
    return cfg.awp.enabled and epoch > cfg.awp.warmup
