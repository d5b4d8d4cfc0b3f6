"""Attacks: plain functions `(model, inputs, labels, ...) -> result`, batched, no per-sample loops.

    pgd.py         L∞ PGD with the bookkeeping the reweighting methods need (κ, LPS, FAT's τ)
    lmpgd.py       LM-PGD
    autoattack.py  the adapter to the official AutoAttack code
    registry.py    the evaluation attacks by name (`ATTACKS`): one callable and one entry each
"""
from .pgd import ATTACK_LOSSES, STARTS, PGDResult, attack_loss, eval_mode, pgd
from .registry import ATTACKS, AttackSpec

__all__ = ["ATTACKS", "ATTACK_LOSSES", "AttackSpec", "STARTS", "PGDResult", "attack_loss", "eval_mode", "pgd"]
