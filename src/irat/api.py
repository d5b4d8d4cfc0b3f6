"""The Python API: the same lookups the CLI uses, in a few calls.

    cfg = irat.build_config("fmnist-quickstart", overrides=["method=mail-at", "epochs=4"])
    run = irat.train(cfg, "runs/demo")
    report = irat.evaluate_checkpoint(run.checkpoint, attacks=["nat", "pgd20"])
    model = irat.load_model(run.checkpoint)
"""
from __future__ import annotations

from .config import build_config
from .evaluation import evaluate, evaluate_checkpoint
from .runs import load_model, model_from_checkpoint
from .training import train

__all__ = ["build_config", "evaluate", "evaluate_checkpoint", "load_model", "model_from_checkpoint", "train"]
