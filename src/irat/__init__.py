"""irat: instance-reweighted adversarial training (MAIL, CLIRAT, GAIRAT, TRADES, MART, FAT, AWP)."""
from __future__ import annotations

__version__ = "0.1.0"

from .api import build_config, evaluate, evaluate_checkpoint, load_model, train  # noqa: E402

__all__ = ["__version__", "build_config", "evaluate", "evaluate_checkpoint", "load_model", "train"]
