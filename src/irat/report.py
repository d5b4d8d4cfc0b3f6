"""`irat report DIR…`: tables (mean ± std over seeds) and the papers' figures from run directories.

A run directory is any directory holding config.yaml (what `irat train` and `irat sweep` write).
Runs are grouped by method and by every config key that varies between runs of that method (seed
and device excepted), e.g. "mail-at (reweight.gamma=5, reweight.beta=0)". Each group's eval.json
accuracies are aggregated over seeds: mean and standard deviation (ddof = 1 with two or more
seeds, 0 with one). The tables are shaped like the MAIL and CLIRAT papers' (rows methods; columns
NAT / PGD-20 / PGD-100 / CW / APGD / AA / worst where present) and written as Markdown, CSV and
LaTeX; the PNG figures go to figures/ beside the Markdown file:

- training curves (natural and PGD-20 validation accuracy per epoch, from metrics.jsonl);
- MAIL Fig. 1b (LPS histogram) and Fig. 4 (PM_nat vs LPS box plot) for one checkpoint per method,
  computed by `irat.analysis` on up to `--analysis-examples` training examples;
- margin and weight distributions of the last burn-in epoch and of the last epoch;
- CLIRAT Fig. 1A: misclassified adversarial examples with one vs several confused labels per epoch;
- CLIRAT Fig. 4: a γ × β heat map of robust accuracy when the runs vary reweight.gamma / reweight.beta.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from .errors import IratError
from .files import atomic_write_text
from .runs import RunDir, read_eval

COLUMN_NAMES = {"nat": "NAT", "fgsm": "FGSM", "pgd20": "PGD-20", "pgd100": "PGD-100", "cw": "CW", "apgd": "APGD",
                "apgd-ce": "APGD", "apgd_ce": "APGD", "aa": "AA", "autoattack": "AA", "worst": "worst"}
COLUMN_ORDER = ["nat", "fgsm", "pgd20", "pgd100", "cw", "apgd", "apgd-ce", "apgd_ce", "aa", "autoattack"]
NOT_A_SETTING = {"seed", "device", "method", "data.root"}  # never split groups by these
# per-run outcomes stored beside an attack's parameters in eval.json: not parameters
RESULT_KEYS = {"n_examples", "n_attacked", "robust", "accuracy", "seconds", "doc"}
ROBUST_PREFERENCE = ["pgd20", "pgd100", "aa", "autoattack", "cw", "worst"]


# ---------------------------------------------------------------------------------------------
# runs and groups


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line of a run still in progress
    return out


@dataclass
class Run:
    path: Path
    config: dict[str, Any]  # flattened, dotted keys
    metrics: list[dict[str, Any]]
    eval: dict[str, Any] | None

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def checkpoint(self) -> Path:
        return RunDir(self.path).last

    @property
    def burn_in_end(self) -> int:
        """First reweighted epoch (SPEC §2): reweight.from_epoch, else the epoch after the first LR decay."""
        f = self.config.get("reweight.from_epoch")
        if f is not None:
            return int(f)
        ms = self.config.get("optim.milestones") or []
        return (min(ms) + 1) if ms else 1


def find_runs(dirs: list[str | Path]) -> list[Run]:
    """Every directory with config.yaml under `dirs` (recursively), sorted by path."""
    seen: dict[Path, Run] = {}
    for d in dirs:
        d = Path(d)
        if not d.exists():
            raise IratError(f"report: {d}: no such directory")
        name = RunDir(d).config.name
        candidates = [d / name] if (d / name).is_file() else []
        candidates += sorted(d.rglob(name))
        for cfg_path in candidates:
            run_dir = cfg_path.parent.resolve()
            if run_dir in seen:
                continue
            try:
                cfg = yaml.safe_load(cfg_path.read_text()) or {}
            except yaml.YAMLError:
                continue
            if not isinstance(cfg, dict) or "method" not in cfg:
                continue
            run = RunDir(run_dir)
            seen[run_dir] = Run(cfg_path.parent, _flatten(cfg), _read_jsonl(run.metrics), read_eval(run.eval_json))
    return [seen[k] for k in sorted(seen)]


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


@dataclass
class Group:
    method: str
    settings: tuple[tuple[str, Any], ...]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        if not self.settings:
            return self.method
        return f"{self.method} ({', '.join(f'{k}={_fmt_value(v)}' for k, v in self.settings)})"

    @property
    def settings_text(self) -> str:
        return ", ".join(f"{k}={_fmt_value(v)}" for k, v in self.settings)

    def setting(self, key: str) -> Any:
        return dict(self.settings).get(key)


def _method_order(method: str) -> tuple[int, str]:
    from .methods import METHODS

    names = list(METHODS)
    return (names.index(method) if method in names else len(names), method)


def _sort_key(v: Any) -> tuple[int, Any]:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v))
    return (1, _fmt_value(v))


def group_runs(runs: list[Run]) -> list[Group]:
    """Group by method and by the config keys whose values differ between that method's runs."""
    by_method: dict[str, list[Run]] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(r)
    groups: list[Group] = []
    for method in sorted(by_method, key=_method_order):
        rs = by_method[method]
        keys = sorted({k for r in rs for k in r.config} - NOT_A_SETTING)
        varied = [k for k in keys if len({_fmt_value(r.config.get(k)) for r in rs}) > 1]
        found: dict[tuple[str, ...], Group] = {}
        for r in rs:
            settings = tuple((k, r.config.get(k)) for k in varied)
            key = tuple(_fmt_value(v) for _, v in settings)
            found.setdefault(key, Group(method, settings)).runs.append(r)
        ordered = sorted(found.values(), key=lambda g: [_sort_key(v) for _, v in g.settings])
        for g in ordered:
            g.runs.sort(key=lambda r: (r.seed, str(r.path)))
        groups.extend(ordered)
    return groups


