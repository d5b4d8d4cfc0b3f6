"""The tables as text: Markdown (accuracy, cost, paired differences, attack notes), CSV and LaTeX."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .collect import Group, fmt_value
from .stats import Cells, PairedRow, Row

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
