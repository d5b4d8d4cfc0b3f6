"""`irat bench`: the cost floor of adversarial training, measured on the real code path."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import torch

from ..bench import QUICK_METHODS, BenchOptions, format_report, run_bench
from ..bench import __doc__ as bench_doc
from ..errors import IratError
from ..files import atomic_write_json


def _options(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchOptions)
                           if getattr(args, f.name, None) is not None})


def _command_line(args: argparse.Namespace) -> list[str]:
    """The options that differ from their defaults, as a command line (for the JSON's `command`)."""
    parser = getattr(args, "_bench_parser", None)
    if parser is None:
        return sys.argv[1:]
    words = ["bench"]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        value = getattr(args, action.dest, None)
        if value == action.default or value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            words.append(action.option_strings[0])
        elif isinstance(value, list):
            words += [action.option_strings[0], *map(str, value)]
        else:
            words += [action.option_strings[0], str(value)]
    return words


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise IratError("--device: cuda requested but CUDA is not available")
    out = run_bench(_options(args), _command_line(args))
    print(format_report(out))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, out)
        print(f"wrote {args.out}")
    return 0


def register(subparsers: Any) -> None:
    """Add `irat bench` to the CLI."""
    p = subparsers.add_parser("bench", help="measure the cost floor: clean / attack / AT / method steps, ratios",
                              description=bench_doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"a representative subset of methods ({', '.join(QUICK_METHODS)}), fewer rounds")
    p.add_argument("--out", help="write the results as JSON to this file")
    p.add_argument("--preset", default="fmnist-smallcnn", help="a family preset (default fmnist-smallcnn)")
    p.add_argument("--model", default="smallcnn")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    p.add_argument("--methods", default=None, help="comma list of methods (default: all, or the quick subset)")
    p.add_argument("--repeats", type=int, default=None, help="timing rounds (default 7, quick 2)")
    p.add_argument("--batches", type=int, default=None, help="fixed batches per timed item (default 2, quick 1)")
    p.add_argument("--epoch-images", type=int, default=None, help="images per throughput epoch (default 2048)")
    p.add_argument("--epoch-repeats", type=int, default=None, help="throughput epochs (default 3, quick 1)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before measuring")
    p.add_argument("--no-variants", action="store_true", help="skip the channels_last and thread comparisons")
    p.add_argument("--reference", action="store_true",
                   help="also run benchmarks/reference_loop.py on the same model and data (reference_ratio)")
    p.add_argument("--reference-workers", type=int, default=0, help="DataLoader workers of the reference loop")
    p.add_argument("--epochs", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE",
                   help="config overrides (repeatable), e.g. --set attack.steps=5 --set fast.amp=true")
    p.set_defaults(func=_cmd_bench, _bench_parser=p)

