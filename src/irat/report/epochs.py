"""The numbers per epoch: the accuracy of the kept checkpoints (CLIRAT Fig. 3 and 5) and the
confused-label ablation (CLIRAT Fig. 1B), mean ± std over the seeds of each group.

A curve is {"epoch": [E], "mean": [E], "std": [E], "n": [E]}: at every epoch that some seed has a
value, the mean and standard deviation (`mean_std`: ddof = 1 with two or more values, 0 with one)
over the n seeds that have it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..weighting import EXCLUDE
from .collect import Group, Run, fmt_value
from .stats import column_order, mean_std

Curve = dict[str, np.ndarray]

EXCLUDE_LABELS = {"none": "all", "single": "without S^sig (single confused label)",
                  "multiple": "without S^mul (several)"}
ABLATION_METRIC = "pgd20"


def curve(per_seed: list[dict[int, float]]) -> Curve | None:
    """Mean ± std over seeds at each epoch of `per_seed` (one {epoch: value} per seed); None if empty."""
    epochs = sorted({e for d in per_seed for e in d})
    if not epochs:
        return None
    vals = [[d[e] for d in per_seed if e in d] for e in epochs]
    stats = np.array([mean_std(v) for v in vals], dtype=float)
    return {"epoch": np.array(epochs), "mean": stats[:, 0], "std": stats[:, 1], "n": np.array([len(v) for v in vals])}


def _kept_accuracy(run: Run, attack: str) -> dict[int, float]:
    return {e: float(ev["accuracy"][attack]) for e, ev in run.kept_evals.items()
            if ev["accuracy"].get(attack) is not None}


def _val_accuracy(run: Run, key: str) -> dict[int, float]:
    return {m["epoch"]: float(m["val"][key]) for m in run.metrics
            if isinstance(m.get("val"), dict) and m["val"].get(key) is not None}


# --------------------------------------------------------------------------- robustness over epochs


def epoch_attacks(groups: list[Group]) -> list[str]:
    """The accuracy keys of the kept checkpoints' evaluations, in table order ("worst" last)."""
    return column_order({k for g in groups for r in g.runs for ev in r.kept_evals.values() for k in ev["accuracy"]})


def epoch_curves(groups: list[Group]) -> dict[str, dict[str, Curve]]:
    """{attack: {group label: curve}} of the kept checkpoints' test accuracy; empty without kept evaluations."""
    out: dict[str, dict[str, Curve]] = {}
    for attack in epoch_attacks(groups):
        for g in groups:
            c = curve([_kept_accuracy(r, attack) for r in g.runs])
            if c is not None:
                out.setdefault(attack, {})[g.label] = c
    return out


def kept_examples(groups: list[Group], attacks: list[str]) -> dict[str, list[int]]:
    """Per attack, the numbers of test examples its kept-checkpoint evaluations used."""
    seen: dict[str, set[int]] = {}
    for g in groups:
        for r in g.runs:
            for ev in r.kept_evals.values():
                for name, p in (ev.get("attacks") or {}).items():
                    if isinstance(p, dict) and isinstance(p.get("n_examples"), int):
                        seen.setdefault(name, set()).add(p["n_examples"])
    return {a: sorted(seen[a]) for a in attacks if a in seen}


# --------------------------------------------------------------------------- the confused-label ablation


@dataclass
class Ablation:
    """Groups of one method and the same other settings that differ only in reweight.exclude."""
    method: str
    rest: str  # the other varied settings, "k=v, …"
    variants: dict[str, Group]  # exclude value ("none", "single", "multiple") -> its group, in that order
    source: str  # "test" (the kept checkpoints' evaluations) or "validation" (metrics.jsonl)
    curves: dict[str, Curve]  # exclude value -> PGD-20 accuracy over epochs

    @property
    def title(self) -> str:
        return self.method + (f" ({self.rest})" if self.rest else "")

    @property
    def burn_in_end(self) -> int:
        return next(iter(self.variants.values())).runs[0].burn_in_end


def ablations(groups: list[Group]) -> list[Ablation]:
    """The confused-label ablations among the groups: one per method and other settings with two or
    more reweight.exclude variants. Its curves are test PGD-20 of the kept checkpoints when any of its
    runs has them, else validation PGD-20 (val.pgd20 of metrics.jsonl), over the runs that are not stuck."""
    found: dict[tuple[str, str], dict[str, Group]] = {}
    for g in groups:
        keys = dict(g.settings)
        if "reweight.exclude" not in keys:
            continue
        rest = ", ".join(f"{k}={fmt_value(v)}" for k, v in g.settings if k != "reweight.exclude")
        found.setdefault((g.method, rest), {}).setdefault(g.runs[0].exclude, g)
    out = []
    for (method, rest), by in found.items():
        if len(by) < 2:
            continue
        variants = {x: by[x] for x in EXCLUDE if x in by}
        runs = [r for g in variants.values() for r in g.runs]
        test = any(_kept_accuracy(r, ABLATION_METRIC) for r in runs)
        read = _kept_accuracy if test else _val_accuracy
        # the seeds that trained: a run at the constant classifier when the exclusion began (`Run.stuck`) pulls
        # every variant's curve towards 1/K alike
        curves = {x: c for x, g in variants.items()
                  if (c := curve([read(r, ABLATION_METRIC) for r in g.runs if not r.stuck]))}
        out.append(Ablation(method, rest, variants, "test" if test else "validation", curves))
    return out


def excluded_per_epoch(g: Group) -> tuple[float, float, int]:
    """Examples excluded from the loss per epoch after the burn-in ("excluded" of metrics.jsonl; 0 when
    nothing is excluded): each seed's mean over its epochs, then mean ± std over the seeds that trained (a
    run at the constant classifier when reweighting began, `Run.stuck`, misclassifies nearly every example)."""
    per_seed = []
    for r in g.runs:
        if r.stuck:
            continue
        vals = [float(m.get("excluded", 0)) for m in r.metrics
                if m.get("epoch", 0) >= r.burn_in_end and ("excluded" in m or r.exclude == "none")]
        if vals:
            per_seed.append(float(np.mean(vals)))
    return (*mean_std(per_seed), len(per_seed))
