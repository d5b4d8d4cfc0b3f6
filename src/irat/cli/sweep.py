"""`irat sweep`: a grid of ordinary runs (methods × seeds × --grid overrides), trained and evaluated."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, IratError
from ..sweep import SweepSpec, cell_command, cell_state, parse_grid, run_sweep, split_values, validate_spec
from ..sweep import __doc__ as sweep_doc
from ..evaluation import parse_limits
from ..training import Interrupted


def _int_list(raw: str, what: str) -> list[int]:
    try:
        return [int(v) for v in split_values(raw)]
    except ValueError:
        raise ConfigError(what, "a comma list of integers", raw) from None


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    attacks = [a.strip() for a in args.eval.split(",") if a.strip()] if args.eval else None
    return SweepSpec(
        out=Path(args.out), methods=split_values(args.methods), seeds=_int_list(args.seeds, "--seeds"),
        preset=args.preset, config_file=args.config, grid=parse_grid(args.grid or []), sets=list(args.set or []),
        eval_attacks=attacks, eval_examples=args.eval_examples,
        eval_limits=parse_limits(args.eval_limit, "--eval-limit"), eval_batch_size=args.eval_batch_size,
        eval_checkpoint=args.eval_checkpoint)


def _cmd_sweep(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    only = _int_list(args.cell, "--cell") if args.cell is not None else None
    if args.print_commands:
        if not args.dry_run:
            raise IratError("--print-commands: only with --dry-run")
        validate_spec(spec)
        cells = spec.cells()
        chosen = [cells[i] for i in only] if only is not None else cells
        for c in chosen:
            print(cell_command(spec, cell_state(spec, c), args.device))
        return 0
    try:
        results = run_sweep(spec, dry_run=args.dry_run, only=only, progress=not args.quiet, device=args.device)
    except Interrupted as e:
        print(f"irat: {e}; re-run the same command to resume", file=sys.stderr)
        return e.code
    if not args.dry_run:
        n_train = sum(r.trained for r in results)
        n_eval = sum(r.evaluated for r in results)
        print(f"sweep {spec.out}: {len(results)} cells, {n_train} trained, {n_eval} evaluated, "
              f"{len(results) - sum(r.trained or r.evaluated for r in results)} already done")
    return 0


def register(subparsers: Any) -> None:
    """Add `irat sweep` to the CLI."""
    p = subparsers.add_parser(
        "sweep", help="train (and evaluate) a grid: methods × seeds × --grid overrides; re-runs resume",
        description=sweep_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="a preset name (see `irat presets`)")
    p.add_argument("--config", help="a YAML config file")
    p.add_argument("--methods", required=True, help="comma list of methods, e.g. at,mail-at,clirat")
    p.add_argument("--seeds", default="0", help="comma list of seeds (default 0)")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,…",
                   help="a config key to vary (repeatable; cells are the product), e.g. reweight.gamma=2,5,10")
    p.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE",
                   help="overrides common to all cells (repeatable)")
    p.add_argument("--out", required=True, help="the sweep directory")
    p.add_argument("--eval", default=None, metavar="ATTACKS",
                   help="after training, evaluate each cell into <cell>/eval.json, e.g. nat,pgd20,cw")
    p.add_argument("--eval-examples", type=int, default=None, help="the first N test examples")
    p.add_argument("--eval-limit", action="append", metavar="ATTACK=N",
                   help="run ATTACK on only the first N test examples (repeatable), e.g. --eval-limit aa=2000")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--eval-checkpoint", choices=["last", "best"], default="last")
    p.add_argument("--cell", default=None, metavar="I[,J…]", help="run only these cells (0-based, see --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and their state; run nothing")
    p.add_argument("--print-commands", action="store_true",
                   help="with --dry-run: one shell line per cell (irat train … && irat eval …)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)