# ---------------------------------------------------------------------------------------------
# the table


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and standard deviation over seeds: ddof = 1 with two or more values, 0 with one."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size >= 2 else 0.0


def table_columns(groups: list[Group]) -> list[str]:
    present = {k for g in groups for r in g.runs if r.eval for k in r.eval.get("accuracy", {})}
    known = [c for c in COLUMN_ORDER if c in present]
    rest = sorted(present - set(COLUMN_ORDER) - {"worst"})
    return known + rest + (["worst"] if "worst" in present else [])


def column_title(key: str) -> str:
    return COLUMN_NAMES.get(key, key.upper())


@dataclass
class Row:
    group: Group
    n: int  # runs with eval.json
    cells: dict[str, tuple[float, float, int]]  # column -> (mean, std, n)


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


def _best(rows: list[Row], column: str) -> float | None:
    vals = [r.cells[column][0] for r in rows if column in r.cells]
    return max(vals) if vals else None


def _pm(mean: float, std: float, sep: str = " ± ") -> str:
    return f"{mean:.2f}{sep}{std:.2f}"


def _md_table(head: list[str], n_text: int, body: list[list[str]]) -> str:
    """A Markdown table whose first `n_text` columns are left-aligned and the rest right-aligned."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * n_text + ["---:"] * (len(head) - n_text)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _cell_texts(cells: dict[str, tuple[float, float, int]], columns: list[str], n: int,
                fmt: Callable[[str, float, float], str]) -> list[str]:
    """One text per column: `fmt(column, mean, std)`, "(n=k)" when fewer than n values, "–" when none."""
    out = []
    for c in columns:
        if c not in cells:
            out.append("–")
            continue
        m, sd, k = cells[c]
        out.append(fmt(c, m, sd) if k == n else f"{fmt(c, m, sd)} (n={k})")
    return out


def markdown_table(rows: list[Row], columns: list[str]) -> str:
    with_settings = any(r.group.settings for r in rows)
    head = ["method"] + (["settings"] if with_settings else []) + ["seeds"] + [column_title(c) for c in columns]
    best = {c: _best(rows, c) for c in columns}

    def fmt(c: str, m: float, sd: float) -> str:
        return f"**{_pm(m, sd)}**" if len(rows) > 1 and best[c] is not None and m == best[c] else _pm(m, sd)

    body = [[r.group.method] + ([r.group.settings_text] if with_settings else []) + [str(r.n)]
            + _cell_texts(r.cells, columns, r.n, fmt) for r in rows]  # (n=k): fewer seeds with this attack
    return _md_table(head, 1 + with_settings, body)


def csv_table(rows: list[Row], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "settings", "seeds", *[f"{c}_{s}" for c in columns for s in ("mean", "std", "n")]])
    for r in rows:
        vals: list[Any] = []
        for c in columns:
            vals += [repr(r.cells[c][0]), repr(r.cells[c][1]), r.cells[c][2]] if c in r.cells else ["", "", 0]
        w.writerow([r.group.method, r.group.settings_text, r.n, *vals])
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{",
        "}": r"\}", "γ": r"$\gamma$", "β": r"$\beta$", "±": r"$\pm$", "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}"}


def _tex(s: str) -> str:
    return "".join(_TEX.get(c, c) for c in s)


def latex_table(rows: list[Row], columns: list[str], caption: str) -> str:
    with_settings = any(r.group.settings for r in rows)
    spec = "l" + ("l" if with_settings else "") + "r" + "c" * len(columns)
    head = ["Method"] + (["Settings"] if with_settings else []) + ["Seeds"] + [_tex(column_title(c)) for c in columns]
    best = {c: _best(rows, c) for c in columns}
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(caption)}}}", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(head) + r" \\", r"\midrule"]
    for r in rows:
        out = [_tex(r.group.method)] + ([_tex(r.group.settings_text)] if with_settings else []) + [str(r.n)]
        for c in columns:
            if c not in r.cells:
                out.append("--")
                continue
            m, s, _ = r.cells[c]
            cell = f"{m:.2f} \\pm {s:.2f}"
            if len(rows) > 1 and m == best[c]:
                cell = rf"\mathbf{{{m:.2f}}} \pm {s:.2f}"
            out.append(f"${cell}$")
        lines.append(" & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def cost_table(rows: list[Row], columns: list[str]) -> str:
    """Seconds per finished (evaluated) run, mean over the group: the training loop (the sum of the
    epochs' `seconds` in metrics.jsonl, validation excluded) and each attack of the evaluation as
    eval.json records it (results reused from an earlier evaluation keep that evaluation's time)."""
    attacks = [c for c in columns if c != "worst"]
    with_settings = any(r.group.settings for r in rows)
    head = ["method"] + (["settings"] if with_settings else []) + ["runs", "training (s)"] + \
        [f"{column_title(c)} (s)" for c in attacks]
    body = []
    for r in rows:
        done = [run for run in r.group.runs if run.eval]  # finished runs: a partial one would lower the mean
        train = [sum(float(m.get("seconds", 0.0)) for m in run.metrics) for run in done if run.metrics]
        out = [r.group.method] + ([r.group.settings_text] if with_settings else []) + \
            [str(len(done)), f"{np.mean(train):.0f}" if train else "–"]
        for c in attacks:
            secs = [float(run.eval["attacks"][c]["seconds"]) for run in done
                    if c in run.eval.get("attacks", {}) and "seconds" in run.eval["attacks"][c]]
            out.append(f"{np.mean(secs):.0f}" + (f" (n={len(secs)})" if len(secs) != len(done) else "")
                       if secs else "–")
        body.append(out)
    return _md_table(head, 1 + with_settings, body)


def paired_baselines(method: str) -> list[str]:
    """What a reweighted method is compared with, seed by seed: the unweighted method of its objective
    (at, trades or mart), and for a CL-PM method its PM_adv (MAIL) twin with the same weighting."""
    from .methods import METHODS

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
    seeds: list[int]  # seeds both groups have evaluated
    cells: dict[str, tuple[float, float, int]]  # column -> (mean, std, n) of the per-seed differences


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
            mine = {r.seed: r.eval["accuracy"] for r in g.runs if r.eval and "accuracy" in r.eval}
            theirs = {r.seed: r.eval["accuracy"] for r in b.runs if r.eval and "accuracy" in r.eval}
            seeds = sorted(set(mine) & set(theirs))
            cells = {}
            for c in columns:
                # the worst case is comparable only over the same attacks
                diffs = [float(mine[s][c]) - float(theirs[s][c]) for s in seeds
                         if mine[s].get(c) is not None and theirs[s].get(c) is not None
                         and (c != "worst" or set(mine[s]) == set(theirs[s]))]
                if diffs:
                    cells[c] = (*mean_std(diffs), len(diffs))
            if seeds:
                rows.append(PairedRow(g, b, seeds, cells))
    return rows


def paired_table(rows: list[PairedRow], columns: list[str]) -> str:
    with_settings = any(r.group.settings for r in rows)
    head = ["method − baseline"] + (["settings"] if with_settings else []) + ["seeds"] + \
        [column_title(c) for c in columns]
    body = [[f"{r.group.method} − {r.baseline.method}"] + ([r.group.settings_text] if with_settings else [])
            + [",".join(map(str, r.seeds))]
            + _cell_texts(r.cells, columns, len(r.seeds), lambda c, m, sd: f"{m:+.2f} ± {sd:.2f}") for r in rows]
    return _md_table(head, 1 + with_settings, body)


def attack_notes(groups: list[Group], columns: list[str]) -> list[str]:
    """Every attack parameter (SPEC §7), the evaluated checkpoints and test examples, from the eval.json files."""
    params: dict[str, set[str]] = {}
    epochs, n_ex, data = set(), set(), set()
    for g in groups:
        for r in g.runs:
            if not r.eval:
                continue
            for name, p in (r.eval.get("attacks") or {}).items():
                kept = [(k, v) for k, v in (p or {}).items() if k not in RESULT_KEYS]
                params.setdefault(name, set()).add(", ".join(f"{k}={_fmt_value(v)}" for k, v in kept))
            ck = r.eval.get("checkpoint") or {}
            if "epoch" in ck:
                epochs.add(f"{Path(str(ck.get('path', 'last.pt'))).name} @ epoch {ck['epoch']}")
            d = r.eval.get("data") or {}
            if d:
                data.add(f"{d.get('name', '?')} {d.get('split', 'test')}")
                n_ex.add(str(d.get("n_examples", "?")))
    notes = []
    for name in [c for c in columns if c in params] + sorted(set(params) - set(columns)):
        notes.append(f"- {column_title(name)}: " + (" | ".join(sorted(params[name])) or "no attack"))
    if epochs:
        notes.append(f"- checkpoints evaluated: {', '.join(sorted(epochs))}")
    if data:
        notes.append(f"- data: {', '.join(sorted(data))}, examples: {', '.join(sorted(n_ex))}")
    return notes


# ---------------------------------------------------------------------------------------------
# figures


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


def _representatives(groups: list[Group]) -> list[Group]:
    """One group per method: the first (in table order)."""
    seen, out = set(), []
    for g in groups:
        if g.method not in seen:
            seen.add(g.method)
            out.append(g)
    return out


def _burn_in_items(groups: list[Group]) -> dict[str, dict[str, Any]]:
    items = {}
    for g in _representatives(groups):
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
    for g in _representatives(groups):
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


def robust_column(columns: list[str]) -> str | None:
    return next((c for c in ROBUST_PREFERENCE if c in columns), None)


def _heatmaps(rows: list[Row], metric: str) -> list[dict[str, Any]]:
    """One γ × β table per (method, other varied settings) when reweight.gamma or reweight.beta vary."""
    out = []
    by: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        keys = dict(r.group.settings)
        if "reweight.gamma" not in keys and "reweight.beta" not in keys:
            continue
        rest = ", ".join(f"{k}={_fmt_value(v)}" for k, v in r.group.settings if k not in ("reweight.gamma",
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


@dataclass
class ReportResult:
    markdown: Path
    csv: Path
    latex: Path
    rows: list[Row]
    columns: list[str]
    figures: dict[str, Path]
    figure_objects: dict[str, Any] = field(default_factory=dict)
    analyses: dict[str, Any] = field(default_factory=dict)


def build_report(dirs: list[str | Path], out: str | Path = "report.md", *, analysis_examples: int = 2000,
                 device: str = "auto", keep_figures: bool = False, log: Any = None, title: str = "irat report",
                 intro: str | None = None) -> ReportResult:
    """Find the runs under `dirs`, write FILE.md / .csv / .tex and figures/*.png; see the module docstring.

    `title` heads the Markdown file; `intro` (Markdown text, e.g. a written analysis) follows it,
    before the generated tables."""
    from . import figures as F

    heading = title  # `title` is reused below for the figures
    from .analysis import analyze_checkpoint_lps

    log = log or (lambda s: None)
    runs = find_runs(dirs)
    if not runs:
        raise IratError(f"report: no run directories (with config.yaml) under {', '.join(map(str, dirs))}")
    out = Path(out)
    if out.suffix.lower() != ".md":
        out = out.with_suffix(".md")
    fig_dir = out.parent / "figures"
    groups = group_runs(runs)
    columns = table_columns(groups)
    rows = table_rows(groups, columns)

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
    analyses: dict[str, Any] = {}
    if analysis_examples > 0:
        for g in _representatives(groups):
            run = next((r for r in g.runs if r.checkpoint.is_file()), None)
            if run is None:
                continue
            log(f"analysis: {run.path} ({analysis_examples} training examples)")
            analyses[f"{g.label}, seed {run.seed}"] = analyze_checkpoint_lps(run.checkpoint, analysis_examples,
                                                                            device=device)
    if analyses:
        emit("lps_histogram", F.lps_histogram(analyses), "LPS histogram (MAIL Fig. 1b)")
        emit("pm_vs_lps", F.pm_vs_lps_boxplot(analyses), "PM_nat vs LPS (MAIL Fig. 4)")
    burn = _burn_in_items(groups)
    if burn:
        emit("burn_in_distributions", F.burn_in_distributions(burn), "Margins and weights before / after burn-in")
    conf = _confused_items(groups)
    if conf:
        emit("confused_labels", F.confused_labels(conf), "Confused labels per epoch (CLIRAT Fig. 1A)")
    metric = robust_column(columns)
    if metric is not None:
        for hm in _heatmaps(rows, metric):
            title = f"{column_title(metric)} accuracy over γ × β — {hm['method']}" + (f" ({hm['rest']})" if hm["rest"]
                                                                                  else "")
            name = "gamma_beta_" + _slug(hm["method"] + ("_" + hm["rest"] if hm["rest"] else ""))
            emit(name, F.gamma_beta_heatmap(hm["gammas"], hm["betas"], hm["values"], metric=column_title(metric),
                                            title=title), f"γ × β heat map, {hm['method']} (CLIRAT Fig. 4)"
                 + (f" ({hm['rest']})" if hm["rest"] else ""))

    n_eval = sum(1 for r in runs if r.eval)
    md = [f"# {heading}", "", *([intro.rstrip(), ""] if intro else []),
          f"{len(runs)} runs in {len(groups)} groups ({n_eval} evaluated) from {', '.join(map(str, dirs))}.", "",
          "## Accuracy (%) — mean ± std over seeds", "",
          "Standard deviation over seeds with ddof = 1 (0 for a single seed); robust accuracy against a set of "
          "attacks (`worst`) is the per-example worst case. Best mean per column in bold.", ""]
    md.append(markdown_table(rows, columns) if columns else "_No eval.json found: run `irat eval` or "
                                                            "`irat sweep --eval`._\n")
    if columns:
        md += ["### Cost", "", "Seconds per run, mean over the runs that have them: the training loop (validation "
               "excluded) and each attack over its examples, as measured on the machine that ran it.", "",
               cost_table(rows, columns)]
        paired = paired_rows(groups, columns)
        if paired:
            md += ["### Paired by seed: reweighted method − its baseline", "",
                   "Accuracy differences (points) between runs of the same seed — the same initial weights, data "
                   "order and attack noise — mean ± std over the seeds both have. The baseline is the unweighted "
                   "method of the same objective and, for a CL-PM method, its PM_adv (MAIL) twin. Methods with "
                   "the same objective and trade-off train identically until reweighting starts, so there the "
                   "difference is the reweighting's alone.", "", paired_table(paired, columns)]
    notes = attack_notes(groups, columns)
    if notes:
        md += ["### Attacks and checkpoints", "", *notes, ""]
    missing = [str(r.path) for r in runs if not r.eval]
    if missing:
        md += [f"Runs without eval.json ({len(missing)}): " + ", ".join(f"`{m}`" for m in missing[:20])
               + (" …" if len(missing) > 20 else ""), ""]
    if analyses:
        md += ["### LPS vs PM (training data, training attack)", "",
               "| run | examples | LPS = T | non-robust at LPS = T |", "|---|---:|---:|---:|"]
        for label, a in analyses.items():
            s = a.summary()
            md.append(f"| {label} | {s['n_examples']} | {100 * s['fraction_at_max_lps']:.1f}% | "
                      f"{s['non_robust_at_max_lps']} |")
        md.append("")
    if figs:
        md += ["## Figures", ""]
        for title, p in figs.items():
            md += [f"### {title}", "", f"![{title}]({p.relative_to(out.parent).as_posix()})", ""]
    md += ["## Groups", ""]
    for g in groups:
        md.append(f"- {g.label}: " + ", ".join(f"`{r.path}`" for r in g.runs))
    md.append("")

    csv_path, tex_path = out.with_suffix(".csv"), out.with_suffix(".tex")
    atomic_write_text(out, "\n".join(md))
    atomic_write_text(csv_path, csv_table(rows, columns))
    atomic_write_text(tex_path, latex_table(rows, columns, "Accuracy (%), mean ± std over seeds"))
    return ReportResult(out, csv_path, tex_path, rows, columns, figs, objects, analyses)
