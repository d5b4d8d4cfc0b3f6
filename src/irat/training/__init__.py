"""Training: the loop (setup and resume before it) and the epoch statistics."""
from __future__ import annotations

from .ema import EMA
from .stats import EpochStats
from .epochs import awp_active, fat_tau, stuck_at_constant
from .trainer import Interrupted, RunResult, Trainer, train

__all__ = ["EMA", "EpochStats", "Interrupted", "RunResult", "Trainer", "awp_active", "fat_tau", "stuck_at_constant", "train"]
