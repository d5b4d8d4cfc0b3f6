"""`irat export CHECKPOINT [--out DIR | FILE] [--torchscript]`: the trained network in current formats
plus a RobustBench-style model card.

The files sit side by side, named after --out (default RUN/model.*):

    model.pt2          a torch.export program (torch.export.save): `torch.export.load(path).module()` runs it
                       with plain torch, at any batch size (the batch dimension is dynamic)
    model.safetensors  the weights (safetensors: no pickle), with the config, classes and image size that
                       rebuild the network in the file's metadata: `irat.load_model(path)`
    model.json         RobustBench's model-info fields, the files with their sha256 and the provenance
    model.pt           with --torchscript only: TorchScript (torch.jit.load), deprecated since torch 2.14,
                       for tools that still want it

Each model takes float32 NCHW inputs in [0, 1] (any normalization is inside the model) in eval mode and
returns logits; each file is loaded back and checked against the checkpoint's model before the card is
written. The card's accuracies come from the run's eval.json when that report is for this very
checkpoint (same sha256); otherwise they stay null.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import IratError
from .evaluation import format_eps
from .runs import RunDir, checkpoint_weights, load_model, model_from_checkpoint, read_eval
from .checkpoint import load_checkpoint, weights_file
from .files import atomic_write_bytes, atomic_write_json, sha256_file

ARCHITECTURES = {"smallcnn": "SmallCNN", "resnet18": "ResNet-18", "preact_resnet18": "PreActResNet-18"}
RB_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "fashion-mnist": "fashion-mnist", "svhn": "svhn"}
# the files of one export, by role, and how each loads
SUFFIXES = {"program": ".pt2", "weights": ".safetensors", "torchscript": ".pt", "card": ".json"}
LOADERS = {"program": "torch.export.load(path).module()", "weights": "irat.load_model(path) (safetensors)",
           "torchscript": "torch.jit.load(path)"}


def export_paths(out: str | Path) -> dict[str, Path]:
    """The files `out` names: a directory (an existing one, or a path without one of SUFFIXES) holds
    model.pt2, model.safetensors, model.json and model.pt; a file path names them after its stem."""
    out = Path(out)
    stem = out / "model" if out.is_dir() or out.suffix not in SUFFIXES.values() else out.with_suffix("")
    return {role: stem.with_name(stem.name + suffix) for role, suffix in SUFFIXES.items()}


def _program(model: nn.Module, example: torch.Tensor) -> bytes:
    """torch.export of the eval-mode model with a dynamic batch dimension, as torch.export.save writes it."""
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def _torchscript(model: nn.Module, example: torch.Tensor) -> tuple[bytes, str]:
    """Script the model (keeps any control flow); fall back to tracing for code TorchScript cannot compile."""
    with warnings.catch_warnings():  # TorchScript is deprecated (torch.export): kept behind --torchscript
        warnings.simplefilter("ignore", FutureWarning)
        try:
            scripted, how = torch.jit.script(model), "script"
        except Exception:  # noqa: BLE001 - e.g. unsupported Python constructs: tracing is exact for these nets
            with torch.no_grad():
                scripted, how = torch.jit.trace(model, example, check_trace=True), "trace"
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
    return buf.getvalue(), how


def _load(role: str, path: Path) -> nn.Module:
    """An exported file loaded back the way its users load it."""
    if role == "program":
        return torch.export.load(str(path)).module()
    if role == "weights":
        return load_model(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


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


def model_card(ckpt: dict[str, Any], cfg: Any, sha256: str, ckpt_path: Path, files: dict[str, dict[str, str]],
               how: str | None, report: dict[str, Any] | None, eval_path: Path | None,
               weights: str = "raw") -> dict[str, Any]:
    """RobustBench's model-info fields, plus an `irat` section with the files and the provenance.

    `files`: role -> {"file": name, "sha256": …, "load": how to load it}; `how`: script or trace when a
    TorchScript file was written."""
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
        elif (report.get("checkpoint") or {}).get("weights", "raw") != weights:
            note = (f"{eval_path} evaluates the {(report.get('checkpoint') or {}).get('weights', 'raw')} weights, "
                    f"this export the {weights} ones; accuracies left empty")
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
            "model_file": files["program"]["file"],
            "weights": weights,
            "files": files,
            "torchscript": how,
            "model": dataclasses.asdict(cfg.model),
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


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, eval_json: str | Path | None = None,
                      torchscript: bool = False, weights: str = "auto") -> dict[str, Path]:
    """Write the torch.export program, the safetensors weights, (with `torchscript`) the TorchScript
    model, then the card; returns their paths by role (program, weights, torchscript, card). `weights`:
    "auto" exports the EMA weights when the run kept them, "raw" the trained ones.

    Each file is loaded back and must give the checkpoint model's logits on a random batch of another
    size than the export's example (atol 1e-5) before the card is written."""
    ckpt_path = Path(checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    ev_path = Path(eval_json) if eval_json is not None else RunDir.of_checkpoint(ckpt_path).eval_json
    report = _read_eval(ev_path, explicit=eval_json is not None)
    paths = export_paths(out if out is not None else RunDir.of_checkpoint(ckpt_path).exported)
    if not torchscript:
        del paths["torchscript"]
    folder = paths["card"].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise IratError(f"--out: cannot create the folder {folder} ({e.strerror or type(e).__name__})") from None
    model, cfg = model_from_checkpoint(ckpt, ckpt_path, weights)
    used = checkpoint_weights(ckpt, weights)[1]
    model = model.float().cpu().eval()
    for p in model.parameters():
        p.requires_grad_(False)

    h, w = (int(v) for v in ckpt.get("image_size", (32, 32)))
    c = int(ckpt["in_channels"])
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(2, c, h, w, generator=gen)
    data = {"program": _program(model, example), "weights": weights_file(ckpt, model.state_dict())}
    how = None
    if torchscript:
        data["torchscript"], how = _torchscript(model, example)
    for role, blob in data.items():
        atomic_write_bytes(paths[role], blob)

    # the files must reproduce the model (another batch size than the example: the batch dimension is free)
    check = torch.rand(3, c, h, w, generator=gen)
    with torch.no_grad():
        ref = model(check)
        for role in data:
            got = _load(role, paths[role])(check)
            if ref.shape != got.shape or not torch.allclose(ref, got, rtol=1e-4, atol=1e-5):
                raise RuntimeError(f"export: {paths[role]} does not reproduce the model's logits")

    files = {role: {"file": paths[role].name, "sha256": hashlib.sha256(blob).hexdigest(), "load": LOADERS[role]}
             for role, blob in data.items()}
    atomic_write_json(paths["card"], model_card(ckpt, cfg, sha256_file(ckpt_path), ckpt_path, files, how, report,
                                                ev_path if report is not None else None, used))
    return paths


__all__ = ["export_checkpoint", "export_paths", "model_card"]
