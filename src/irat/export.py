"""`irat export CHECKPOINT --out model.pt`: a self-contained TorchScript model plus a RobustBench-style card.

model.pt loads with plain `torch.jit.load` (no irat import), is in eval mode and takes float32 NCHW
inputs in [0, 1] (RobustBench's layout; any normalization is inside the model) and returns logits.
`<out stem>.json` describes it in RobustBench's model-info fields, with the accuracies taken from the
run's eval.json when that report is for this very checkpoint (same sha256); otherwise they stay null.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, IratError
from .evaluation import format_eps
from .runs import RunDir, model_from_checkpoint, read_eval
from .checkpoint import load_checkpoint
from .files import atomic_write_bytes, atomic_write_json, sha256_file

ARCHITECTURES = {"smallcnn": "SmallCNN", "resnet18": "ResNet-18", "preact_resnet18": "PreActResNet-18"}
RB_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "fashion-mnist": "fashion-mnist", "svhn": "svhn"}


def _to_torchscript(model: nn.Module, example: torch.Tensor) -> tuple[torch.jit.ScriptModule, str]:
    """Script the model (keeps any control flow); fall back to tracing for code TorchScript cannot compile."""
    try:
        return torch.jit.script(model), "script"
    except Exception:  # noqa: BLE001 - e.g. unsupported Python constructs: tracing is exact for these nets
        with torch.no_grad():
            return torch.jit.trace(model, example, check_trace=True), "trace"


def _read_eval(path: Path, explicit: bool) -> dict[str, Any] | None:
    if not path.is_file():
        if explicit:
            raise IratError(f"--eval: {path}: file not found")
        return None
    report = read_eval(path)
    if report is None or not isinstance(report.get("accuracy"), dict):
        raise IratError(f"--eval: {path}: not a readable eval.json (a JSON object with an 'accuracy' table)")
    return report


def _architecture(m: Any) -> str:
    if m.name.startswith("wrn"):
        parts = m.name.split("-")
        depth = m.depth or (int(parts[1]) if len(parts) == 3 else 28)
        width = m.width or (int(parts[2]) if len(parts) == 3 else 10)
        return f"WideResNet-{depth}-{width}"
    return ARCHITECTURES.get(m.name, m.name)


def _fmt_acc(v: Any) -> str | None:
    return None if v is None else f"{float(v):.2f}"


def model_card(ckpt: dict[str, Any], cfg: Any, sha256: str, ckpt_path: Path, model_file: Path,
               how: str, report: dict[str, Any] | None, eval_path: Path | None) -> dict[str, Any]:
    """RobustBench's model-info fields, plus an `irat` section with the provenance."""
    eps = float(cfg.attack.eps)
    h, w = (int(v) for v in ckpt.get("image_size", (0, 0)))
    acc: dict[str, Any] = {}
    note = "no eval.json for this run: run `irat eval` first to fill the accuracies"
    flags_raised: list[str] = []
    ev_info: dict[str, Any] = {}
    if report is not None:
        stored = (report.get("checkpoint") or {}).get("sha256")
        if stored is not None and stored != sha256:
            note = (f"{eval_path} evaluates another checkpoint ({(report.get('checkpoint') or {}).get('path')}); "
                    "accuracies left empty")
            report = None
    if report is not None:
        acc = dict(report["accuracy"])
        eps = float(report.get("eps", eps))
        flags = report.get("flags") or {}
        flags_raised = [k for k, v in flags.items() if isinstance(v, dict) and v.get("flag")]
        data = report.get("data") or {}
        attacks = report.get("attacks") or {}
        ev_info = {"eval_json": str(eval_path), "protocol": (report.get("protocol") or {}).get("name"),
                   "n_examples": data.get("n_examples"), "accuracy": acc, "order": report.get("order"),
                   "aa_examples": (attacks.get("aa") or {}).get("n_examples"),
                   "cascade": (report.get("cascade") or {}).get("attacks")}
        if "aa" in acc:
            note = (f"AutoAttack (standard) on {ev_info['aa_examples']} test examples; robust accuracy is the "
                    f"per-example worst case over {', '.join(report.get('order') or [])}")
        else:
            note = (f"AutoAttack was not run; robust_acc is the per-example worst case over "
                    f"{', '.join(report.get('order') or [])}, an upper bound of AutoAttack accuracy")
    arch = _architecture(cfg.model)
    card: dict[str, Any] = {
        "link": "",
        "name": f"irat {cfg.method} ({cfg.data.name}, {arch})",
        "authors": "",
        "additional_data": False,
        "number_forward_passes": 1,
        "dataset": RB_DATASETS.get(cfg.data.name, cfg.data.name),
        "venue": "",
        "architecture": arch,
        "threat_model": "Linf",
        "eps": format_eps(eps),
        "clean_acc": _fmt_acc(acc.get("nat")),
        "reported": None,
        "autoattack_acc": _fmt_acc(acc.get("aa")),
        "robust_acc": _fmt_acc(acc.get("worst")),
        "footnote": note,
        "unreliable": bool(flags_raised),
        "irat": {
            "model_file": model_file.name,
            "torchscript": how,
            "input": f"float32 NCHW in [0, 1], {int(ckpt['in_channels'])}x{h}x{w}; normalization is inside the model",
            "output": f"logits over {int(ckpt['num_classes'])} classes",
            "classes": list(ckpt.get("classes") or []),
            "checkpoint": str(ckpt_path),
            "checkpoint_sha256": sha256,
            "epoch": int(ckpt.get("epoch", 0)),
            "method": cfg.method,
            "training_eps": float(cfg.attack.eps),
            "flags_raised": flags_raised,
            **ev_info,
        },
    }
    return card


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None,
                      eval_json: str | Path | None = None) -> dict[str, Path]:
    """Write `out` (TorchScript) and `<out stem>.json` (model card); returns their paths.

    The exported module's logits are checked against the irat model on a random batch before returning.
    """

    ckpt_path = Path(checkpoint)
    out_path = Path(out) if out is not None else RunDir.of_checkpoint(ckpt_path).exported
    if out_path.suffix == ".json":
        raise ConfigError("--out", "a model file path not ending in .json (the card goes to <stem>.json)",
                          str(out_path))
    if out_path.exists() and out_path.is_dir():
        raise ConfigError("--out", "a file path, not a directory", str(out_path))
    ckpt = load_checkpoint(ckpt_path)
    model, cfg = model_from_checkpoint(ckpt, ckpt_path)
    model = model.float().cpu().eval()
    ev_path = Path(eval_json) if eval_json is not None else RunDir.of_checkpoint(ckpt_path).eval_json
    report = _read_eval(ev_path, explicit=eval_json is not None)

    h, w = (int(v) for v in ckpt.get("image_size", (32, 32)))
    c = int(ckpt["in_channels"])
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(2, c, h, w, generator=gen)
    for p in model.parameters():
        p.requires_grad_(False)
    meta = {"format": "irat-torchscript-v1", "input": "float32 NCHW in [0, 1]", "num_classes": int(ckpt["num_classes"]),
            "in_channels": c, "image_size": [h, w], "method": cfg.method, "checkpoint_sha256": sha256_file(ckpt_path)}
    with warnings.catch_warnings():  # TorchScript is deprecated (torch.export), yet it is what loads anywhere
        warnings.simplefilter("ignore", FutureWarning)
        scripted, how = _to_torchscript(model, example)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf, _extra_files={"irat.json": json.dumps(meta)})
        data = buf.getvalue()
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")

    # the file must reproduce the model (another batch size than the example: the batch dimension is free)
    check = torch.rand(3, c, h, w, generator=gen)
    with torch.no_grad():
        ref, got = model(check), loaded(check)
    if ref.shape != got.shape or not torch.allclose(ref, got, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"export: the TorchScript module ({how}) does not reproduce the model's logits")

    atomic_write_bytes(out_path, data)
    card_path = out_path.with_suffix(".json")
    atomic_write_json(card_path, model_card(ckpt, cfg, meta["checkpoint_sha256"], ckpt_path, out_path, how, report,
                                            ev_path if report is not None else None))
    return {"model": out_path, "card": card_path}


__all__ = ["export_checkpoint", "model_card"]
