"""`irat sweep`: a grid of ordinary runs — methods × seeds × config overrides — trained and evaluated in turn.

    irat sweep --preset fmnist-smallcnn-at --methods at,mail-at,clirat --seeds 0,1,2 \\
        --grid reweight.gamma=2,5,10 --grid reweight.beta=-0.5,0 --set epochs=15 \\
        --out runs/grid --eval nat,pgd20,cw

Each cell is a run directory under `--out` with a deterministic name,

    <method>[/<key>=<value>...]/seed<k>        e.g. mail-at/reweight.gamma=5/reweight.beta=0/seed1

holding what `irat train` writes (config.yaml, metrics.jsonl, checkpoints/) plus eval.json when
`--eval` is given. A cell's config is `build_config(preset, config, [--set…, grid values, method,
seed])`, so it is the run `irat train` would make with those `--set` overrides.

Re-running the same command is safe and cheap: a finished cell (training done and, with `--eval`,
an eval.json for its current checkpoint that covers the requested attacks) is skipped; a cell
with checkpoints/last.pt but fewer epochs done is resumed (`resume=True`, bitwise where it left
off); a cell trained but not evaluated is only evaluated, and one evaluated with fewer attacks
runs only the missing ones (the stored per-example results of the others are reused). A cell whose
stored config differs from the one the sweep would build now is refused (use another `--out`).
`--dry-run` lists the cells and their state and runs nothing.

Cells run one after another in this process. To spread them over machines, run one cell per job:

- `irat sweep … --dry-run --print-commands` prints one shell line per cell (`irat train … --out
  <cell> && irat eval …`, reflecting the cell's state; `# done` for finished cells), e.g. for a
  SLURM array:

      irat sweep ARGS --dry-run --print-commands > cells.sh
      sbatch --array=1-$(wc -l < cells.sh) --wrap 'bash -c "$(sed -n ${SLURM_ARRAY_TASK_ID}p cells.sh)"'

- or `irat sweep ARGS --cell $SLURM_ARRAY_TASK_ID` (0-based index as listed by `--dry-run`),
  which keeps the skip/resume logic per cell.

`irat report DIR` then aggregates the cells into tables and figures.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from .config import Config, build_config, config_from_dict
from .errors import CheckpointError, ConfigError, IratError
from .files import atomic_write_json, sha256_file
from . import evaluation  # module attributes: tests may replace evaluate_checkpoint and train
from .training import trainer
from .runs import RunDir, read_eval

RESERVED = ("method", "seed")  # set by --methods / --seeds, not by --set / --grid


# ---------------------------------------------------------------------------------------------
# the grid


def split_values(raw: str) -> list[str]:
    """`"2,5,10"` -> ["2", "5", "10"]; commas inside brackets stay: `"[10,13],[5,8]"` -> two lists."""
    out, depth, cur = [], 0, ""
    for ch in raw:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return [v for v in out if v != ""]


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """`["reweight.gamma=2,5,10", ...]` -> [("reweight.gamma", ["2", "5", "10"]), ...] in the given order."""
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        if "=" not in item:
            raise ConfigError("--grid", "key=v1,v2,...", item)
        key, raw = item.split("=", 1)
        key = key.strip()
        values = split_values(raw)
        if not key or not values:
            raise ConfigError("--grid", "key=v1,v2,... with a key and at least one value", item)
        if key in RESERVED:
            raise ConfigError("--grid", f"a config key other than {', '.join(RESERVED)} (use --methods/--seeds)",
                              key)
        if any(key == k for k, _ in grid):
            raise ConfigError("--grid", "each key once", key)
        if len(set(values)) != len(values):
            raise ConfigError("--grid", "distinct values", item)
        grid.append((key, values))
    return grid


def _safe(value: str) -> str:
    """A value as a path component: keep [A-Za-z0-9._+-], replace the rest with '_'."""
    s = "".join(c if (c.isalnum() or c in "._+-") else "_" for c in value)
    return s or "_"


@dataclass(frozen=True)
class Cell:
    index: int
    method: str
    seed: int
    settings: tuple[tuple[str, str], ...]  # (key, raw value) from the grid, in grid order

    @property
    def name(self) -> str:
        parts = [self.method, *(f"{k}={_safe(v)}" for k, v in self.settings), f"seed{self.seed}"]
        return "/".join(parts)

    def overrides(self, sets: list[str]) -> list[str]:
        return [*sets, *(f"{k}={v}" for k, v in self.settings), f"method={self.method}", f"seed={self.seed}"]


@dataclass
class SweepSpec:
    out: Path
    methods: list[str]
    seeds: list[int]
    preset: str | None = None
    config_file: str | None = None
    grid: list[tuple[str, list[str]]] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    eval_attacks: list[str] | None = None
    eval_examples: int | None = None
    eval_limits: dict[str, int] = field(default_factory=dict)  # attack -> first N examples
    eval_batch_size: int = 256
    eval_checkpoint: str = "last"  # last | best

    def cells(self) -> list[Cell]:
        combos: list[tuple[tuple[str, str], ...]] = [()]
        for key, values in self.grid:
            combos = [c + ((key, v),) for c in combos for v in values]
        out = []
        for m in self.methods:
            for combo in combos:
                for s in self.seeds:
                    out.append(Cell(len(out), m, s, combo))
        return out


def validate_spec(spec: SweepSpec) -> None:
    if (spec.preset is None) == (spec.config_file is None):
        raise IratError("--preset/--config: give exactly one (see `irat presets`)")
    if not spec.methods:
        raise ConfigError("--methods", "a comma list of method names (see `irat methods`)", "")
    if len(set(spec.methods)) != len(spec.methods):
        raise ConfigError("--methods", "distinct method names", ",".join(spec.methods))
    if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds) or any(s < 0 for s in spec.seeds):
        raise ConfigError("--seeds", "a comma list of distinct integers >= 0", spec.seeds)
    for s in spec.sets:
        key = s.split("=", 1)[0].strip()
        if key in RESERVED:
            raise ConfigError("--set", f"keys other than {', '.join(RESERVED)} (use --methods/--seeds)", s)
        if any(key == k for k, _ in spec.grid):
            raise ConfigError("--set", "keys not also in --grid", s)
    if spec.eval_attacks is not None:
        for a in spec.eval_attacks:
            if a not in evaluation.ATTACKS:
                raise ConfigError("--eval", f"a comma list of: {', '.join(evaluation.ATTACKS)}", a)
    if spec.eval_limits:
        if spec.eval_attacks is None:
            raise IratError("--eval-limit: only with --eval")
        evaluation.resolve_protocol("default", spec.eval_limits, "--eval-limit")
        unused = [a for a in spec.eval_limits if a not in spec.eval_attacks]
        if unused:
            raise ConfigError("--eval-limit", f"attacks named in --eval ({','.join(spec.eval_attacks)})", unused[0])
    if spec.eval_checkpoint not in ("last", "best"):
        raise ConfigError("--eval-checkpoint", "last or best", spec.eval_checkpoint)


# ---------------------------------------------------------------------------------------------
# cell state


def checkpoint_progress(path: Path) -> tuple[int, int]:
    """(completed epochs, steps into the next epoch) of a checkpoint, read without loading the weights."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["epoch"]), int(ckpt.get("step_in_epoch", 0) or 0)
    except Exception as e:  # noqa: BLE001 — any unreadable file is the same user-facing problem
        raise CheckpointError(f"checkpoint {path}: unreadable ({type(e).__name__}); remove the cell to retrain it") \
            from None


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


