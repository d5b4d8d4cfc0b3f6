"""The tables as text: Markdown (accuracy, cost, paired differences, attack notes, the confused-label
ablation), CSV (accuracy; accuracy over epochs) and LaTeX."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .collect import Group, fmt_value
from .epochs import EXCLUDE_LABELS, Ablation, Curve, excluded_per_epoch
from .stats import Cells, MarginTable, PairedRow, Row, paired_cells

COLUMN_NAMES = {"nat": "NAT", "fgsm": "FGSM", "pgd20": "PGD-20", "pgd100": "PGD-100", "cw": "CW", "apgd": "APGD",
                "apgd-ce": "APGD", "apgd_ce": "APGD", "aa": "AA", "autoattack": "AA", "worst": "worst"}
# per-run outcomes stored beside an attack's parameters in eval.json: not parameters
RESULT_KEYS = {"n_examples", "n_attacked", "robust", "accuracy", "seconds", "doc"}


def column_title(key: str) -> str:
    return COLUMN_NAMES.get(key, key.upper())


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


def _cell_texts(cells: Cells, columns: list[str], n: int, fmt: Callable[[str, float, float], str]) -> list[str]:
    """One text per column: `fmt(column, mean, std)`, "(n=k)" when fewer than n values, "–" when none."""
    out = []
    for c in columns:
        if c not in cells:
            out.append("–")
            continue
        m, sd, k = cells[c]
        out.append(fmt(c, m, sd) if k == n else f"{fmt(c, m, sd)} (n={k})")
    return out


def seeds_text(seeds: list[int], stuck: list[int]) -> str:
    """The seeds of a paired difference, and those left out as stuck at the constant classifier."""
    text = ",".join(map(str, seeds)) or "none"
    return text + (f" ({','.join(map(str, stuck))} stuck, left out)" if stuck else "")


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


def paired_table(rows: list[PairedRow], columns: list[str]) -> str:
    with_settings = any(r.group.settings for r in rows)
    head = ["method − baseline"] + (["settings"] if with_settings else []) + ["seeds"] + \
        [column_title(c) for c in columns]
    body = [[f"{r.group.method} − {r.baseline.method}"] + ([r.group.settings_text] if with_settings else [])
            + [seeds_text(r.seeds, r.stuck)]
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
                params.setdefault(name, set()).add(", ".join(f"{k}={fmt_value(v)}" for k, v in kept))
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


def epochs_csv(curves: dict[str, dict[str, Curve]]) -> str:
    """`epoch_curves` as CSV: group, epoch, attack, mean, std, n; by group, epoch, then attack (table order)."""
    attacks = list(curves)
    labels = list(dict.fromkeys(label for by_group in curves.values() for label in by_group))
    rows = sorted(((labels.index(label), int(e), attacks.index(a), float(c["mean"][i]), float(c["std"][i]),
                    int(c["n"][i])) for a, by_group in curves.items() for label, c in by_group.items()
                   for i, e in enumerate(c["epoch"])), key=lambda r: r[:3])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["group", "epoch", "attack", "mean", "std", "n"])
    w.writerows([labels[g], e, attacks[a], repr(m), repr(s), n] for g, e, a, m, s, n in rows)
    return buf.getvalue()


def ablation_table(ab: Ablation, rows: list[Row], columns: list[str]) -> str:
    """CLIRAT Fig. 1B as a table: per exclude variant, the final accuracy (eval.json) mean ± std over seeds,
    each accuracy's difference to "all" paired by seed (stuck seeds left out, see `paired_cells`), and the
    examples excluded per epoch after the burn-in (mean ± std over seeds)."""
    row_of = {id(r.group): r for r in rows}
    variant_rows = {x: row_of.get(id(g)) for x, g in ab.variants.items()}
    cols = [c for c in columns if any(r and c in r.cells for r in variant_rows.values())]
    base = ab.variants.get("none")
    head = ["variant", "seeds", *[column_title(c) for c in cols]]
    head += ["paired seeds", *[f"Δ {column_title(c)} vs all" for c in cols]] if base else []
    head += ["excluded / epoch after burn-in"]
    body = []
    for x, g in ab.variants.items():
        r = variant_rows[x]
        n = r.n if r else 0
        out = [EXCLUDE_LABELS.get(x, x), str(n), *_cell_texts(r.cells if r else {}, cols, n, lambda c, m, sd: _pm(m, sd))]
        if base:
            seeds, cells, stuck = paired_cells(g, base, cols) if g is not base else ([], {}, [])
            out += [seeds_text(seeds, stuck) if g is not base else "–",
                    *_cell_texts(cells, cols, len(seeds), lambda c, m, sd: f"{m:+.2f} ± {sd:.2f}")]
        ex = excluded_per_epoch(g)
        out += _cell_texts({"excluded": ex} if ex[2] else {}, ["excluded"], sum(not run.stuck for run in g.runs),
                           lambda c, m, sd: f"{m:.1f} ± {sd:.1f}")
        body.append(out)
    return _md_table(head, 1, body)


OBJECTIVE_NAMES = {"at": "AT", "trades": "TRADES", "mart": "MART"}
MARGIN_NAMES = {"none": "none", "lps": "LPS", "pm_nat": "PM_nat", "pm_adv": "PM_adv", "pm_dif": "PM_dif",
                "cl_pm": "CL-PM"}
_MARGIN_TEX = {"pm_nat": r"PM$_\mathrm{nat}$", "pm_adv": r"PM$_\mathrm{adv}$", "pm_dif": r"PM$_\mathrm{dif}$"}


def _margin_cells(t: MarginTable) -> list[tuple[str, str]]:
    """The table's columns in order: objective groups, margins within them (cells that exist)."""
    return [(o, m) for o in t.objectives for m in t.margins if (o, m) in t.cells]


