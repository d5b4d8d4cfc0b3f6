"""`irat report DIR…`: tables (mean ± std over seeds) and the papers' figures from run directories.

A run directory is any directory holding config.yaml (what `irat train` and `irat sweep` write).
Runs are grouped by method and by every config key that varies between runs of that method (seed
and device excepted), e.g. "mail-at (reweight.gamma=5, reweight.beta=0)". Each group's eval.json
accuracies are aggregated over seeds: mean and standard deviation (ddof = 1 with two or more
seeds, 0 with one). The tables are shaped like the MAIL and CLIRAT papers' (rows methods; columns
NAT / PGD-20 / PGD-100 / CW / APGD / AA / worst where present) and written as Markdown, CSV and
LaTeX. When the runs vary `reweight.margin` (e.g. `--grid objective=at,trades,mart --grid
reweight.margin=lps,pm_nat,pm_adv`), the report also lays them out as MAIL Table 1 (objectives as
column groups, margins as columns, attacks as rows; FILE_margins.tex) with each margin minus LPS paired
by seed. The PNG figures go to figures/ beside the Markdown file:

- training curves (natural and PGD-20 validation accuracy per epoch, from metrics.jsonl);
- MAIL Fig. 1b (LPS histogram) and Fig. 4 (PM_nat vs LPS box plot) for one checkpoint per method,
  computed by `irat.analysis` on up to `--analysis-examples` training examples;
- margin and weight distributions of the last burn-in epoch and of the last epoch;
- CLIRAT Fig. 1A: misclassified adversarial examples with one vs several confused labels per epoch;
- CLIRAT Fig. 3 and 5: test accuracy of the kept checkpoints (checkpoints/epoch-NNN.eval.json) against the
  epoch, one panel per attack, mean ± std over seeds (the numbers also in FILE_epochs.csv);
- CLIRAT Fig. 1B: PGD-20 accuracy per epoch of the groups that differ in reweight.exclude (all / without
  S^sig / without S^mul), with a table of their final accuracy and of the examples excluded per epoch;
- CLIRAT Fig. 4: a γ × β heat map of robust accuracy when the runs vary reweight.gamma / reweight.beta.

The package, in the order the data flows:

    collect.py   find the run directories (`Run`) and group them (`Group`)
    stats.py     mean ± std over seeds per group (`Row`), per-seed differences to a baseline (`PairedRow`),
                 the objective × margin layout (`MarginTable`)
    epochs.py    mean ± std over seeds per epoch: the kept checkpoints' accuracy, the confused-label ablation
    tables.py    those numbers as Markdown, CSV and LaTeX tables
    plots.py     the data of each figure, gathered from the runs, and the PNGs (drawn by `irat.figures`)
    build.py     `build_report`: all of the above into FILE.md, FILE.csv, FILE.tex (FILE_epochs.csv) and figures/
"""
from .build import ReportResult, build_report
from .collect import Group, Run, find_runs, group_runs
from .epochs import Ablation, ablations, epoch_curves
from .stats import (MarginTable, PairedRow, Row, margin_tables, mean_std, paired_baselines, paired_rows,
                    table_columns, table_rows)
from .tables import ablation_table, cost_table, csv_table, epochs_csv, latex_table, markdown_table, paired_table

__all__ = [
    "Ablation", "Group", "MarginTable", "PairedRow", "ReportResult", "Row", "Run", "ablation_table", "ablations",
    "build_report", "cost_table", "csv_table", "epoch_curves", "epochs_csv", "find_runs", "group_runs",
    "latex_table", "margin_tables", "markdown_table", "mean_std", "paired_baselines", "paired_rows",
    "paired_table", "table_columns", "table_rows",
]
