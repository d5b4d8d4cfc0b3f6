"""`build_report`: runs → groups → tables and figures → FILE.md, FILE.csv, FILE.tex and figures/*.png (and
FILE_epochs.csv when runs have evaluated kept checkpoints, FILE_margins.tex when they vary the margin)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis import LPSAnalysis
from ..errors import IratError
from ..files import atomic_write_text
from .collect import Group, Run, find_runs, group_runs
from .epochs import Ablation, Curve, ablations, epoch_curves, kept_examples
from .plots import draw_figures, lps_analyses
from .stats import MarginTable, Row, margin_tables, paired_rows, table_columns, table_rows
from .tables import (ablation_table, attack_notes, column_title, cost_table, csv_table, epochs_csv, latex_table,
                     margin_latex, margin_markdown, markdown_table, paired_table)


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
    epochs_csv: Path | None = None  # FILE_epochs.csv: accuracy of the kept checkpoints per group, epoch, attack
    epochs: dict[str, dict[str, Curve]] = field(default_factory=dict)  # `epoch_curves`
    ablations: list[Ablation] = field(default_factory=list)
    margin_tables: list[MarginTable] = field(default_factory=list)  # MAIL Table 1's layout, when margins vary
    margins_latex: Path | None = None  # FILE_margins.tex


def build_report(dirs: list[str | Path], out: str | Path = "report.md", *, analysis_examples: int = 2000,
                 device: str = "auto", keep_figures: bool = False, log: Any = None, title: str = "irat report",
                 intro: str | None = None) -> ReportResult:
    """Find the runs under `dirs`, write FILE.md / .csv / .tex and figures/*.png; see `irat.report`.

    `title` heads the Markdown file; `intro` (Markdown text, e.g. a written analysis) follows it,
    before the generated tables."""
    log = log or (lambda s: None)
    runs = find_runs(dirs)
    if not runs:
        raise IratError(f"report: no run directories (with config.yaml) under {', '.join(map(str, dirs))}")
    out = Path(out)
    if out.suffix.lower() != ".md":
        out = out.with_suffix(".md")
    groups = group_runs(runs)
    columns = table_columns(groups)
    rows = table_rows(groups, columns)
    analyses = lps_analyses(groups, analysis_examples, device, log)
    epochs, abl = epoch_curves(groups), ablations(groups)
    figs, objects = draw_figures(groups, rows, columns, analyses, out.parent / "figures", keep_figures, epochs, abl)

    csv_path, tex_path = out.with_suffix(".csv"), out.with_suffix(".tex")
    epochs_path = out.with_name(out.stem + "_epochs.csv") if epochs else None
    margins = margin_tables(rows, columns)
    margins_path = out.with_name(out.stem + "_margins.tex") if margins else None
    extra = _margins_markdown(margins, columns, margins_path) + _per_epoch_markdown(groups, rows, columns, epochs, abl,
                                                                                    epochs_path)
    atomic_write_text(out, _markdown(dirs, runs, groups, rows, columns, analyses, figs, out.parent, title, intro,
                                     extra))
    atomic_write_text(csv_path, csv_table(rows, columns))
    atomic_write_text(tex_path, latex_table(rows, columns, "Accuracy (%), mean ± std over seeds"))
    if epochs_path is not None:
        atomic_write_text(epochs_path, epochs_csv(epochs))
    if margins_path is not None:
        atomic_write_text(margins_path, "\n".join(
            margin_latex(t, columns, "Accuracy (%), mean ± std over seeds, by objective and margin"
                         + (f" ({t.context})" if t.context else "")) for t in margins))
    return ReportResult(out, csv_path, tex_path, rows, columns, figs, objects, analyses, epochs_path, epochs, abl,
                        margins, margins_path)


def _markdown(dirs: list[str | Path], runs: list[Run], groups: list[Group], rows: list[Row], columns: list[str],
              analyses: dict[str, LPSAnalysis], figs: dict[str, Path], base: Path, heading: str,
              intro: str | None, extra: list[str] | None = None) -> str:
    """The report's Markdown: the heading and intro, the tables (then the `extra` lines: the margin tables, the ablation, the kept checkpoints), the LPS
    summary, the figures (linked relative to `base`, the Markdown file's folder) and the groups."""
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
    md += extra or []
    notes = attack_notes(groups, columns)
    if notes:
        md += ["### Attacks and checkpoints", "", *notes, ""]
    stuck = [str(r.path) for r in runs if r.stuck]
    if stuck:
        md += [f"Runs at the constant classifier when reweighting began (training accuracy ≈ 100/K and loss ≈ ln K "
               f"in the epoch before, metrics.jsonl; in the means above, left out of the paired differences) "
               f"({len(stuck)}): "
               + ", ".join(f"`{m}`" for m in stuck), ""]
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
            md += [f"### {title}", "", f"![{title}]({p.relative_to(base).as_posix()})", ""]
    md += ["## Groups", ""]
    for g in groups:
        md.append(f"- {g.label}: " + ", ".join(f"`{r.path}`" for r in g.runs))
    md.append("")
    return "\n".join(md)


def _margins_markdown(tables: list[MarginTable], columns: list[str], latex: Path | None) -> list[str]:
    """MAIL Table 1's layout of the groups that vary the margin (see `margin_tables`)."""
    md: list[str] = []
    for t in tables:
        md += [f"### By objective and margin (MAIL Table 1){f': {t.context}' if t.context else ''}", "",
               "Objectives as column groups, margins as columns, attacks as rows: accuracy (%) mean ± std over seeds, "
               "the best margin of each objective in bold; runs stuck at the constant classifier before reweighting "
               "began are left out here (counted in the seeds row) and kept in the long table. Below, each margin "
               "minus "
               f"{t.baseline} under the same objective, paired by seed (points)."
               + (f" LaTeX: [{latex.name}]({latex.name})." if latex else ""), "", margin_markdown(t, columns)]
    return md


def _per_epoch_markdown(groups: list[Group], rows: list[Row], columns: list[str], epochs: dict[str, dict[str, Curve]],
                        abl: list[Ablation], epochs_csv_path: Path | None) -> list[str]:
    """The confused-label ablation tables and the note on the kept checkpoints' evaluations (none without them)."""
    md: list[str] = []
    for ab in abl:
        md += [f"### Confused-label ablation (CLIRAT Fig. 1B): {ab.title}", "",
               f"From epoch {ab.burn_in_end} on (after the burn-in), the misclassified adversarial training examples "
               "with a single confused label (S^sig) or with several (S^mul) are left out of the loss "
               "(`reweight.exclude`). Final accuracy (%) from eval.json, mean ± std over seeds; each accuracy "
               "minus that of training on all examples, paired by seed; examples excluded per epoch after the "
               "burn-in (metrics.jsonl), each seed's mean, then mean ± std over seeds. Seeds at the constant "
               "classifier when the exclusion began are left out of the differences, the counts and the figure, "
               f"which shows {ab.source} PGD-20 accuracy per epoch.", "",
               ablation_table(ab, rows, columns)]
    if epochs_csv_path is not None:
        runs = [r for g in groups for r in g.runs if r.kept_evals]
        sizes = kept_examples(groups, list(epochs))
        md += ["### Accuracy of the kept checkpoints", "",
               f"{sum(len(r.kept_evals) for r in runs)} evaluations of kept checkpoints "
               f"(`checkpoints/epoch-NNN.eval.json`, written by `irat eval RUN`) in {len(runs)} runs. Test "
               "accuracy (%) per group, epoch and attack, mean ± std over seeds (n: the seeds evaluated at that "
               f"epoch): [{epochs_csv_path.name}]({epochs_csv_path.name}).", ""]
        if sizes:
            md += ["Test examples per attack: " + ", ".join(
                f"{column_title(a)} {' / '.join(map(str, n))}" for a, n in sizes.items()) + ".", ""]
    return md