def _margin_best(t: MarginTable, column: str) -> dict[str, float]:
    """Per objective, the best mean of `column` over its margins (bold in the table, as in the paper)."""
    out = {}
    for o in t.objectives:
        vals = [t.cells[o, m].cells[column][0] for m in t.margins
                if (o, m) in t.cells and column in t.cells[o, m].cells]
        if len(vals) > 1:
            out[o] = max(vals)
    return out


def margin_markdown(t: MarginTable, columns: list[str]) -> str:
    """MAIL Table 1's layout: objectives as column groups, margins as columns, one row per attack (mean ± std
    over seeds, the best margin of each objective in bold), a row of seeds; then the per-seed differences
    of each margin to the baseline margin under the same objective."""
    cols = _margin_cells(t)
    head = ["accuracy (%)"] + [f"{OBJECTIVE_NAMES.get(o, o)} · {MARGIN_NAMES.get(m, m)}" for o, m in cols]
    body = [["seeds"] + [str(t.cells[c].n) + (f" (+{t.stuck[c]} stuck)" if t.stuck.get(c) else "") for c in cols]]
    for a in columns:
        best = _margin_best(t, a)

        def fmt(c: str, m: float, sd: float, o: str = "") -> str:
            return f"**{_pm(m, sd)}**" if best.get(o) == m else _pm(m, sd)

        body.append([column_title(a)] + [_cell_texts(t.cells[o, m].cells, [a], t.cells[o, m].n,
                                                     lambda c, mean, sd, o=o: fmt(c, mean, sd, o))[0]
                                         for o, m in cols])
    out = _md_table(head, 1, body)
    if t.paired:
        head = ["objective", f"margin − {MARGIN_NAMES.get(t.baseline, t.baseline)}", "seeds",
                *[column_title(c) for c in columns]]
        rows = [[OBJECTIVE_NAMES.get(o, o), MARGIN_NAMES.get(m, m), seeds_text(seeds, stuck),
                 *_cell_texts(cells, columns, len(seeds), lambda c, mean, sd: f"{mean:+.2f} ± {sd:.2f}")]
                for (o, m), (seeds, cells, stuck) in t.paired.items()]
        out += "\n" + _md_table(head, 2, rows)
    return out


def margin_latex(t: MarginTable, columns: list[str], caption: str) -> str:
    """`margin_markdown`'s first table as LaTeX (booktabs): \\multicolumn objective groups over the margins."""
    cols = _margin_cells(t)
    groups = [(o, sum(1 for c in cols if c[0] == o)) for o in t.objectives if any(c[0] == o for c in cols)]
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(caption)}}}",
             rf"\begin{{tabular}}{{l{'c' * len(cols)}}}", r"\toprule",
             " & ".join([""] + [rf"\multicolumn{{{n}}}{{c}}{{{_tex(OBJECTIVE_NAMES.get(o, o))}}}" for o, n in groups])
             + r" \\"]
    start, rules = 2, []
    for _, n in groups:
        rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    lines += [" ".join(rules), " & ".join([""] + [_MARGIN_TEX.get(m, _tex(MARGIN_NAMES.get(m, m))) for _, m in cols])
              + r" \\", r"\midrule"]
    for a in columns:
        best = _margin_best(t, a)
        out = [_tex(column_title(a))]
        for o, m in cols:
            cell = t.cells[o, m].cells.get(a)
            if cell is None:
                out.append("--")
                continue
            mean, sd, _ = cell
            bold = rf"\mathbf{{{mean:.2f}}}" if best.get(o) == mean else f"{mean:.2f}"
            out.append(rf"${bold} \pm {sd:.2f}$")
        lines.append(" & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
