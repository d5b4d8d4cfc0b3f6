"""The run directory, written down once, and what is read back from it.

    RUN/config.yaml                  the resolved config, written when the run starts
    RUN/metrics.jsonl                one JSON line per finished epoch
    RUN/checkpoints/last.pt          everything the future depends on (resume, eval, export)
    RUN/checkpoints/best.pt          the best validation PGD-20 epoch (never chosen on the test set)
    RUN/checkpoints/epoch-NNN.pt     kept checkpoints (keep_epochs, keep_every), and their
    RUN/checkpoints/epoch-NNN.eval.json (+ .eval.md, .eval_examples.json)    from `irat eval RUN`
    RUN/eval.json, eval.md, eval_examples.json     `irat eval` of the run's checkpoint
    RUN/tensorboard/                 TensorBoard event files (the metrics.jsonl scalars and histograms)
    RUN/model.pt2, model.safetensors, model.json (+ model.pt with --torchscript)     `irat export`

A checkpoint's run directory is the folder above its `checkpoints/`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import load_checkpoint, load_state_checked
from .config import Config, config_from_dict
from .errors import ConfigError
from .models import model_from_config


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> "RunDir":
        return cls(Path(checkpoint).parent.parent)

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, name: str = "last") -> Path:
        """checkpoints/<name>.pt: "last" or "best"."""
        return self.checkpoints / f"{name}.pt"

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    def kept(self, epoch: int) -> Path:
        """checkpoints/epoch-NNN.pt: a checkpoint kept for `epoch` (config keep_epochs / keep_every)."""
        return self.checkpoints / f"epoch-{epoch:03d}.pt"

    def kept_checkpoints(self) -> list[Path]:
        """The kept checkpoints, in epoch order."""
        return sorted(self.checkpoints.glob("epoch-[0-9][0-9][0-9].pt"))

    @staticmethod
    def kept_eval(checkpoint: Path) -> Path:
        """Where `irat eval RUN` stores a kept checkpoint's results: checkpoints/epoch-NNN.eval.json."""
        return checkpoint.with_suffix(".eval.json")

    @property
    def eval_json(self) -> Path:
        return self.path / "eval.json"

    @property
    def exported(self) -> Path:
        """`irat export`'s default: the run directory, whose model.* files it writes."""
        return self.path

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"


def eval_files(eval_json: str | Path) -> dict[str, Path]:
    """eval.json and the two files written beside it: FILE.json, FILE.md, FILE_examples.json."""
    p = Path(eval_json)
    return {"json": p, "markdown": p.with_suffix(".md"), "examples": p.with_name(p.stem + "_examples.json")}


def read_eval(path: str | Path) -> dict[str, Any] | None:
    """The report an eval.json holds; None if the file is missing or is not a JSON object."""
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def read_eval_examples(path: str | Path, report: dict[str, Any]) -> dict[str, Any] | None:
    """The per-example results beside an eval.json (the name it records, else FILE_examples.json)."""
    p = Path(path)
    files = report.get("files")
    name = files.get("examples") if isinstance(files, dict) else None
    examples = read_eval(p.parent / name) if isinstance(name, str) else read_eval(eval_files(p)["examples"])
    return examples


WEIGHTS = ("auto", "ema", "raw")


def checkpoint_weights(ckpt: dict[str, Any], weights: str = "auto") -> tuple[dict[str, torch.Tensor], str]:
    """The state dict to use and its name: "ema" (the weight average, when the run kept one: the default
    of "auto") or "raw" (the trained weights themselves)."""
    if weights not in WEIGHTS:
        raise ConfigError("weights", f"one of: {', '.join(WEIGHTS)}", weights)
    ema = ckpt.get("ema")
    if weights == "ema" and not ema:
        raise ConfigError("weights", "raw or auto: this checkpoint holds no EMA weights (ema.enabled was false)",
                          weights)
    if ema and weights != "raw":
        return ema["model"], "ema"
    return ckpt["model"], "raw"


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path,
                          weights: str = "auto") -> tuple[nn.Module, Config]:
    """The network a loaded checkpoint describes, with its weights (EMA when kept, see checkpoint_weights),
    in eval mode, and its config."""
    cfg = config_from_dict(ckpt["config"])
    size = tuple(ckpt.get("image_size", (32, 32)))
    model = model_from_config(cfg, int(ckpt["num_classes"]), int(ckpt["in_channels"]), size)  # type: ignore[arg-type]
    load_state_checked(model, checkpoint_weights(ckpt, weights)[0], path)
    return model.eval(), cfg


def load_model(path: str | Path, device: str | torch.device = "cpu", weights: str = "auto") -> nn.Module:
    """The trained network of an irat checkpoint (EMA weights when the run kept them, unless
    weights="raw"), in eval mode, taking [0, 1] inputs (NCHW)."""
    model, _ = model_from_checkpoint(load_checkpoint(path), path, weights)
    return model.to(device).eval()


__all__ = ["WEIGHTS", "RunDir", "checkpoint_weights", "eval_files", "load_model", "model_from_checkpoint", "read_eval", "read_eval_examples"]
