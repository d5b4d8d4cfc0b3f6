"""`irat export CHECKPOINT [--out DIR | FILE] [--torchscript]`: a torch.export program, safetensors weights
and a RobustBench-style card."""
from __future__ import annotations

from typing import Any

from ..export import export_checkpoint

WRITTEN = {"program": "torch.export program: torch.export.load(path).module(), [0, 1] NCHW inputs",
           "weights": "safetensors weights and config: irat.load_model(path)",
           "torchscript": "TorchScript: torch.jit.load(path)",
           "card": "RobustBench-style model card"}


def _cmd_export(args: Any) -> int:
    paths = export_checkpoint(args.checkpoint, args.out, args.eval, torchscript=args.torchscript,
                              weights="raw" if args.raw_weights else "auto")
    for role, path in paths.items():
        print(f"written: {path} ({WRITTEN[role]})")
    return 0


def register(subparsers: Any) -> None:
    """Add `irat export CHECKPOINT --out DIR` to the CLI."""
    e = subparsers.add_parser("export", help="export a checkpoint as a torch.export program + safetensors weights "
                                             "+ model card",
                              description="Write model.pt2 (a torch.export program: torch.export.load, dynamic "
                                          "batch, float32 NCHW inputs in [0, 1]), model.safetensors (the weights, "
                                          "with the config that rebuilds the network: irat.load_model) and a "
                                          "RobustBench-style model.json filled from the run's eval.json when it "
                                          "evaluates this checkpoint. Nothing in them is loaded by unpickling code.")
    e.add_argument("checkpoint")
    e.add_argument("--out", default=None,
                   help="a folder for model.pt2, model.safetensors, model.json, or a file path whose stem names "
                        "them, e.g. exports/at.pt2 (default: the run directory)")
    e.add_argument("--eval", default=None, help="eval.json to take the accuracies from (default: <run dir>/eval.json)")
    e.add_argument("--raw-weights", action="store_true",
                   help="export the trained weights, not the EMA weights a run with ema.enabled kept")
    e.add_argument("--torchscript", action="store_true",
                   help="also write model.pt, a TorchScript module (torch.jit.load; deprecated since torch 2.14) "
                        "for RobustBench-style tools that still need it")
    e.set_defaults(func=_cmd_export)
