"""`irat train | eval | presets | methods | …` — the command-line contract.

Bad input (IratError) prints one line `irat: error: …` and exits with code 2, before anything is
written. Each further command lives in its own module with `register(subparsers)`; the module sets
`func` on its parser.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .errors import IratError

# modules that add their own sub-command: each has register(subparsers)
_EXTENSIONS: tuple[str, ...] = ()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise IratError(f"{self.prog}: {message}")


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config
    from .train import Interrupted, train

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
    from .distributed import is_main
    if is_main():
        print(f"run directory: {result.out_dir}")
        if "val" in last:
            print(f"final validation: nat {last['val']['nat']:.2f}%  pgd20 {last['val']['pgd20']:.2f}%")
        print(f"checkpoint: {result.checkpoint}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_checkpoint

    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()] if args.attacks else None
    report = evaluate_checkpoint(args.checkpoint, attacks=attacks, eps=args.eps, n_examples=args.n_examples,
                                 batch_size=args.batch_size, seed=args.seed, device=args.device, out=args.out)
    for name, value in report["accuracy"].items():
        print(f"{name:>8}: {value:6.2f}%")
    print(f"written: {report['path']}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from .config import preset_descriptions

    descs = preset_descriptions()
    width = max(map(len, descs), default=0)
    for name, desc in descs.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS, describe

    width = max(map(len, METHODS))
    for name in METHODS:
        print(f"{name:<{width}}  {describe(name)}")
    print(f"{'custom':<{width}}  any combination via objective, reweight.margin, reweight.weighting, "
          "reweight.gamma/beta/norm/from_epoch")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="irat", description="Instance-reweighted adversarial training and robustness evaluation.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (AT, TRADES, MART, FAT, AWP, GAIRAT, MAIL, CLIRAT, …)")
    t.add_argument("--preset", help="a preset name (see `irat presets`)")
    t.add_argument("--config", help="a YAML config file")
    t.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override config keys, e.g. attack.eps=0.1")
    t.add_argument("--out", help="run directory (default runs/<preset>-<method>-seed<seed>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint under attacks")
    e.add_argument("checkpoint")
    e.add_argument("--attacks", default="nat,pgd20", help="comma list of attack names")
    e.add_argument("--eps", type=float, default=None, help="L∞ radius (default: the checkpoint's training ε)")
    e.add_argument("--n-examples", type=int, default=None, help="the first N test examples")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto")
    e.add_argument("--out", default=None, help="eval.json path (default: beside the run directory)")
    e.set_defaults(func=_cmd_eval)

    sub.add_parser("presets", help="list the presets").set_defaults(func=_cmd_presets)
    sub.add_parser("methods", help="list the methods and their composition").set_defaults(func=_cmd_methods)

    for mod in _EXTENSIONS:
        importlib.import_module(f"irat.{mod}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = args.func(args)
    except IratError as e:
        msg = str(e).replace("\n", " ")
        print(f"irat: error: {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("irat: interrupted", file=sys.stderr)
        return 130
    finally:
        from .distributed import shutdown
        shutdown()
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
