"""The report's figures: the data each of `irat.figures` draws, gathered from the runs, and the PNGs."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import figures as F
from ..analysis import LPSAnalysis, analyze_checkpoint_lps
from .collect import Group, fmt_value, representatives
from .epochs import ABLATION_METRIC, EXCLUDE_LABELS, Ablation, Curve
from .stats import Row, robust_column
from .tables import column_title


def _curves(groups: list[Group]) -> dict[str, dict[str, np.ndarray]]:
    series = {}
    for g in groups:
        epochs = sorted({m["epoch"] for r in g.runs for m in r.metrics if "val" in m})
        if not epochs:
            continue
        idx = {e: i for i, e in enumerate(epochs)}
        nat = np.full((len(g.runs), len(epochs)), np.nan)
        rob = np.full((len(g.runs), len(epochs)), np.nan)
        for s, r in enumerate(g.runs):
            for m in r.metrics:
                if "val" in m:
                    nat[s, idx[m["epoch"]]] = m["val"].get("nat", np.nan)
                    rob[s, idx[m["epoch"]]] = m["val"].get("pgd20", np.nan)
        keep = ~np.all(np.isnan(nat), axis=1)
        series[g.label] = {"epoch": np.asarray(epochs), "nat": nat[keep], "pgd20": rob[keep]}
    return series


def _burn_in_items(groups: list[Group]) -> dict[str, dict[str, Any]]:
    items = {}
    for g in representatives(groups):
        run = next((r for r in g.runs if r.metrics), None)
        if run is None:
            continue
        lines = sorted(run.metrics, key=lambda m: m["epoch"])
        before = [m for m in lines if m["epoch"] < run.burn_in_end]
        after = lines[-1]
        first = before[-1] if before else lines[0]
        items[f"{g.label}, seed {run.seed}"] = {"before": first if first is not after else None, "after": after}
    return items


def _confused_items(groups: list[Group]) -> dict[str, dict[str, Any]]:
    items = {}
    for g in representatives(groups):
        per_epoch: dict[int, list[dict[str, int]]] = {}
        for r in g.runs:
            for m in r.metrics:
                if "confused" in m:
                    per_epoch.setdefault(m["epoch"], []).append(m["confused"])
        if not per_epoch:
            continue
        ep = sorted(per_epoch)
        avg = {k: np.array([np.mean([c[k] for c in per_epoch[e]]) for e in ep]) for k in
               ("one", "several", "misclassified")}
        n = len(g.runs)
        reweights = g.runs[0].config.get("reweight.margin", "none") != "none"
        items[g.label + (f", mean of {n} seeds" if n > 1 else "")] = {
            "epoch": np.array(ep), **avg, "burn_in_end": g.runs[0].burn_in_end if reweights else None}
    return items


def _heatmaps(rows: list[Row], metric: str) -> list[dict[str, Any]]:
    """One γ × β table per (method, other varied settings) when reweight.gamma or reweight.beta vary."""
    out = []
    by: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        keys = dict(r.group.settings)
        if "reweight.gamma" not in keys and "reweight.beta" not in keys:
            continue
        rest = ", ".join(f"{k}={fmt_value(v)}" for k, v in r.group.settings if k not in ("reweight.gamma",
                                                                                         "reweight.beta"))
        by.setdefault((r.group.method, rest), []).append(r)
    for (method, rest), rs in by.items():
        if len(rs) < 2:
            continue

        def val(r: Row, key: str) -> float:
            v = r.group.setting(key)
            if v is None:
                v = r.group.runs[0].config.get(key)
            return float(v)

        gammas = sorted({val(r, "reweight.gamma") for r in rs})
        betas = sorted({val(r, "reweight.beta") for r in rs})
        grid = np.full((len(gammas), len(betas)), np.nan)
        for r in rs:
            if metric in r.cells:
                grid[gammas.index(val(r, "reweight.gamma")), betas.index(val(r, "reweight.beta"))] = r.cells[metric][0]
        out.append({"method": method, "rest": rest, "gammas": gammas, "betas": betas, "values": grid})
    return out


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s).strip("_")


def lps_analyses(groups: list[Group], n_examples: int, device: str,
                 log: Callable[[str], None]) -> dict[str, LPSAnalysis]:
    """`irat.analysis` (LPS and PM_nat of `n_examples` training examples) of the last checkpoint of one
    run per method, keyed "label, seed S"; nothing when `n_examples` is 0."""
    analyses: dict[str, LPSAnalysis] = {}
    if n_examples <= 0:
        return analyses
    for g in representatives(groups):
        run = next((r for r in g.runs if r.checkpoint.is_file()), None)
        if run is None:
            continue
        log(f"analysis: {run.path} ({n_examples} training examples)")
        analyses[f"{g.label}, seed {run.seed}"] = analyze_checkpoint_lps(run.checkpoint, n_examples, device=device)
    return analyses


def _common_burn_in(groups: list[Group]) -> int | None:
    """The first reweighted epoch when every run with kept evaluations has the same one, else None."""
    ends = {r.burn_in_end for g in groups for r in g.runs if r.kept_evals}
    return ends.pop() if len(ends) == 1 else None


def draw_figures(groups: list[Group], rows: list[Row], columns: list[str], analyses: dict[str, LPSAnalysis],
                 fig_dir: Path, keep_figures: bool = False, epochs: dict[str, dict[str, Curve]] | None = None,
                 ablations: list[Ablation] | None = None) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write every figure the runs have data for to fig_dir/NAME.png, in the report's order. `epochs`
    (`epoch_curves`) and `ablations` (`irat.report.epochs.ablations`) are the per-epoch data.

    Returns {title: path} and, with `keep_figures`, {NAME: matplotlib Figure}."""
    figs: dict[str, Path] = {}
    objects: dict[str, Any] = {}

    def emit(name: str, fig: Any, title: str) -> None:
        figs[title] = fig_dir / f"{name}.png"
        F.save(fig, figs[title])
        if keep_figures:
            objects[name] = fig

    series = _curves(groups)
    if series:
        emit("training_curves", F.training_curves(series), "Training curves (validation)")
    if epochs:
        emit("accuracy_over_epochs", F.accuracy_over_epochs(epochs, {a: column_title(a) for a in epochs},
                                                            _common_burn_in(groups)),
             "Accuracy of the kept checkpoints over epochs (CLIRAT Fig. 3 and 5)")
    if analyses:
        emit("lps_histogram", F.lps_histogram(analyses), "LPS histogram (MAIL Fig. 1b)")
        emit("pm_vs_lps", F.pm_vs_lps_boxplot(analyses), "PM_nat vs LPS (MAIL Fig. 4)")
    burn = _burn_in_items(groups)
    if burn:
        emit("burn_in_distributions", F.burn_in_distributions(burn), "Margins and weights before / after burn-in")
    conf = _confused_items(groups)
    if conf:
        emit("confused_labels", F.confused_labels(conf), "Confused labels per epoch (CLIRAT Fig. 1A)")
    for ab in ablations or []:
        fig = F.confused_label_ablation({EXCLUDE_LABELS.get(x, x): c for x, c in ab.curves.items()},
                                        ylabel=f"{ab.source} {column_title(ABLATION_METRIC)} accuracy (%)",
                                        title=f"confused-label ablation — {ab.title}", burn_in_end=ab.burn_in_end)
        emit("confused_label_ablation_" + _slug(ab.method + ("_" + ab.rest if ab.rest else "")), fig,
             f"Confused-label ablation, {ab.title} (CLIRAT Fig. 1B)")
    metric = robust_column(columns)
    if metric is not None:
        for hm in _heatmaps(rows, metric):
            rest = f" ({hm['rest']})" if hm["rest"] else ""
            title = f"{column_title(metric)} accuracy over γ × β — {hm['method']}{rest}"
            name = "gamma_beta_" + _slug(hm["method"] + ("_" + hm["rest"] if hm["rest"] else ""))
            emit(name, F.gamma_beta_heatmap(hm["gammas"], hm["betas"], hm["values"], metric=column_title(metric),
                                            title=title), f"γ × β heat map, {hm['method']} (CLIRAT Fig. 4){rest}")
    return figs, objects
