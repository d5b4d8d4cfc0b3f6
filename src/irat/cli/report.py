"""`irat report DIR…`: tables (mean ± std over seeds) and figures from run directories."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import IratError
from ..report import build_report, markdown_table


def _cmd_report(args: argparse.Namespace) -> int:
    out = args.out or str(Path(args.dirs[0]) / "report.md")
    intro = None
    if args.intro is not None:
        try:
            intro = Path(args.intro).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise IratError(f"--intro: a readable UTF-8 Markdown file is needed ({args.intro}: "
                            f"{getattr(e, 'strerror', None) or type(e).__name__})") from None
    res = build_report(args.dirs, out, analysis_examples=args.analysis_examples, device=args.device,
                       log=lambda s: print(s, file=sys.stderr), title=args.title, intro=intro)
    print(markdown_table(res.rows, res.columns) if res.columns else "no eval.json found")
    print(f"written: {res.markdown}  {res.csv}  {res.latex}" + (f"  {res.epochs_csv}" if res.epochs_csv else ""))
    if res.figures:
        print(f"figures: {', '.join(str(p) for p in res.figures.values())}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="tables (mean ± std over seeds) and figures from run directories",
        description="Find run directories (with config.yaml) under DIR…, group them by method and varied "
                    "settings, and write FILE.md with .csv/.tex tables beside it and PNG figures in figures/.")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--out", default=None, help="the Markdown file (default DIR/report.md)")
    p.add_argument("--analysis-examples", type=int, default=2000,
                   help="training examples for the LPS/PM analysis of one checkpoint per method (0: skip)")
    p.add_argument("--device", default="auto")
    p.add_argument("--title", default="irat report", help="the Markdown file's heading")
    p.add_argument("--intro", default=None, metavar="FILE.md",
                   help="Markdown placed under the heading, before the generated tables (e.g. a written analysis)")
    p.set_defaults(func=_cmd_report)
