"""Finding run directories and grouping them by method and by the settings that vary between them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, OptimConfig, ReweightConfig
from ..errors import IratError
from ..methods import METHODS
from ..runs import RunDir, read_eval
from ..training.epochs import stuck_at_constant

NOT_A_SETTING = {"seed", "device", "method", "data.root"}  # never split groups by these


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


def fmt_value(v: Any) -> str:
    """A config value as group labels and notes show it."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


@dataclass
class Run:
    path: Path
    config: dict[str, Any]  # config.yaml flattened to dotted keys ("reweight.gamma")
    metrics: list[dict[str, Any]]
    eval: dict[str, Any] | None
    kept_evals: dict[int, dict[str, Any]] = field(default_factory=dict)  # epoch -> its kept checkpoint's eval

    @property
    def exclude(self) -> str:
        """reweight.exclude: "none" (every example in the loss), "single" (S^sig left out) or "multiple" (S^mul)."""
        return str(self.config.get("reweight.exclude") or "none")

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def stuck(self) -> bool:
        """At the constant classifier when its reweighting began: the last epoch before it has training
        accuracy ≈ 100/K and loss ≈ ln K (`stuck_at_constant`; K from eval.json). That part of training is
        the same for every variant of this seed (on one machine), so such a run says nothing about the
        variant. (The trainer's `"stuck": true` at epoch 2 is a warning; a run can still leave later.)"""
        k = ((self.eval or {}).get("data") or {}).get("num_classes")
        before = [m for m in self.metrics if int(m.get("epoch", 0)) < self.burn_in_end]
        last = before[-1] if before else {}
        return bool(k and "train_acc" in last and "loss" in last
                    and stuck_at_constant(float(last["train_acc"]), float(last["loss"]), int(k)))

    @property
    def checkpoint(self) -> Path:
        return RunDir(self.path).last

    @property
    def burn_in_end(self) -> int:
        """First reweighted epoch: `Config.burn_in_end` of this run's reweight.from_epoch and
        optim.milestones (the rest of its config is not validated: a report reads what it finds)."""
        optim, reweight = OptimConfig(), ReweightConfig()
        optim.milestones = self.config.get("optim.milestones", optim.milestones)
        reweight.from_epoch = self.config.get("reweight.from_epoch", reweight.from_epoch)
        return Config(optim=optim, reweight=reweight).burn_in_end


def read_kept_evals(run: RunDir) -> dict[int, dict[str, Any]]:
    """The evaluations of a run's kept checkpoints (checkpoints/epoch-NNN.eval.json, written by `irat eval
    RUN`), by the epoch each records; read even where the checkpoint itself has been deleted."""
    out = {}
    for path in sorted(run.checkpoints.glob("epoch-*.eval.json")):
        report = read_eval(path)
        epoch = ((report or {}).get("checkpoint") or {}).get("epoch")
        if isinstance(epoch, int) and isinstance(report.get("accuracy"), dict) \
                and RunDir.kept_eval(run.kept(epoch)) == path:
            out[epoch] = report
    return out


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
            seen[run_dir] = Run(cfg_path.parent, _flatten(cfg), _read_jsonl(run.metrics), read_eval(run.eval_json),
                                read_kept_evals(run))
    return [seen[k] for k in sorted(seen)]


@dataclass
class Group:
    method: str
    settings: tuple[tuple[str, Any], ...]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        if not self.settings:
            return self.method
        return f"{self.method} ({self.settings_text})"

    @property
    def settings_text(self) -> str:
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in self.settings)

    def setting(self, key: str) -> Any:
        return dict(self.settings).get(key)


def _method_order(method: str) -> tuple[int, str]:
    names = list(METHODS)
    return (names.index(method) if method in names else len(names), method)


def _sort_key(v: Any) -> tuple[int, Any]:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v))
    return (1, fmt_value(v))


def group_runs(runs: list[Run]) -> list[Group]:
    """Group by method and by the config keys whose values differ between that method's runs."""
    by_method: dict[str, list[Run]] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(r)
    groups: list[Group] = []
    for method in sorted(by_method, key=_method_order):
        rs = by_method[method]
        keys = sorted({k for r in rs for k in r.config} - NOT_A_SETTING)
        varied = [k for k in keys if len({fmt_value(r.config.get(k)) for r in rs}) > 1]
        found: dict[tuple[str, ...], Group] = {}
        for r in rs:
            settings = tuple((k, r.config.get(k)) for k in varied)
            key = tuple(fmt_value(v) for _, v in settings)
            found.setdefault(key, Group(method, settings)).runs.append(r)
        ordered = sorted(found.values(), key=lambda g: [_sort_key(v) for _, v in g.settings])
        for g in ordered:
            g.runs.sort(key=lambda r: (r.seed, str(r.path)))
        groups.extend(ordered)
    return groups


def representatives(groups: list[Group]) -> list[Group]:
    """One group per method: the first (in table order)."""
    seen, out = set(), []
    for g in groups:
        if g.method not in seen:
            seen.add(g.method)
            out.append(g)
    return out
