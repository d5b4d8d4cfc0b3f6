"""`irat bench`: the cost floor of adversarial training, measured on the real code path (see run.py).

measure.py holds the instruments (timed rounds, host-sync counting, one step, one epoch), run.py the
benchmark itself, reference_loop.py the papers'-style loop it compares against.
"""
from __future__ import annotations

from .measure import SYNC_OPS, Rounds, bare_attack, count_sync_ops, irat_epoch, reweight_ops_seconds, step_fn
from .run import QUICK_METHODS, BenchOptions, base_method, format_report, run_bench

__all__ = ["QUICK_METHODS", "SYNC_OPS", "BenchOptions", "Rounds", "bare_attack", "base_method", "count_sync_ops",
           "format_report", "irat_epoch", "reweight_ops_seconds", "run_bench", "step_fn"]
