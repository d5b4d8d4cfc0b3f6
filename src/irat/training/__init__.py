"""Training: the loop (setup and resume before it) and the epoch statistics."""
from __future__ import annotations

from .stats import EpochStats
from .trainer import Interrupted, RunResult, Trainer, awp_active, fat_tau, train

__all__ = ["EpochStats", "Interrupted", "RunResult", "Trainer", "awp_active", "fat_tau", "train"]