@dataclass
class CellState:
    cell: Cell
    path: Path
    config: Config
    action: str  # done | evaluate | resume | restart | new
    epochs_done: int = 0
    detail: str = ""


def _eval_complete(cell_dir: Path, ckpt: Path, spec: SweepSpec) -> bool:
    """eval.json exists for this checkpoint and covers the sweep's attacks on its example counts."""
    report = read_eval(RunDir(cell_dir).eval_json)
    if report is None:
        return False
    try:
        acc = report["accuracy"]
        stored = report.get("checkpoint", {})
        covered = {a: int(report["attacks"][a]["n_examples"]) for a in spec.eval_attacks or [] if a in acc}
        available = int(report["data"]["n_available"])
    except (ValueError, KeyError, TypeError, OSError):
        return False
    if not all(a in covered for a in spec.eval_attacks or []):
        return False
    n = available if spec.eval_examples is None else min(spec.eval_examples, available)
    if any(k != min(n, spec.eval_limits.get(a, n)) for a, k in covered.items()):
        return False
    if Path(stored.get("path", "")).name != ckpt.name:
        return False
    if "sha256" in stored and ckpt.is_file():
        return stored["sha256"] == sha256_file(ckpt)
    return True


def cell_state(spec: SweepSpec, cell: Cell) -> CellState:
    """What the sweep would do for `cell`, from what its run directory holds."""
    cfg = build_config(spec.preset, spec.config_file, cell.overrides(spec.sets))
    if spec.eval_attacks and spec.eval_checkpoint == "best" and (cfg.data.val_size == 0 or cfg.eval_every == 0):
        raise ConfigError("--eval-checkpoint", "last when the runs have no validation split (data.val_size = 0)",
                          "best")
    path = spec.out / cell.name
    cfg_file, last = RunDir(path).config, RunDir(path).last
    if not path.exists() or not any(path.iterdir()):
        return CellState(cell, path, cfg, "new")
    if cfg_file.is_file():
        try:
            stored = config_from_dict(yaml.safe_load(cfg_file.read_text()) or {}).to_dict()
        except (IratError, yaml.YAMLError) as e:
            raise IratError(f"cell {path}: unreadable config.yaml ({str(e).splitlines()[0]}); remove the cell") \
                from None
        want = cfg.to_dict()
        stored["device"] = want["device"] = None
        diff = _config_diff(stored, want)
        if diff:
            raise IratError(f"cell {path}: its config.yaml differs from this sweep's ({'; '.join(diff[:3])}); "
                            f"use another --out or remove the cell")
    if not last.is_file():
        return CellState(cell, path, cfg, "restart", detail="no checkpoint yet")
    done, step = checkpoint_progress(last)
    if done < cfg.epochs:
        return CellState(cell, path, cfg, "resume", done, f"{done}/{cfg.epochs} epochs" + (f" + {step} steps"
                                                                                             if step else ""))
    if spec.eval_attacks:
        ckpt = RunDir(path).checkpoint(spec.eval_checkpoint)
        if not _eval_complete(path, ckpt, spec):
            return CellState(cell, path, cfg, "evaluate", done, "trained, not evaluated")
    return CellState(cell, path, cfg, "done", done)


