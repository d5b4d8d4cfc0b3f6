"""`irat train | eval | presets | methods | …` — the command-line contract.

Bad input (IratError) prints one line `irat: error: …` and exits with code 2, before anything is
written. Each further command lives in its own module with `register(subparsers)`; the module sets
`func` on its parser.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from .errors import IratError

# modules that add their own sub-command: each has register(subparsers)
_EXTENSIONS: tuple[str, ...] = ("sweep", "report", "analysis", "export", "bench")


class _StoreOnce(argparse._StoreAction):
    """A single-valued option given twice is an error, not a silent 'the last one wins'."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        seen = namespace.__dict__.setdefault("_given", {})
        if self.dest in seen:
            raise IratError(f"{option_string}: given twice ({seen[self.dest]!r} and {values!r}); give it once")
        seen[self.dest] = values
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    """One-line errors (exit 2). Repeating a single-valued option is refused; options that take a list
    (`--set`, `--limit`, `--grid`, …) declare `action="extend"` or `"append"` and collect every flag."""

    def error(self, message: str) -> None:  # one line, exit 2
        raise IratError(f"{self.prog}: {message}")

    def add_argument(self, *args, **kwargs):  # type: ignore[override]
        if args and str(args[0]).startswith("-") and kwargs.get("action") in (None, "store") \
                and kwargs.get("nargs") is None:
            kwargs["action"] = _StoreOnce
        return super().add_argument(*args, **kwargs)


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import build_config
    from .trainer import Interrupted, train

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
    t.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE",
                   help="override config keys (repeatable; each flag takes one or more), e.g. --set attack.eps=0.1 "
                        "--set seed=1")
    t.add_argument("--out", help="run directory (default runs/<preset>-<method>-seed<seed>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    importlib.import_module("irat.evaluation").register(sub)  # `irat eval`: its options live with the suite

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
    except OSError as e:  # a path the user gave cannot be read or written (permissions, not a directory, …)
        where = f"{e.filename}: " if e.filename else ""
        print(f"irat: error: {where}{e.strerror or e}".replace("\n", " "), file=sys.stderr)
        return 2
    except Exception as e:  # a bug: still one line, the traceback on request
        if os.environ.get("IRAT_DEBUG"):
            raise
        msg = " ".join(str(e).split())
        print(f"irat: error: internal error ({type(e).__name__}: {msg}); set IRAT_DEBUG=1 for the traceback",
              file=sys.stderr)
        return 1
    finally:
        from .distributed import shutdown
        shutdown()
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
