"""The Python API: the same lookups the CLI uses, in a few calls.

    cfg = irat.build_config("fmnist-quickstart", overrides=["method=mail-at", "epochs=4"])
    run = irat.train(cfg, "runs/demo")
    report = irat.evaluate_checkpoint(run.checkpoint, attacks=["nat", "pgd20"])
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint, load_state_checked
from .config import Config, build_config, config_from_dict
from .models import model_from_config


def train(cfg: Config, out_dir: str | Path, **kwargs: Any):
    """Train `cfg` into the run directory `out_dir`; see `irat.trainer.train`."""
    from .trainer import train as _train

    return _train(cfg, out_dir, **kwargs)


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path) -> tuple[nn.Module, Config]:
    cfg = config_from_dict(ckpt["config"])
    size = tuple(ckpt.get("image_size", (32, 32)))
    model = model_from_config(cfg, int(ckpt["num_classes"]), int(ckpt["in_channels"]), size)  # type: ignore[arg-type]
    load_state_checked(model, ckpt["model"], path)
    return model.eval(), cfg


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The trained network of an irat checkpoint, in eval mode, taking [0, 1] inputs (NCHW)."""
    ckpt = load_checkpoint(path)
    model, _ = model_from_checkpoint(ckpt, path)
    return model.to(device).eval()


def evaluate_checkpoint(path: str | Path, **kwargs: Any):
    """Evaluate a checkpoint on its data set's test split; see `irat.evaluation.evaluate_checkpoint`."""
    from .evaluation import evaluate_checkpoint as _eval

    return _eval(path, **kwargs)


def evaluate(model: nn.Module, dataset: Any, attacks: Any = None, **kwargs: Any):
    """Evaluate a model under attacks (per-example worst case, flags); see `irat.evaluation.evaluate`."""
    from .evaluation import evaluate as _evaluate

    return _evaluate(model, dataset, attacks, **kwargs)


__all__ = ["build_config", "evaluate", "evaluate_checkpoint", "load_model", "model_from_checkpoint", "train"]