# ---------------------------------------------------------------------------------------------
# running


@dataclass
class CellResult:
    state: CellState
    trained: bool = False
    evaluated: bool = False
    accuracy: dict[str, float] | None = None


def run_sweep(spec: SweepSpec, *, dry_run: bool = False, only: list[int] | None = None, progress: bool = False,
              device: str | None = None, log: Callable[[str], None] = print) -> list[CellResult]:
    """Train (and evaluate) every cell not yet finished, one after another; see the module docstring."""
    validate_spec(spec)
    cells = spec.cells()
    if only is not None:
        bad = [i for i in only if not 0 <= i < len(cells)]
        if bad:
            raise ConfigError("--cell", f"indices in [0, {len(cells) - 1}] (see --dry-run)", bad[0])
        cells = [cells[i] for i in only]
    states = [cell_state(spec, c) for c in cells]  # every config validated before anything runs
    width = len(str(len(spec.cells()) - 1))
    if dry_run:
        for s in states:
            log(f"[{s.cell.index:>{width}}] {s.cell.name}  {s.action}" + (f" ({s.detail})" if s.detail else ""))
        return [CellResult(s) for s in states]
    if only is None:
        atomic_write_json(spec.out / "sweep.json", manifest(spec))
    results = []
    for s in states:
        r = CellResult(s)
        head = f"[{s.cell.index:>{width}}] {s.cell.name}"
        if s.action == "done":
            log(f"{head}: done, skipped")
            results.append(r)
            continue
        if s.action in ("new", "restart", "resume"):
            log(f"{head}: {'resuming' if s.action == 'resume' else 'training'}"
                + (f" ({s.detail})" if s.detail else ""))
            trainer.train(s.config, s.path, resume=s.action == "resume", overwrite=s.action == "restart",
                        progress=progress, device=device)
            r.trained = True
        if spec.eval_attacks:
            ckpt = RunDir(s.path).checkpoint(spec.eval_checkpoint)
            if not ckpt.is_file():
                raise IratError(f"cell {s.path}: no {ckpt.name} to evaluate (best.pt needs validation)")
            rep = evaluation.evaluate_checkpoint(ckpt, attacks=list(spec.eval_attacks), n_examples=spec.eval_examples,
                                 limits=dict(spec.eval_limits), batch_size=spec.eval_batch_size,
                                 device=device or "auto", reuse=True,
                                 out=str(RunDir(s.path).eval_json))
            r.evaluated, r.accuracy = True, dict(rep["accuracy"])
            log(f"{head}: " + "  ".join(f"{k} {v:.2f}%" for k, v in r.accuracy.items()))
        results.append(r)
    return results


