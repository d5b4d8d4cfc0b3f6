"""The result of an evaluation, its files, and what an earlier evaluation lets `--reuse` keep.

eval.json holds `EvalResult.report`, eval_examples.json `EvalResult.examples` (per attack and
example: 1 robust, 0 broken, null not attacked), eval.md the Markdown table; the layout of these
files and reading them back live in `irat.runs`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..attacks.registry import ATTACKS
from ..files import atomic_write_json, atomic_write_text
from ..runs import eval_files, read_eval, read_eval_examples
from .markdown import format_markdown
from .outcomes import NOT_RUN, Outcomes


@dataclass
class EvalResult:
    """`report` is what eval.json holds, `examples` what eval_examples.json holds."""

    report: dict[str, Any]
    examples: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def accuracy(self) -> dict[str, float]:
        return self.report["accuracy"]

    @property
    def flags(self) -> dict[str, Any]:
        return self.report["flags"]

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def markdown(self) -> str:
        return format_markdown(self.report)

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write eval.json at `out`, and eval.md and eval_examples.json beside it (atomically)."""
        paths = eval_files(out)
        self.report["files"] = {"markdown": paths["markdown"].name, "examples": paths["examples"].name}
        atomic_write_text(paths["examples"], json.dumps(self.examples, separators=(",", ":")) + "\n")
        atomic_write_text(paths["markdown"], self.markdown())
        atomic_write_json(paths["json"], self.report)
        self.paths = paths
        return paths


Previous = EvalResult | Mapping[str, Any]  # an EvalResult, or {"report", "examples"} as `load_eval` reads them


def load_eval(path: str | Path) -> dict[str, Any] | None:
    """{"report", "examples"} from an eval.json and the eval_examples.json beside it; None if either
    is missing or unreadable (then nothing is reused)."""
    report = read_eval(path)
    examples = read_eval_examples(path, report) if report is not None else None
    return None if examples is None else {"report": report, "examples": examples}


def load_eval_of(path: str | Path, sha256: str, model_sha256: str | None, model_name: str,
                 weights: str = "raw") -> dict[str, Any] | None:
    """`load_eval(path)` if it evaluated this checkpoint with the same weights (EMA or raw): the same
    file (SHA-256), or the same architecture with the same weights' hash (another file of the same
    weights); else None."""
    previous = load_eval(path)
    if previous is None:
        return None
    stored = previous["report"].get("checkpoint", {})
    if stored.get("weights", "raw") != weights:
        return None
    same_weights = (model_sha256 is not None and stored.get("model_sha256") == model_sha256
                    and previous["report"].get("model", {}).get("name") == model_name)
    return previous if stored.get("sha256") == sha256 or same_weights else None


def report_of(previous: Previous | None) -> dict[str, Any]:
    if previous is None:
        return {}
    return dict(previous.report if isinstance(previous, EvalResult) else previous.get("report") or {})


def _examples_of(previous: Previous) -> dict[str, Any]:
    return dict(previous.examples if isinstance(previous, EvalResult) else previous.get("examples") or {})


def take_reusable(previous: Previous | None, out: Outcomes, settings: Mapping[str, Any]) -> list[str]:
    """Record in `out` the attacks at the head of `out.order` that `previous` ran identically (same
    position, parameters, example count and evaluation `settings`), as it found them; their names."""
    if previous is None:
        return []
    taken = _reusable_prefix(previous, out, settings)
    for a in taken:
        _take_stored(previous, a, out)
    return taken


def _reusable_prefix(previous: Previous, out: Outcomes, settings: Mapping[str, Any]) -> list[str]:
    rep = report_of(previous)
    if not rep:
        return []
    try:
        same = (float(rep["eps"]) == settings["eps"] and int(rep["seed"]) == settings["seed"]
                and int(rep["batch_size"]) == settings["batch_size"]
                and bool(rep["cascade"]["enabled"]) == settings["cascade"]
                and int(rep["data"]["n_examples"]) == settings["n_examples"]
                and int(rep["data"]["n_available"]) == settings["n_available"])
        stored_order = list(rep["order"])
        robust = _examples_of(previous)["robust"]
    except (KeyError, TypeError, ValueError):
        return []
    if not same:
        return []
    taken: list[str] = []
    for pos, a in enumerate(out.order):
        if pos >= len(stored_order) or stored_order[pos] != a or a not in robust:
            break
        stored = rep["attacks"].get(a, {})
        if int(stored.get("n_examples", -1)) != out.coverage[a] or len(robust[a]) != settings["n_examples"]:
            break
        if {k: stored.get(k) for k in out.params[a]} != out.params[a]:
            break
        taken.append(a)
    return taken


def _take_stored(previous: Previous, a: str, out: Outcomes) -> None:
    """Attack `a` as `previous` found it: codes, meta, max |δ|∞, the (min, max) of its inputs, and
    the package's own warnings."""
    rep, ex = report_of(previous), _examples_of(previous)
    out.codes[a] = torch.tensor([NOT_RUN if c is None else int(c) for c in ex["robust"][a]], dtype=torch.int8)
    stored = rep["attacks"][a]
    out.meta[a] = {k: stored[k] for k in ("mode", "n_examples", "n_attacked", "robust", "accuracy", "seconds")}
    bound = rep.get("flags", {}).get("perturbation_bound", {})
    linf = bound.get("max_linf", {}).get(a)
    if linf is not None:
        out.max_linf[a] = linf
    lo, hi = bound.get("adv_min"), bound.get("adv_max")
    out.widen_box(float("inf") if lo is None or a == "nat" else float(lo),
                  float("-inf") if hi is None or a == "nat" else float(hi))
    if ATTACKS[a].reports_checks:
        out.package_warnings[a] = rep.get("flags", {}).get("autoattack_checks", {}).get("warnings", {}).get(a, [])


__all__ = ["EvalResult", "Previous", "load_eval", "load_eval_of", "report_of", "take_reusable"]
