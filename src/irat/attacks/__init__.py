"""Attacks: plain functions `(model, inputs, labels, ...) -> result`, batched, no per-sample loops."""
from .pgd import ATTACK_LOSSES, STARTS, PGDResult, attack_loss, eval_mode, pgd

__all__ = ["ATTACK_LOSSES", "STARTS", "PGDResult", "attack_loss", "eval_mode", "pgd"]
