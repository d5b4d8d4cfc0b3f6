"""Every random stream of irat in one place: the run's seed mixed with a named salt per purpose.

Each stream has its own generator (`generator(device, seed, SALT, …)`), so adding a draw in one
place never shifts another: a resumed run, a run on another number of processes, and an evaluation
extended with `--reuse` all see the same numbers. The values are part of the results: changing one
changes every run that uses it.
"""
from __future__ import annotations

import torch

# data (data/loader.py)
VALIDATION_SPLIT = 11  # which training examples are held out for validation
TRAIN_SUBSET = 13  # which training examples data.train_subset keeps
EPOCH_ORDER = 17  # the batch order of each epoch
AUGMENTATION = 19  # crop offsets and flips, per epoch and step
ATTACK_START = 23  # the training attack's random start, per epoch and step
EXTRA_ORDER = 53  # the order in which data.extra's images join the batches, per epoch
# evaluation (evaluation/)
VALIDATION_ATTACK = 31  # the per-epoch validation PGD-20
EVAL_ATTACK = 37  # each attack's random start in `irat eval`
EVAL_SANITY = 41  # the ε = 0 and zero-gradient checks
# analysis (analysis.py)
ANALYSIS_SUBSET = 41  # which examples `irat analyze` / the report's LPS analysis use
ANALYSIS_LPS_START = 43  # the training attack's start in the LPS-versus-PM analysis
ANALYSIS_PATHS_START = 47  # the common start of PGD and LM-PGD in `irat analyze paths`


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (SplitMix64-style mixing), stable across runs and platforms."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def generator(device: torch.device | str, *parts: int) -> torch.Generator:
    """A generator on `device` seeded from `parts` (typically seed, SALT, epoch, step)."""
    g = torch.Generator(device=device)
    g.manual_seed(mix_seed(*parts))
    return g
