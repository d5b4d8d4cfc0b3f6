"""`irat eval CHECKPOINT`: the attacks by name, the per-example worst case, the sanity flags."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..distributed import is_main
from ..errors import ConfigError
from ..evaluation import (ATTACKS, DEFAULT_ATTACKS, PROTOCOLS, check_eps, check_positive_int, check_threshold,
                          evaluate_checkpoint, evaluate_run, flag_lines, parse_attacks, parse_limits)


def register(subparsers: Any) -> None:
    """Add `irat eval CHECKPOINT` to the CLI."""
    e = subparsers.add_parser("eval",
                              help="evaluate a checkpoint under attacks (per-example worst case, sanity checks)",
                              description="Evaluate a checkpoint on its test split in eval mode; writes eval.json, "
                                          "eval.md and eval_examples.json (default: in the run directory). Under "
                                          "`torchrun --nproc_per_node=N -m irat eval …` every attack's batches are "
                                          "shared over the N processes, with the same results as one.")
    e.add_argument("checkpoint", help="a checkpoint (.pt or exported .safetensors), or a run directory: every kept "
                   "checkpoint (checkpoints/epoch-NNN.pt) into epoch-NNN.eval.json beside it")
    e.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS),
                   help=f"comma list of: all, {', '.join(ATTACKS)} (default: %(default)s)")
    e.add_argument("--eps", type=float, default=None,
                   help="L∞ radius (default: the protocol's, else the checkpoint's training ε)")
    e.add_argument("--protocol", choices=list(PROTOCOLS), default="default",
                   help="; ".join(f"{p.name}: {p.doc}" for p in PROTOCOLS.values()))
    e.add_argument("--n-examples", type=int, default=None, help="the first N test examples (data-set order)")
    e.add_argument("--limit", action="append", metavar="ATTACK=N",
                   help="run ATTACK on only the first N examples (repeatable), e.g. --limit aa=2000")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    e.add_argument("--out", default=None, help="eval.json path (default: <run dir>/eval.json)")
    e.add_argument("--reuse", action="store_true",
                   help="keep the attacks the existing eval.json ran on this same checkpoint with the same settings "
                        "and run only the rest (e.g. add aa to an evaluation)")
    e.add_argument("--no-cascade", action="store_true",
                   help="run APGD-CE / AutoAttack on every naturally correct example, not only on unbroken ones")
    e.add_argument("--masking-threshold", type=float, default=5.0,
                   help="flag a PGD − worst-case gap above this many points (default: %(default)s)")
    e.add_argument("--zero-grad-threshold", type=float, default=5.0,
                   help="flag zero input gradients on more than this %% of inputs (default: %(default)s)")
    e.add_argument("--sanity-examples", type=int, default=100,
                   help="examples for the ε = 0 and zero-gradient checks (default: %(default)s)")
    e.add_argument("--no-channels-last", action="store_true",
                   help="keep the model's weights in their stored layout (default: channels-last, as in training; "
                        "the same numbers up to float rounding, faster)")
    e.add_argument("--raw-weights", action="store_true",
                   help="evaluate the trained weights, not the EMA weights a run with ema.enabled kept")
    e.add_argument("--verbose", action="store_true", help="show AutoAttack's own log")
    e.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    e.set_defaults(func=_cmd_eval)


def _cmd_eval(args: Any) -> int:
    # every value is checked here, naming its flag, before anything is loaded
    names = parse_attacks(args.attacks, "--attacks")
    limits = parse_limits(args.limit)
    if args.eps is not None:
        check_eps(args.eps, "--eps")
    if args.n_examples is not None:
        check_positive_int(args.n_examples, "--n-examples")
    check_positive_int(args.batch_size, "--batch-size")
    check_positive_int(args.sanity_examples, "--sanity-examples")
    check_threshold(args.masking_threshold, "--masking-threshold")
    check_threshold(args.zero_grad_threshold, "--zero-grad-threshold")
    if args.out is not None and not str(args.out).endswith(".json"):
        raise ConfigError("--out", "a path ending in .json", args.out)
    kwargs = dict(attacks=names, eps=args.eps, n_examples=args.n_examples, batch_size=args.batch_size,
                  seed=args.seed, device=args.device, out=args.out, protocol=args.protocol, limits=limits,
                  cascade=not args.no_cascade, reuse=args.reuse, masking_threshold=args.masking_threshold,
                  zero_grad_threshold=args.zero_grad_threshold, sanity_examples=args.sanity_examples,
                  verbose=args.verbose, progress=not args.quiet, channels_last=not args.no_channels_last,
                  weights="raw" if args.raw_weights else "auto")
    if Path(args.checkpoint).is_dir():  # a run directory: every kept checkpoint
        results = evaluate_run(args.checkpoint, **kwargs)
    else:
        results = [evaluate_checkpoint(args.checkpoint, **kwargs)]
    if is_main():  # under torchrun every rank computed its share; rank 0 reports
        for result in results:  # a run directory: each kept checkpoint's table, warnings and files
            print(result.markdown(), end="")
            for line in flag_lines(result.flags):
                print(f"irat eval: warning: {line}", file=sys.stderr)
            print(f"written: {result.paths['json']} (+ {result.paths['markdown'].name}, "
                  f"{result.paths['examples'].name})")
    return 0

