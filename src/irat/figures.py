"""The papers' figures as functions: data in, a matplotlib `Figure` out (saved as PNG when `path` is given).

Built on `matplotlib.figure.Figure` directly (no pyplot, no global backend state; PNGs render with
Agg). Every axes has a title and labelled axes.

- `training_curves`        natural / PGD-20 validation accuracy per epoch, one line per method
- `lps_histogram`          MAIL Fig. 1b: LPS histogram, split into robust and non-robust examples
- `pm_vs_lps_boxplot`      MAIL Fig. 4: PM_nat per LPS value (box = IQR, whiskers = 5th/95th percentile)
- `burn_in_distributions`  margin and weight histograms before and after burn-in (metrics.jsonl)
- `accuracy_over_epochs`   CLIRAT Fig. 3 and 5: test accuracy of the kept checkpoints, one panel per attack
- `confused_labels`        CLIRAT Fig. 1A: misclassified adversarial examples with one / several confused labels
- `confused_label_ablation`  CLIRAT Fig. 1B: PGD-20 accuracy per epoch with all / without S^sig / without S^mul
- `gamma_beta_heatmap`     CLIRAT Fig. 4: robust accuracy over the weighting's slope γ and bias β
- `loss_paths`             MAIL Fig. 1a: CE loss along the PGD and LM-PGD paths, with each path's LPS
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .files import atomic_write_bytes

DPI = 110


def save(fig: Figure, path: str | Path) -> Path:
    """Write `fig` as PNG atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _panels(n: int, ncols: int = 3, size: tuple[float, float] = (4.4, 3.3)) -> tuple[Figure, list[Any]]:
    """A figure with n panels on a grid (unused grid cells removed)."""
    n = max(n, 1)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def _finish(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        save(fig, path)
    return fig


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")


# ---------------------------------------------------------------------------------------------


def training_curves(series: Mapping[str, Mapping[str, np.ndarray]], path: str | Path | None = None,
                    robust_name: str = "PGD-20") -> Figure:
    """Validation accuracy per epoch. `series[label]` has "epoch" [E] and "nat", "pgd20" [S, E] (NaN =
    missing); lines are means over seeds S, bands ± one standard deviation."""
    fig, (ax_nat, ax_rob) = _panels(2, ncols=2)
    many = len(series) > 10  # beyond tab10: 20 colours and alternating line styles, legend outside
    colors = colormaps["tab20"].colors if many else colormaps["tab10"].colors
    for ax, key, name in ((ax_nat, "nat", "natural"), (ax_rob, "pgd20", robust_name)):
        drawn = False
        for i, (label, s) in enumerate(series.items()):
            vals = np.asarray(s[key], dtype=float)
            if vals.size == 0 or np.all(np.isnan(vals)):
                continue
            vals = np.atleast_2d(vals)
            epochs = np.asarray(s["epoch"])
            with np.errstate(invalid="ignore"):
                mean = np.nanmean(vals, axis=0)
                std = np.nanstd(vals, axis=0, ddof=1) if vals.shape[0] > 1 else np.zeros_like(mean)
            ok = ~np.isnan(mean)
            line = ax.plot(epochs[ok], mean[ok], marker="o", ms=3, label=label, color=colors[i % len(colors)],
                           ls="-" if i % 2 == 0 or not many else "--")[0]
            if vals.shape[0] > 1:
                ax.fill_between(epochs[ok], (mean - std)[ok], (mean + std)[ok], color=line.get_color(), alpha=0.2)
            drawn = True
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} validation accuracy (%)")
        ax.set_title(f"{name} accuracy during training")
        if not drawn:
            _empty(ax, "no validation metrics")
    if ax_rob.get_legend_handles_labels()[0]:
        if many:
            fig.legend(*ax_rob.get_legend_handles_labels(), fontsize="small", loc="outside right center")
        else:
            ax_rob.legend(fontsize="small")
    return _finish(fig, path)


