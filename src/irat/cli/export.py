"""`irat export CHECKPOINT --out model.pt`: a self-contained model plus a RobustBench-style card."""
from __future__ import annotations

from typing import Any

from ..export import export_checkpoint


def _cmd_export(args: Any) -> int:
    paths = export_checkpoint(args.checkpoint, args.out, args.eval)
    print(f"written: {paths['model']} (TorchScript; torch.jit.load, [0, 1] NCHW inputs)")
    print(f"written: {paths['card']} (RobustBench-style model card)")
    return 0


def register(subparsers: Any) -> None:
    """Add `irat export CHECKPOINT --out model.pt` to the CLI."""
    e = subparsers.add_parser("export", help="export a checkpoint as a self-contained TorchScript model + model card",
                              description="Write a TorchScript model (loads with plain torch.jit.load; float32 NCHW "
                                          "inputs in [0, 1]) and a RobustBench-style <out stem>.json filled from "
                                          "the run's eval.json when it evaluates this checkpoint.")
    e.add_argument("checkpoint")
    e.add_argument("--out", default=None, help="model file (default: <run dir>/model.pt)")
    e.add_argument("--eval", default=None, help="eval.json to take the accuracies from (default: <run dir>/eval.json)")
    e.set_defaults(func=_cmd_export)



