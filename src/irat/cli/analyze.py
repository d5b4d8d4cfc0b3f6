"""`irat analyze paths | lps`: the MAIL paper's diagnostics of a checkpoint (Fig. 1a, 1b, 4)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..analysis import SPLITS, analyze_checkpoint_lps, analyze_paths
from ..figures import lps_histogram, pm_vs_lps_boxplot
from ..files import atomic_write_json


def _cmd_paths(args: argparse.Namespace) -> int:
    s = analyze_paths(args.checkpoint, n=args.n, steps=args.steps, split=args.split, seed=args.seed,
                      momentum=args.momentum, lm_step_size=args.lm_step_size, start=args.start,
                      batch_size=args.batch_size, device=args.device, out=args.out)
    t = s["steps"]
    print(f"examples: {s['n_examples']}  steps: {t}  ε = {s['settings']['eps']:g}")
    print(f"LPS differs between PGD and LM-PGD paths: {100 * s['fraction_lps_differs']:.1f}% "
          f"({s['n_lps_differs']}/{s['n_examples']})")
    print(f"mean LPS: PGD {s['mean_lps_pgd']:.2f}  LM-PGD {s['mean_lps_lmpgd']:.2f}  "
          f"(broken only by LM-PGD: {100 * s['fraction_broken_only_by_lmpgd']:.1f}%)")
    print(f"mean final CE loss: PGD {s['mean_final_loss_pgd']:.4f}  LM-PGD {s['mean_final_loss_lmpgd']:.4f}")
    print(f"PM_nat (path-independent): mean {s['pm_nat_mean']:.4f}, max change {s['pm_nat_max_change']:.2e}")
    print(f"written: {s['path']}  {s['figure']}")
    return 0


def _cmd_lps(args: argparse.Namespace) -> int:
    res = analyze_checkpoint_lps(args.checkpoint, args.n, split=args.split, batch_size=args.batch_size,
                                 seed=args.seed, device=args.device)
    out_dir = Path(args.out) if args.out else Path(args.checkpoint).parent.parent / "analysis"
    lps_histogram({res.method: res}, path=out_dir / "lps_hist.png")
    pm_vs_lps_boxplot({res.method: res}, path=out_dir / "pm_vs_lps.png")
    summary = {"checkpoint": str(args.checkpoint), "split": args.split, **res.summary()}
    atomic_write_json(out_dir / "lps.json", summary)
    print(json.dumps({k: summary[k] for k in ("n_examples", "lps_counts", "fraction_at_max_lps",
                                              "non_robust_at_max_lps")}))
    print(f"written: {out_dir / 'lps.json'}  {out_dir / 'lps_hist.png'}  {out_dir / 'pm_vs_lps.png'}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("analyze", help="diagnostics of a checkpoint: LPS path dependence, LPS vs PM",
                              description="Diagnostics from the MAIL paper (Fig. 1a, 1b, 4).")
    sub = p.add_subparsers(dest="analysis", required=True, parser_class=type(p))

    a = sub.add_parser("paths", help="PGD vs LM-PGD loss curves; how often LPS depends on the attack path",
                       description="Run PGD and LM-PGD (line-searched step + Nesterov momentum) from the same "
                                   "start on N examples; report the fraction whose LPS differs between the two "
                                   "paths, while PM_nat of the natural example is path-independent (MAIL Fig. 1a).")
    a.add_argument("checkpoint")
    a.add_argument("--n", type=int, default=256, help="number of examples (a seeded subset)")
    a.add_argument("--steps", type=int, default=50, help="attack steps T (MAIL Fig. 1a: 50)")
    a.add_argument("--split", choices=SPLITS, default="train")
    a.add_argument("--start", choices=["uniform", "normal", "none"], default="uniform",
                   help="common start point of both paths")
    a.add_argument("--momentum", type=float, default=0.75, help="LM-PGD Nesterov momentum μ")
    a.add_argument("--lm-step-size", type=float, default=None,
                   help="LM-PGD's largest step (default 2α, α the training step size)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--batch-size", type=int, default=256)
    a.add_argument("--device", default="auto")
    a.add_argument("--out", default=None, help="output directory (default <run>/analysis)")
    a.set_defaults(func=_cmd_paths)

    b = sub.add_parser("lps", help="LPS histogram and PM_nat-vs-LPS box plot (MAIL Fig. 1b, Fig. 4)")
    b.add_argument("checkpoint")
    b.add_argument("--n", type=int, default=2000, help="number of examples (a seeded subset)")
    b.add_argument("--split", choices=SPLITS, default="train")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--batch-size", type=int, default=256)
    b.add_argument("--device", default="auto")
    b.add_argument("--out", default=None, help="output directory (default <run>/analysis)")
    b.set_defaults(func=_cmd_lps)