def _band(ax: Any, c: Mapping[str, np.ndarray], label: str, color: Any) -> None:
    """A curve {"epoch", "mean", "std", "n"} as its mean line and the ± std band where n ≥ 2 seeds (an error
    bar for a single epoch)."""
    ep, mean, std = (np.asarray(c[k], dtype=float) for k in ("epoch", "mean", "std"))
    line = ax.plot(ep, mean, marker="o", ms=3, label=label, color=color)[0]
    several = np.asarray(c["n"]) > 1
    if ep.size == 1 and several.all():
        ax.errorbar(ep, mean, yerr=std, fmt="none", color=line.get_color(), capsize=3)
    elif several.any():
        ax.fill_between(ep, mean - std, mean + std, where=several, color=line.get_color(), alpha=0.2, lw=0)


def _start_line(ax: Any, curves: Any, epoch: int | None, label: str) -> None:
    """A dashed line just before `epoch` (where reweighting or exclusion starts) if the curves span it."""
    eps = [float(e) for c in curves for e in np.asarray(c["epoch"])]
    if epoch is not None and eps and min(eps) < epoch <= max(eps):
        ax.axvline(epoch - 0.5, color="gray", ls="--", lw=1, label=label)


def accuracy_over_epochs(curves: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
                         names: Mapping[str, str] | None = None, burn_in_end: int | None = None,
                         path: str | Path | None = None) -> Figure:
    """CLIRAT Fig. 3 and 5: test accuracy of the kept checkpoints against the epoch. `curves[attack][label]`
    = {"epoch", "mean", "std", "n"} (mean ± std over n seeds); one panel per attack (titled `names[attack]`),
    one line per method with its ± std band, the legend beside the panels; a dashed line where the burn-in
    ends (`burn_in_end`) when the kept epochs span it."""
    names = names or {}
    labels = list(dict.fromkeys(label for by_label in curves.values() for label in by_label))
    colors = colormaps["tab20" if len(labels) > 10 else "tab10"].colors
    epochs = [float(e) for by_label in curves.values() for c in by_label.values() for e in np.asarray(c["epoch"])]
    fig, axes = _panels(len(curves))
    for ax, (attack, by_label) in zip(axes, curves.items()):
        name = names.get(attack, attack)
        for label, c in by_label.items():
            _band(ax, c, label, colors[labels.index(label) % len(colors)])
        _start_line(ax, by_label.values(), burn_in_end, "burn-in ends")
        if epochs:  # the same epochs on every panel, also for an attack run on the last checkpoint only
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} test accuracy (%)")
        ax.set_title(f"{name} accuracy of the kept checkpoints")
    handles = {lab: h for ax in axes for h, lab in zip(*ax.get_legend_handles_labels())}
    if handles:
        fig.legend(list(handles.values()), list(handles), fontsize="small", loc="outside right center")
    return _finish(fig, path)