def manifest(spec: SweepSpec) -> dict[str, Any]:
    return {"preset": spec.preset, "config": spec.config_file, "methods": spec.methods, "seeds": spec.seeds,
            "grid": [[k, v] for k, v in spec.grid], "set": spec.sets, "eval": spec.eval_attacks,
            "eval_examples": spec.eval_examples, "eval_limits": dict(spec.eval_limits),
            "eval_checkpoint": spec.eval_checkpoint,
            "cells": [c.name for c in spec.cells()]}


def cell_command(spec: SweepSpec, state: CellState, device: str | None = None, prog: str = "irat") -> str:
    """The shell line that brings one cell to `done` on any machine: `irat train … && irat eval …`."""
    q = shlex.quote
    out = str(state.path)
    dev = ["--device", device] if device else []
    parts: list[str] = []
    if state.action == "resume":
        parts.append(shlex.join([prog, "train", "--resume", "--out", out, "--quiet", *dev]))
    elif state.action in ("new", "restart"):
        src = ["--preset", spec.preset] if spec.preset else ["--config", str(spec.config_file)]
        cmd = [prog, "train", *src, "--set", *state.cell.overrides(spec.sets), "--out", out, "--quiet", *dev]
        if state.action == "restart":
            cmd.append("--overwrite")
        parts.append(shlex.join(cmd))
    if spec.eval_attacks and state.action != "done":
        ckpt = str(RunDir(state.path).checkpoint(spec.eval_checkpoint))
        cmd = [prog, "eval", ckpt, "--attacks", ",".join(spec.eval_attacks), "--batch-size",
               str(spec.eval_batch_size), "--out", str(RunDir(state.path).eval_json), "--reuse"]
        if spec.eval_examples is not None:
            cmd += ["--n-examples", str(spec.eval_examples)]
        for a, k in spec.eval_limits.items():
            cmd += ["--limit", f"{a}={k}"]
        if device:
            cmd += ["--device", device]
        parts.append(shlex.join(cmd))
    if not parts:
        return f"# done: {q(out)}"
    return " && ".join(parts)
