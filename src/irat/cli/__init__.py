"""The command line: argparse only, one module per command, each with `register(subparsers)`.

Bad input (IratError) prints one line `irat: error: …` and exits with code 2, before anything is
written. The library modules never import argparse; these modules turn options into their calls.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..distributed import shutdown
from ..errors import IratError
from . import analyze, bench, eval, export, report, sweep, train

COMMANDS = (train, eval, sweep, report, analyze, export, bench)  # each adds its sub-commands


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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="irat", description="Instance-reweighted adversarial training and robustness evaluation.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.register(sub)
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
    except BrokenPipeError:  # `irat presets | head`: the reader left; nothing to report
        sys.stderr.close()
        return 0
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
        shutdown()
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
