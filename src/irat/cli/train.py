"""`irat train`, `irat presets`, `irat methods`."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config import build_config
from ..presets import preset_descriptions
from ..distributed import is_main
from ..errors import IratError
from ..methods import METHODS, describe
from ..training import Interrupted, train


def _cmd_train(args: argparse.Namespace) -> int:
    if args.resume:
        if args.out is None:
            raise IratError("--out: the run directory to resume is required with --resume")
        cfg = build_config(None, None, [])  # the stored config is used; this is only a placeholder
    else:
        if (args.preset is None) == (args.config is None):
            raise IratError("--preset/--config: give exactly one (see `irat presets`)")
        cfg = build_config(args.preset, args.config, args.set or [])
    out = args.out or f"runs/{(args.preset or 'run')}-{cfg.method}-seed{cfg.seed}"
    try:
        result = train(cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                       device=args.device)
    except Interrupted as e:
        print(f"irat: {e}", file=sys.stderr)
        return e.code
    last = result.metrics[-1] if result.metrics else {}
    if is_main():
        print(f"run directory: {result.out_dir}")
        if "val" in last:
            print(f"final validation: nat {last['val']['nat']:.2f}%  pgd20 {last['val']['pgd20']:.2f}%")
        print(f"checkpoint: {result.checkpoint}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    descs = preset_descriptions()
    width = max(map(len, descs), default=0)
    for name, desc in descs.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    width = max(map(len, METHODS))
    for name in METHODS:
        print(f"{name:<{width}}  {describe(name)}")
    print(f"{'custom':<{width}}  any combination via objective, reweight.margin, reweight.weighting, "
          "reweight.gamma/beta/norm/from_epoch")
    return 0


def register(sub: Any) -> None:
    """Add `irat train`, `irat presets` and `irat methods` to the CLI."""
    t = sub.add_parser("train", help="train a model (AT, TRADES, MART, FAT, AWP, GAIRAT, MAIL, CLIRAT, …)")
    t.add_argument("--preset", help="a preset name (see `irat presets`)")
    t.add_argument("--config", help="a YAML config file")
    t.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE",
                   help="override config keys (repeatable; each flag takes one or more), e.g. --set attack.eps=0.1 "
                        "--set seed=1")
    t.add_argument("--out", help="run directory (default runs/<preset>-<method>-seed<seed>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)
    sub.add_parser("presets", help="list the presets").set_defaults(func=_cmd_presets)
    sub.add_parser("methods", help="list the methods and their composition").set_defaults(func=_cmd_methods)
