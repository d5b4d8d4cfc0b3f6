"""Robustness evaluation: attacks by name (SPEC §5), per-example worst case, sanity flags, reports.

`ATTACKS` (irat.attacks.registry) holds every attack with every parameter; a protocol
(`PROTOCOLS`) is only an ε and per-attack parameter overrides on top of it, so `default` and
`mail-paper` share one code path.

Robust accuracy over a set of attacks is the per-example worst case: an example counts as robust
only if it is classified correctly and every attack run on it failed. Cheap attacks (nat, fgsm,
PGD, CW) run on every naturally correct example and report their standalone accuracy; expensive
ones (APGD-CE, AutoAttack) by default run only on the examples still unbroken by the attacks before
them (cascade), so AutoAttack after PGD costs less; their accuracy then is "robust against this
attack and every one before it", a lower bound of the standalone number.

    protocols.py   the protocols, attack names and limits, each value's check, `EvalSettings`
    run.py         `evaluate`, `evaluate_checkpoint`, `evaluate_run` (every kept checkpoint), the cascade; `quick_accuracy` (validation)
    outcomes.py    per attack and example: robust, broken or not run
    result.py      `EvalResult` (eval.json, eval.md, eval_examples.json) and `--reuse`
    sanity.py      the sanity flags
    markdown.py    the report as Markdown
"""
from __future__ import annotations

from ..attacks.registry import ATTACKS, AttackSpec
from .markdown import describe_params, flag_lines, format_eps, format_markdown
from .protocols import (DEFAULT_ATTACKS, PROTOCOLS, EvalSettings, Protocol, check_eps, check_positive_int,
                        check_settings, check_threshold, parse_attacks, parse_limits, resolve_protocol)
from .result import EvalResult, load_eval
from .run import evaluate, evaluate_checkpoint, evaluate_run, quick_accuracy

__all__ = ["ATTACKS", "DEFAULT_ATTACKS", "PROTOCOLS", "AttackSpec", "EvalResult", "EvalSettings", "Protocol",
           "check_eps", "check_positive_int", "check_settings", "check_threshold", "describe_params", "evaluate",
           "evaluate_checkpoint", "evaluate_run", "flag_lines", "format_eps", "format_markdown", "load_eval", "parse_attacks",
           "parse_limits", "quick_accuracy", "resolve_protocol"]
