"""Training: the loop (setup and resume before it) and the epoch statistics."""
from __future__ import annotations

from .ema import EMA
from .stats import EpochStats
from .trainer import Interrupted, RunResult, Trainer, awp_active, fat_tau, train

__all__ = ["EMA", "EpochStats", "Interrupted", "RunResult", "Trainer", "awp_active", "fat_tau", "train"]