def lps_histogram(analyses: Mapping[str, Any], path: str | Path | None = None) -> Figure:
    """MAIL Fig. 1b: how many training examples take each LPS value, stacked by whether the final PGD
    iterate x^(T) still fools the model (non-robust) — at the maximal LPS both kinds mix."""
    fig, axes = _panels(len(analyses))
    for ax, (label, a) in zip(axes, analyses.items()):
        values = np.arange(a.steps + 1)
        lps, robust = np.asarray(a.lps), np.asarray(a.robust, dtype=bool)
        n_rob = np.bincount(lps[robust], minlength=a.steps + 1)[: a.steps + 1]
        n_non = np.bincount(lps[~robust], minlength=a.steps + 1)[: a.steps + 1]
        ax.bar(values, n_rob, color="tab:orange", label="robust (x^(T) correct)")
        ax.bar(values, n_non, bottom=n_rob, color="tab:blue", label="non-robust (x^(T) wrong)")
        ax.set_xticks(values if a.steps <= 20 else values[:: max(1, a.steps // 10)])
        ax.set_xlabel(f"LPS ({'κ: correct iterates' if a.lps_mode == 'count' else 'first misclassified step'})")
        ax.set_ylabel("training examples")
        ax.set_title(f"LPS histogram — {label} (n = {lps.size})")
        ax.legend(fontsize="small")
    return _finish(fig, path)


def pm_vs_lps_boxplot(analyses: Mapping[str, Any], path: str | Path | None = None) -> Figure:
    """MAIL Fig. 4: PM_nat of the examples at each LPS value. Box = interquartile range with the median,
    whiskers = 5th / 95th percentiles, points beyond them are outliers."""
    fig, axes = _panels(len(analyses))
    for ax, (label, a) in zip(axes, analyses.items()):
        lps, pm = np.asarray(a.lps), np.asarray(a.pm_nat, dtype=float)
        present = [k for k in range(a.steps + 1) if (lps == k).any()]
        if present:
            ax.boxplot([pm[lps == k] for k in present], positions=present, whis=(5, 95), widths=0.6,
                       flierprops={"markersize": 2, "alpha": 0.5})
            ax.set_xticks(present, [str(k) for k in present])
        else:
            _empty(ax, "no examples")
        ax.axhline(0.0, color="gray", lw=0.8, ls="--")
        ax.set_xlabel("LPS")
        ax.set_ylabel("PM_nat = p_y(x) − max_{j≠y} p_j(x)")
        ax.set_title(f"PM_nat vs LPS — {label}")
    return _finish(fig, path)


def _hist_steps(ax: Any, hist: Sequence[float], lo: float, hi: float, label: str, **kw: Any) -> None:
    h = np.asarray(hist, dtype=float)
    total = h.sum()
    frac = h / total if total > 0 else h
    edges = np.linspace(lo, hi, h.size + 1)
    ax.stairs(frac, edges, label=label, **kw)


def burn_in_distributions(items: Mapping[str, Mapping[str, Any]], path: str | Path | None = None) -> Figure:
    """Margin and weight histograms of the last epoch before burn-in ends and of the last epoch.

    `items[label]` = {"before": metrics line or None, "after": metrics line} (metrics.jsonl lines with
    "margin" / "weights" {hist, hist_range}); one row per label, columns margin and weight ω.
    """
    fig, axes = _panels(2 * len(items), ncols=2, size=(5.0, 3.0))
    for i, (label, it) in enumerate(items.items()):
        ax_m, ax_w = axes[2 * i], axes[2 * i + 1]
        lines = [(it.get("before"), "tab:blue", "-"), (it.get("after"), "tab:red", "--")]
        margin_name = (it["after"].get("margin") or {}).get("name", "margin")
        for line, color, ls in lines:
            if line is None:
                continue
            tag = f"epoch {line['epoch']} ({'reweighting' if line.get('reweight_active') else 'burn-in'})"
            m, w = line.get("margin"), line.get("weights")
            if m and m.get("hist"):
                _hist_steps(ax_m, m["hist"], *m["hist_range"], label=tag, color=color, ls=ls, lw=1.6)
            if w and w.get("hist"):
                _hist_steps(ax_w, w["hist"], *w["hist_range"], label=tag, color=color, ls=ls, lw=1.6)
        ax_m.set_xlabel(f"margin {margin_name}")
        ax_m.set_ylabel("fraction of training examples")
        ax_m.set_title(f"{margin_name} before / after burn-in — {label}")
        ax_w.set_xlabel("weight ω (batch-normalized)")
        ax_w.set_ylabel("fraction of training examples")
        ax_w.set_title(f"ω before / after burn-in — {label}")
        for ax in (ax_m, ax_w):
            if ax.get_legend_handles_labels()[0]:  # a run whose metrics have no histograms draws none
                ax.legend(fontsize="small")
    return _finish(fig, path)


def confused_labels(items: Mapping[str, Mapping[str, Any]], path: str | Path | None = None) -> Figure:
    """CLIRAT Fig. 1A: per epoch, misclassified adversarial training examples (all / one confused label /
    several). `items[label]` has "epoch", "misclassified", "one", "several" arrays and "burn_in_end"."""
    fig, axes = _panels(len(items), ncols=2, size=(5.5, 3.3))
    for ax, (label, it) in zip(axes, items.items()):
        ep = np.asarray(it["epoch"], dtype=float)
        width = 0.27
        ax.bar(ep - width, it["misclassified"], width, label="misclassified", color="tab:blue")
        ax.bar(ep, it["one"], width, label="one confused label", color="tab:orange")
        ax.bar(ep + width, it["several"], width, label="several confused labels", color="tab:green")
        b = it.get("burn_in_end")
        if b is not None and ep.size and b <= ep.max():
            ax.axvline(b - 0.5, color="gray", ls="--", lw=1, label="reweighting starts")
        top = max([float(np.max(it[k])) for k in ("misclassified", "one", "several") if np.size(it[k])] + [1.0])
        ax.set_ylim(0, 1.35 * top)  # room for the legend
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("adversarial training examples")
        ax.set_title(f"confused labels per epoch — {label}")
        ax.legend(fontsize="small", ncols=2, loc="upper center")
    return _finish(fig, path)


def confused_label_ablation(curves: Mapping[str, Mapping[str, np.ndarray]], *, ylabel: str, title: str,
                            burn_in_end: int | None = None, path: str | Path | None = None) -> Figure:
    """CLIRAT Fig. 1B: PGD-20 accuracy per epoch when training on all examples and without the misclassified
    adversarial examples of one (S^sig) or several (S^mul) confused labels. `curves[label]` = {"epoch",
    "mean", "std", "n"}: mean ± std over n seeds; a dashed line where the exclusion starts (`burn_in_end`)
    when the curves span it."""
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.subplots()
    for (label, c), color in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        _band(ax, c, label, color)
    _start_line(ax, curves.values(), burn_in_end, "exclusion starts")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return _finish(fig, path)


def gamma_beta_heatmap(gammas: Sequence[float], betas: Sequence[float], values: np.ndarray, *, metric: str,
                       title: str, path: str | Path | None = None) -> Figure:
    """CLIRAT Fig. 4: `values[i, j]` = accuracy (%) at γ = gammas[i], β = betas[j] (NaN = no run)."""
    vals = np.asarray(values, dtype=float)
    fig = Figure(figsize=(1.1 * len(betas) + 3.0, 0.8 * len(gammas) + 2.2), layout="constrained")
    ax = fig.subplots()
    masked = np.ma.masked_invalid(vals)
    im = ax.imshow(masked, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
    ax.set_yticks(range(len(gammas)), [f"{g:g}" for g in gammas])
    finite = vals[np.isfinite(vals)]
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            if np.isfinite(vals[i, j]):
                ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center",
                        color="white" if vals[i, j] < mid else "black", fontsize="small")
    ax.set_xlabel("β (sigmoid bias)")
    ax.set_ylabel("γ (sigmoid slope)")
    ax.set_title(title)
    cbar = fig.colorbar(im, ax=ax)
    cbar.set_label(f"{metric} accuracy (%)")
    return _finish(fig, path)


def loss_paths(losses_pgd: np.ndarray, losses_lmpgd: np.ndarray, lps_pgd: Sequence[int], lps_lmpgd: Sequence[int],
               pm_nat: Sequence[float], labels: Sequence[str], path: str | Path | None = None) -> Figure:
    """MAIL Fig. 1a: CE loss per attack step along PGD and LM-PGD, [T + 1, k] each, with each path's LPS
    (first misclassified step; T = never) and the path-independent PM_nat in the title."""
    lp, ll = np.atleast_2d(np.asarray(losses_pgd, dtype=float)), np.atleast_2d(np.asarray(losses_lmpgd, dtype=float))
    k = lp.shape[1]
    steps = lp.shape[0] - 1
    fig, axes = _panels(k, ncols=2)
    t = np.arange(steps + 1)
    for i, ax in enumerate(axes):
        for curve, s, name, color in ((lp[:, i], lps_pgd[i], "PGD", "tab:blue"),
                                      (ll[:, i], lps_lmpgd[i], "LM-PGD", "tab:red")):
            tag = f"LPS {int(s)}" if int(s) < steps else f"LPS {steps}: never misclassified"
            ax.plot(t, curve, color=color, label=f"{name} ({tag})")
        for s, color in ((lps_pgd[i], "tab:blue"), (lps_lmpgd[i], "tab:red")):
            if int(s) < steps:
                ax.axvline(int(s), color=color, ls=":", lw=1)
        ax.set_xlabel("attack step t")
        ax.set_ylabel("CE loss at x^(t)")
        ax.set_title(f"{labels[i]}: PM_nat = {float(pm_nat[i]):.3f}")
        ax.legend(fontsize="small")
    return _finish(fig, path)
