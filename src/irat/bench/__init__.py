"""`irat bench`: the cost floor of adversarial training, measured on the real code path.

Everything is timed in one process, on the same fixed batches, by calling `Trainer.step` of a
Trainer built on a tiny subset (so the benchmark runs exactly the code `irat train` runs):

- `clean_step`: `Trainer.step` with attack.eps = 0 (forward + backward + SGD step + bookkeeping);
- `attack_step`: one bare input-gradient step (eval-mode forward, `autograd.grad` w.r.t. the
  input, signed step, projection), averaged over a T-step loop — the least an attack step costs;
- `pgd`: irat's `pgd` (κ / first-wrong bookkeeping included), T steps;
- `at_step`: `Trainer.step` of PGD-T AT, and the same for every method.

Reported ratios (each the median over rounds of the ratio measured within one round, items
interleaved and rotated, so drifting machine load cancels):

- `floor_ratio` = AT step ÷ (T × attack step + clean step): 1.0 means no work beyond the floor;
- `overhead[m]` = step of method m ÷ AT step; `overhead_vs_base[m]` = step of m ÷ step of its
  unweighted objective (at, trades or mart), e.g. mail-trades ÷ trades;
- `images_per_s`: epochs of AT through the trainer's batch loop (seeded batches + step);
- `channels_last`: AT / clean / attack step with fast.channels_last off ÷ on (> 1: it helps);
- `threads`: AT step with 1 thread ÷ with the default thread count (CPU);
- `host_sync_ops`: ops per step that read device data on the host (`.item()`, `bool(t)`) or build
  tensors from host data (`torch.tensor(...)`), counted with a dispatch mode — each is a
  host-device sync on CUDA; should be 0;
- with `--reference`: `reference_ratio` = epoch time of the papers'-style loop in
  irat.bench.reference_loop (benchmarks/reference_loop.py runs it alone) ÷ irat's, same model, initial weights and images.

    irat bench --quick --out benchmarks/results/bench-quick.json
    irat bench --reference --out benchmarks/results/bench.json
"""
from __future__ import annotations

from .measure import SYNC_OPS, Rounds, bare_attack, count_sync_ops, irat_epoch, reweight_ops_seconds, step_fn
from .run import QUICK_METHODS, BenchOptions, base_method, format_report, run_bench

__all__ = ["QUICK_METHODS", "SYNC_OPS", "BenchOptions", "Rounds", "bare_attack", "base_method", "count_sync_ops",
           "format_report", "irat_epoch", "reweight_ops_seconds", "run_bench", "step_fn"]
