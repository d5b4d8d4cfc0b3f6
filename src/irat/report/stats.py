"""The numbers of the tables: accuracy mean ± std over seeds per group, and per-seed differences
between a reweighted method and its baseline."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..methods import METHODS
from .collect import Group

COLUMN_ORDER = ["nat", "fgsm", "pgd20", "pgd100", "cw", "apgd", "apgd-ce", "apgd_ce", "aa", "autoattack"]
ROBUST_PREFERENCE = ["pgd20", "pgd100", "aa", "autoattack", "cw", "worst"]

Cells = dict[str, tuple[float, float, int]]  # column -> (mean, std, n)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and standard deviation over seeds: ddof = 1 with two or more values, 0 with one."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size >= 2 else 0.0


def table_columns(groups: list[Group]) -> list[str]:
    """The eval.json accuracy keys present: the known attacks in table order, the rest, then "worst"."""
    return column_order({k for g in groups for r in g.runs if r.eval for k in r.eval.get("accuracy", {})})


def column_order(present: set[str]) -> list[str]:
    """Accuracy keys in table order: the known attacks (COLUMN_ORDER), the rest sorted, then "worst"."""
    known = [c for c in COLUMN_ORDER if c in present]
    rest = sorted(present - set(COLUMN_ORDER) - {"worst"})
    return known + rest + (["worst"] if "worst" in present else [])


def robust_column(columns: list[str]) -> str | None:
    """The robust accuracy a figure shows: PGD-20 when present, else the next of ROBUST_PREFERENCE."""
    return next((c for c in ROBUST_PREFERENCE if c in columns), None)


@dataclass
class Row:
    group: Group
    n: int  # runs with eval.json
    cells: Cells


def table_rows(groups: list[Group], columns: list[str]) -> list[Row]:
    rows = []
    for g in groups:
        evals = [r.eval["accuracy"] for r in g.runs if r.eval and "accuracy" in r.eval]
        cells = {}
        for c in columns:
            vals = [float(e[c]) for e in evals if c in e and e[c] is not None]
            if vals:
                cells[c] = (*mean_std(vals), len(vals))
        rows.append(Row(g, len(evals), cells))
    return rows


def paired_baselines(method: str) -> list[str]:
    """What a reweighted method is compared with, seed by seed: the unweighted method of its objective
    (at, trades or mart), and for a CL-PM method its PM_adv (MAIL) twin with the same weighting."""
    d = METHODS.get(method)
    if d is None or d["reweight"]["margin"] == "none":
        return []
    out = [d["objective"]] if d["objective"] in METHODS else []
    if d["reweight"]["margin"] == "cl_pm":
        twin = {**d["reweight"], "margin": "pm_adv"}
        out += [m for m, e in METHODS.items() if e["objective"] == d["objective"] and e["reweight"] == twin
                and e["tradeoff"] == d["tradeoff"]]
    return out


@dataclass
class PairedRow:
    group: Group
    baseline: Group
    seeds: list[int]  # seeds both groups have evaluated, neither stuck
    cells: Cells  # of the per-seed differences
    stuck: list[int] = field(default_factory=list)  # seeds left out: a run stuck before reweighting (`Run.stuck`)


def paired_rows(groups: list[Group], columns: list[str]) -> list[PairedRow]:
    """Per-seed differences `method − baseline` (see `paired_baselines`) between groups with the same
    settings. The same seed means the same initial weights, data order and attack noise, so these
    differences do not carry the seed-to-seed spread of the two means."""
    by_key = {(g.method, g.settings_text): g for g in groups}
    rows = []
    for g in groups:
        for base in paired_baselines(g.method):
            b = by_key.get((base, g.settings_text))
            if b is None:
                continue
            seeds, cells, stuck = paired_cells(g, b, columns)
            if seeds or stuck:
                rows.append(PairedRow(g, b, seeds, cells, stuck))
    return rows


def paired_cells(g: Group, b: Group, columns: list[str]) -> tuple[list[int], Cells, list[int]]:
    """The seeds both groups have evaluated, per column mean ± std of the differences g − b over them, and
    the seeds left out because a run of the pair was stuck at the constant classifier before its
    reweighting began (`Run.stuck`): on one machine both runs of a seed train identically until then, so
    such a pair carries no effect of the reweighting, only a zero that dilutes it."""
    mine = {r.seed: r.eval["accuracy"] for r in g.runs if r.eval and "accuracy" in r.eval}
    theirs = {r.seed: r.eval["accuracy"] for r in b.runs if r.eval and "accuracy" in r.eval}
    stuck_seeds = {r.seed for r in g.runs + b.runs if r.stuck}
    both = set(mine) & set(theirs)
    seeds, stuck = sorted(both - stuck_seeds), sorted(both & stuck_seeds)
    cells = {}
    for c in columns:
        # the worst case is comparable only over the same attacks
        diffs = [float(mine[s][c]) - float(theirs[s][c]) for s in seeds
                 if mine[s].get(c) is not None and theirs[s].get(c) is not None
                 and (c != "worst" or set(mine[s]) == set(theirs[s]))]
        if diffs:
            cells[c] = (*mean_std(diffs), len(diffs))
    return seeds, cells, stuck


OBJECTIVE_ORDER = ["at", "mart", "trades"]  # MAIL Table 1's column groups, in the paper's order
MARGIN_ORDER = ["none", "lps", "pm_nat", "pm_adv", "pm_dif", "cl_pm"]  # its columns (LPS, PM_nat, PM_adv), the rest
MARGIN_KEYS = {"objective", "reweight.margin", "reweight.weighting", "reweight.gamma", "reweight.beta", "tradeoff"}


@dataclass
class MarginTable:
    """MAIL Table 1's layout for a set of groups that differ only in their objective and margin (and what
    those bring: the weighting, γ, β, the trade-off): `cells[objective, margin]` is that group's row;
    `paired[objective, margin]` the per-seed differences of that margin minus `baseline` (LPS when present)
    under the same objective. Runs stuck at the constant classifier before reweighting are left out of
    both (`stuck` counts them per cell)."""
    context: str  # the settings the groups share, as text ("" when none vary)
    objectives: list[str]
    margins: list[str]
    cells: dict[tuple[str, str], Row]
    baseline: str
    paired: dict[tuple[str, str], tuple[list[int], Cells, list[int]]]  # seeds, differences, stuck seeds
    stuck: dict[tuple[str, str], int] = field(default_factory=dict)  # runs per cell left out as stuck


def _first_config(g: Group, key: str, default: str) -> str:
    return str(g.runs[0].config.get(key, default)) if g.runs else default


def margin_tables(rows: list[Row], columns: list[str]) -> list[MarginTable]:
    """One `MarginTable` per set of groups whose settings vary `reweight.margin`, agree apart from
    MARGIN_KEYS, and hold at least two margins of one objective: the sweep `--grid objective=… --grid
    reweight.margin=…`. A set where two groups have the same objective and margin (e.g. two γ) gives none."""
    sets: dict[str, list[Row]] = {}
    for r in rows:
        if "reweight.margin" not in dict(r.group.settings):
            continue
        rest = tuple((k, v) for k, v in r.group.settings if k not in MARGIN_KEYS)
        sets.setdefault(", ".join(f"{k}={v}" for k, v in rest), []).append(r)
    tables = []
    for context, rs in sets.items():
        cells: dict[tuple[str, str], Row] = {}
        for r in rs:
            key = (_first_config(r.group, "objective", "at"), _first_config(r.group, "reweight.margin", "none"))
            if key in cells:  # two groups for one cell (e.g. two γ): not one table
                cells = {}
                break
            cells[key] = r
        n_stuck = {k: sum(run.stuck for run in r.group.runs) for k, r in cells.items()}
        groups = {k: r.group for k, r in cells.items()}  # every run: the paired differences say which they leave out
        # the margins are compared on the runs that trained: one stuck at the constant classifier before its
        # reweighting began (`Run.stuck`) says nothing about its margin (the long table keeps every run)
        cells = {k: table_rows([Group(r.group.method, r.group.settings,
                                      [run for run in r.group.runs if not run.stuck])], columns)[0]
                 if n_stuck[k] else r for k, r in cells.items()}
        objectives = sorted({o for o, _ in cells}, key=lambda o: (OBJECTIVE_ORDER + [o]).index(o))
        margins = sorted({m for _, m in cells}, key=lambda m: (MARGIN_ORDER + [m]).index(m))
        if not any(sum((o, m) in cells for m in margins) >= 2 for o in objectives):
            continue
        reweighted = [m for m in margins if m != "none"]
        baseline = "lps" if "lps" in margins else (reweighted or margins)[0]
        paired = {}
        for o in objectives:
            base = cells.get((o, baseline))
            for m in margins:
                if base is not None and m != baseline and (o, m) in cells:
                    seeds, diff, stuck = paired_cells(groups[o, m], groups[o, baseline], columns)
                    if seeds or stuck:
                        paired[o, m] = (seeds, diff, stuck)
        tables.append(MarginTable(context, objectives, margins, cells, baseline, paired, n_stuck))
    return tables
