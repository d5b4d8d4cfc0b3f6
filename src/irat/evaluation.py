"""Robustness evaluation: attacks by name (SPEC §5), per-example worst case, sanity flags, reports.

`ATTACKS` holds every attack with every parameter; a protocol (`PROTOCOLS`) is only an ε and
per-attack parameter overrides on top of it, so `default` and `mail-paper` share one code path.

Robust accuracy over a set of attacks is the per-example worst case: an example counts as robust
only if it is classified correctly and every attack run on it failed. Cheap attacks (nat, fgsm,
PGD, CW) run on every naturally correct example and report their standalone accuracy; expensive
ones (APGD-CE, AutoAttack) by default run only on the examples still unbroken by the attacks before
them (cascade), so AutoAttack after PGD costs less; their accuracy then is "robust against this
attack and every one before it", a lower bound of the standalone number.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attacks.pgd import eval_mode, pgd
from .errors import ConfigError, IratError
from .runs import RunDir, eval_files, model_from_checkpoint, read_eval, read_eval_examples

# ---------------------------------------------------------------------------------------------
# the registry: every attack and every one of its parameters


@dataclass(frozen=True)
class AttackSpec:
    """One attack: `kind` selects the implementation, `defaults` are all its parameters.

    PGD step sizes are `rel_step`·ε unless an absolute `step_size` is set (e.g. by a protocol).
    """

    name: str
    kind: str  # "nat" | "pgd" | "autoattack"
    defaults: Mapping[str, Any]
    expensive: bool = False  # cascade: runs only on examples still unbroken
    doc: str = ""

    def params(self, eps: float, overrides: Mapping[str, Any] | None = None,
               num_classes: int | None = None) -> dict[str, Any]:
        """The concrete parameters at radius ε (what the report prints).

        For AutoAttack they are read back from the package's attack objects as configured, so the
        report shows what runs (iterations, restarts, target classes, Square queries)."""
        p = {**self.defaults, **(overrides or {})}
        if self.kind == "nat":
            return {}
        if self.kind == "pgd":
            absolute = p.get("step_size") is not None
            out = {"eps": float(eps), "norm": "Linf", "steps": int(p["steps"]),
                   "step_size": float(p["step_size"]) if absolute else float(p["rel_step"]) * float(eps),
                   "step_rule": "absolute" if absolute else _relative_rule(float(p["rel_step"])),
                   "loss": p["loss"], "random_start": p["start"]}
            if p["loss"] == "cw":
                out["kappa"] = float(p["kappa"])
            return out
        from .attacks.autoattack import autoattack_settings, build_autoattack

        aa = build_autoattack(nn.Identity(), eps=float(eps), norm=p["norm"], version=p["version"],
                              attacks=p.get("attacks"), n_iter=p.get("n_iter"), n_restarts=p.get("n_restarts"),
                              num_classes=num_classes)
        out = autoattack_settings(aa)
        if p.get("n_iter") is not None:
            out["n_iter"] = int(p["n_iter"])
        if p.get("n_restarts") is not None:
            out["n_restarts"] = int(p["n_restarts"])
        out["implementation"] = "pyautoattack (official AutoAttack code)"
        return out

    def run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator | None = None,
            *, overrides: Mapping[str, Any] | None = None, seed: int = 0, verbose: bool = False,
            num_classes: int | None = None, warnings_out: list[str] | None = None) -> Tensor:
        """Adversarial inputs x̃ for (x, y) at radius ε; the model runs in eval mode.

        `warnings_out` collects the AutoAttack package's own warnings (its sanity checks)."""
        p = {**self.defaults, **(overrides or {})}
        if self.kind == "nat":
            return x
        if self.kind == "pgd":
            q = self.params(eps, overrides)
            noise = None
            if q["random_start"] == "uniform" and generator is not None:
                noise = torch.rand(x.shape, generator=generator, device=x.device).mul_(2).sub_(1)
            return pgd(model, x, y, eps, q["steps"], q["step_size"], loss=q["loss"], start=q["random_start"],
                       noise=noise, cw_kappa=q.get("kappa", 50.0)).x_adv
        from .attacks.autoattack import autoattack
        return autoattack(model, x, y, float(eps), version=p["version"], attacks=p.get("attacks"),
                          n_iter=p.get("n_iter"), n_restarts=p.get("n_restarts"), norm=p["norm"], seed=seed,
                          batch_size=max(int(x.shape[0]), 1), verbose=verbose, num_classes=num_classes,
                          warnings_out=warnings_out)


def _relative_rule(rel: float) -> str:
    """0.25 -> "eps/4", 1 -> "eps", 0.3 -> "0.3*eps"."""
    if rel == 1.0:
        return "eps"
    inv = 1.0 / rel if rel > 0 else 0.0
    return f"eps/{int(round(inv))}" if rel > 0 and abs(inv - round(inv)) < 1e-9 else f"{rel:g}*eps"


def _pgd_spec(name: str, steps: int, doc: str, loss: str = "ce", rel_step: float = 0.25,
              start: str = "uniform") -> AttackSpec:
    return AttackSpec(name, "pgd", {"steps": steps, "rel_step": rel_step, "step_size": None, "loss": loss,
                                    "start": start, "kappa": 50.0}, doc=doc)


ATTACKS: dict[str, AttackSpec] = {
    "nat": AttackSpec("nat", "nat", {}, doc="natural (clean) accuracy"),
    "fgsm": _pgd_spec("fgsm", 1, "FGSM: one step of size ε, no random start", rel_step=1.0, start="none"),
    "pgd20": _pgd_spec("pgd20", 20, "PGD-20 on CE, α = ε/4, uniform random start"),
    "pgd100": _pgd_spec("pgd100", 100, "PGD-100 on CE, α = ε/4, uniform random start"),
    "cw": _pgd_spec("cw", 30, "CW∞: PGD-30 on the CW margin loss max(z_y − max_{j≠y} z_j, −κ), κ = 50, "
                    "α = ε/4",
                    loss="cw"),
    "apgd-ce": AttackSpec("apgd-ce", "autoattack", {"norm": "Linf", "version": "custom", "attacks": ["apgd-ce"],
                                                    "n_iter": 100, "n_restarts": 1}, expensive=True,
                          doc="official APGD-CE (pyautoattack), 100 iterations, 1 restart"),
    "aa": AttackSpec("aa", "autoattack", {"norm": "Linf", "version": "standard"}, expensive=True,
                     doc="official AutoAttack, version 'standard' (APGD-CE, APGD-T, FAB-T, Square)"),
}
PGD_FAMILY = ("fgsm", "pgd20", "pgd100")  # CE attacks differing in steps: more steps must not be weaker


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: a radius and parameter overrides on top of `ATTACKS`.

    eps None: the checkpoint's training ε. `limits[name] = N`: that attack runs on the first N examples.
    """

    name: str
    eps: float | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)
    doc: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "eps": self.eps, "overrides": {k: dict(v) for k, v in self.overrides.items()},
                "limits": dict(self.limits), "doc": self.doc}


PROTOCOLS: dict[str, Protocol] = {
    "default": Protocol("default",
                        doc="SPEC §5: the training ε, α = ε/4, CW 30 steps, every attack on every example"),
    "mail-paper": Protocol(
        "mail-paper", eps=0.031,
        overrides={"pgd20": {"step_size": 0.003}, "pgd100": {"step_size": 0.003},
                   "cw": {"steps": 20, "step_size": 0.003}},
        limits={"aa": 1000},
        doc="the MAIL paper's own evaluation (its reference code): ε = 0.031, PGD/CW step 0.003, CW 20 steps, "
            "AutoAttack on the first 1,000 test images"),
}


def resolve_protocol(protocol: str | Protocol, limits: Mapping[str, int] | None = None,
                     field_name: str = "limits") -> Protocol:
    """The protocol by name, with per-attack example `limits` ({attack: N}) laid over its own."""
    if not isinstance(protocol, Protocol):
        if protocol not in PROTOCOLS:
            raise ConfigError("protocol", f"one of: {', '.join(PROTOCOLS)}", protocol)
        protocol = PROTOCOLS[protocol]
    if not limits:
        return protocol
    checked = {}
    for a, k in limits.items():
        if a not in ATTACKS or a == "nat":
            raise ConfigError(field_name, f"attack names from: {', '.join(x for x in ATTACKS if x != 'nat')}", a)
        checked[a] = _check_positive_int(k, f"{field_name} ({a})")
    return replace(protocol, limits={**protocol.limits, **checked})


def parse_limits(items: Iterable[str] | None, field_name: str = "--limit") -> dict[str, int]:
    """`["aa=2000", "apgd-ce=5000"]` -> {"aa": 2000, "apgd-ce": 5000}: each attack on the first N examples."""
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, raw = str(item).partition("=")
        name = name.strip()
        try:
            k = int(raw)
        except ValueError:
            k = 0
        if not sep or k < 1:
            raise ConfigError(field_name, "ATTACK=N with N an integer >= 1, e.g. aa=2000", item)
        if name in out:
            raise ConfigError(field_name, "each attack once", name)
        out[name] = k
    resolve_protocol("default", out, field_name)  # the attack names
    return out


def parse_attacks(attacks: str | Iterable[str] | None, field_name: str = "attacks") -> list[str]:
    """Attack names from a comma list or a sequence; `all` = every attack. Raises naming `field_name`."""
    if attacks is None:
        return list(DEFAULT_ATTACKS)
    items = [a.strip() for a in attacks.split(",")] if isinstance(attacks, str) else [str(a).strip() for a in attacks]
    items = [a for a in items if a]
    if not items:
        raise ConfigError(field_name, f"a comma list of: all, {', '.join(ATTACKS)}", ",".join(items))
    out: list[str] = []
    for a in items:
        names = list(ATTACKS) if a == "all" else [a]
        if a != "all" and a not in ATTACKS:
            raise ConfigError(field_name, f"a comma list of: all, {', '.join(ATTACKS)}", a)
        out += [n for n in names if n not in out]
    return out


DEFAULT_ATTACKS = ("nat", "fgsm", "pgd20", "cw")


def _check_eps(eps: Any, field_name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ConfigError(field_name, "a finite number >= 0 (the L∞ radius in [0, 1] pixel units)", eps)
    return float(eps)


def _check_positive_int(v: Any, field_name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(field_name, "an integer >= 1", v)
    return int(v)


def _check_threshold(v: Any, field_name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ConfigError(field_name, "a finite number >= 0 (percentage points)", v)
    return float(v)


# ---------------------------------------------------------------------------------------------
# the trainer's validation: accuracy under a few cheap attacks


@torch.no_grad()
def _predict_correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    with eval_mode(model):
        return model(x).argmax(dim=1) == y


def robust_mask(model: nn.Module, x: Tensor, y: Tensor, attack: str, eps: float, batch_size: int = 256,
                generator: torch.Generator | None = None) -> Tensor:
    """Per-example bool: still correctly classified after the attack (x float in [0, 1])."""
    spec = ATTACKS[attack]
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        x_adv = spec.run(model, xb, yb, eps, generator)
        out.append(_predict_correct(model, x_adv, yb))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


def quick_accuracy(model: nn.Module, x_u8: Tensor, y: Tensor, eps: float, attacks: list[str],
                   batch_size: int = 256, seed: int = 0, device: torch.device | None = None,
                   channels_last: bool = False, reduce: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:
    """Accuracy (%) under each attack for uint8 images, e.g. the trainer's validation (nat, PGD-20).

    Each attack runs standalone on every example. `reduce` all-reduces a tensor of counts across
    data-parallel ranks (sharded evaluation).
    """
    from .data.loader import eval_batches, generator as make_gen
    from .distributed import rank_world

    device = device or x_u8.device
    rank, world = rank_world()
    g = make_gen(device, seed, 31)
    counts = torch.zeros(len(attacks) + 1, device=device, dtype=torch.float64)
    for _, xb, yb in eval_batches(x_u8, y, batch_size, device, rank, world, channels_last):
        for i, name in enumerate(attacks):
            x_adv = ATTACKS[name].run(model, xb, yb, eps, g)
            counts[i] += _predict_correct(model, x_adv, yb).sum()
        counts[-1] += yb.numel()
    if reduce is not None:
        counts = reduce(counts)
    total = max(float(counts[-1]), 1.0)
    return {name: 100.0 * float(counts[i]) / total for i, name in enumerate(attacks)}


# ---------------------------------------------------------------------------------------------
# the full evaluation

NOT_RUN, BROKEN, ROBUST = -1, 0, 1
_ATTACK_SALT, _SANITY_SALT = 37, 41


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
        import json

        from .files import atomic_write_json, atomic_write_text

        out = Path(out)
        paths = eval_files(out)
        self.report["files"] = {"markdown": paths["markdown"].name, "examples": paths["examples"].name}
        atomic_write_text(paths["examples"], json.dumps(self.examples, separators=(",", ":")) + "\n")
        atomic_write_text(paths["markdown"], self.markdown())
        atomic_write_json(paths["json"], self.report)
        self.paths = paths
        return paths


def _as_data(dataset: Any, root: str | Path = "data") -> tuple[Tensor, Tensor, dict[str, Any]]:
    """(x, y, description) from a data set name, an object with x_test/y_test, or an (x, y) pair."""
    if isinstance(dataset, str):
        from .data.datasets import load_dataset
        ds = load_dataset(dataset, root)
        return ds.x_test, ds.y_test, {"name": dataset, "split": "test"}
    if hasattr(dataset, "x_test") and hasattr(dataset, "y_test"):
        return dataset.x_test, dataset.y_test, {"name": getattr(dataset, "name", "dataset"), "split": "test"}
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        x, y = dataset
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise ConfigError("dataset", "a data set name, an object with x_test/y_test, or a pair of tensors (x, y)",
                              type(x).__name__)
        return x, y, {"name": "tensors", "split": "given"}
    raise ConfigError("dataset", "a data set name, an object with x_test/y_test, or a pair of tensors (x, y)",
                      type(dataset).__name__)


def _float_batch(x: Tensor, idx: Tensor, device: torch.device) -> Tensor:
    xb = x[idx.to(x.device)].to(device)
    return xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb.float()


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _binomial_margin(p_percent: float, n: int) -> float:
    """Noise margin (points) for comparing two accuracies on n examples: 2σ of a binomial, at least 1 example."""
    p = min(max(p_percent / 100.0, 0.0), 1.0)
    return max(100.0 / max(n, 1), 200.0 * math.sqrt(p * (1.0 - p) / max(n, 1)))


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"irat eval: {msg}", file=sys.stderr, flush=True)


def evaluate(
    model: nn.Module,
    dataset: Any,
    attacks: str | Sequence[str] | None = None,
    *,
    eps: float | None = None,
    protocol: str | Protocol = "default",
    n_examples: int | None = None,
    limits: Mapping[str, int] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    reuse: EvalResult | Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    cascade: bool = True,
    masking_threshold: float = 5.0,
    zero_grad_threshold: float = 5.0,
    sanity_examples: int = 100,
    verbose: bool = False,
    progress: bool = False,
    data_root: str | Path = "data",
    channels_last: bool = True,
) -> EvalResult:
    """Evaluate `model` (eval mode, [0, 1] NCHW inputs) on `dataset`'s test split under `attacks`.

    dataset: a data set name (e.g. "fashion-mnist"), an object with x_test / y_test, or a pair
    (x, y) of tensors (uint8 images or floats in [0, 1]). attacks: names from `ATTACKS` (a list or
    a comma string; "all" = every one). eps: the L∞ radius (required unless the protocol sets it).
    limits: {attack: N} runs that attack on only the first N examples (e.g. {"aa": 2000}); the
    report gives each attack's own example count and the worst case on the common subset.
    reuse: an earlier result of this same model (`EvalResult`, or {"report", "examples"} as read
    from eval.json / eval_examples.json); the longest prefix of the attack sequence that it ran with
    the same ε, parameters, examples, seed, batch size and cascade is taken from it, not run again,
    so adding an attack to an evaluation runs only the new one (and cascades from the stored codes).
    channels_last: run the model with channels-last weights, as the trainer does (the same numbers up
    to float rounding; AutoAttack 1.27× faster on the small CNN on CPU, benchmarks/eval_layout.py);
    the model's own layout is restored afterwards.
    Returns an `EvalResult`; `.save(path)` writes eval.json, eval.md and eval_examples.json.
    """
    names = parse_attacks(attacks)
    proto = resolve_protocol(protocol, limits)
    eps_source = "eps argument"
    if eps is None:
        eps, eps_source = proto.eps, f"protocol {proto.name}"
    if eps is None:
        raise ConfigError("eps", "a finite number >= 0 (a bare model has no training ε; give eps=...)", None)
    eps = _check_eps(eps)
    batch_size = _check_positive_int(batch_size, "batch_size")
    if n_examples is not None:
        n_examples = _check_positive_int(n_examples, "n_examples")
    sanity_examples = _check_positive_int(sanity_examples, "sanity_examples")
    masking_threshold = _check_threshold(masking_threshold, "masking_threshold")
    zero_grad_threshold = _check_threshold(zero_grad_threshold, "zero_grad_threshold")
    if not isinstance(model, nn.Module):
        raise ConfigError("model", "a torch.nn.Module", type(model).__name__)
    if model.training:
        raise IratError("model: is in train mode; attacks must run in eval mode (batch-norm statistics, dropout). "
                        "Call model.eval() first")

    x_all, y_all, data_desc = _as_data(dataset, data_root)
    if x_all.dim() != 4:
        raise ConfigError("dataset", "images as an NCHW tensor", f"shape {tuple(x_all.shape)}")
    if y_all.shape[0] != x_all.shape[0]:
        raise ConfigError("dataset", "as many labels as images", f"{y_all.shape[0]} labels, {x_all.shape[0]} images")
    total = int(x_all.shape[0])
    n = total if n_examples is None else min(n_examples, total)
    if n == 0:
        raise ConfigError("dataset", "at least one example", 0)
    x, y = x_all[:n], y_all[:n].long()
    dev = _model_device(model)
    if device is not None:
        from .distributed import local_device
        want = local_device(device) if isinstance(device, str) else torch.device(device)
        if want.type != dev.type or (want.index is not None and dev.index is not None and want.index != dev.index):
            raise ConfigError("device", f"the model's device ({dev}); move the model first", str(want))
    log = _Progress(progress)
    with _weights_layout(model, channels_last):
        return _evaluate(model, x, y, total, data_desc, names, proto, eps, eps_source, n, batch_size, seed, reuse,
                         dev, cascade, masking_threshold, zero_grad_threshold, sanity_examples, verbose, log,
                         channels_last)


@contextlib.contextmanager
def _weights_layout(model: nn.Module, channels_last: bool) -> Iterator[None]:
    """Within the block the model's 4-D weights are channels-last (when asked); the caller's layout
    is restored after."""
    four_d = [t for t in list(model.parameters()) + list(model.buffers()) if t.dim() == 4]
    if not channels_last or not four_d or all(t.is_contiguous(memory_format=torch.channels_last) for t in four_d):
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def _evaluate(model: nn.Module, x: Tensor, y: Tensor, total: int, data_desc: dict[str, Any], names: list[str],
              proto: Protocol, eps: float, eps_source: str, n: int, batch_size: int, seed: int,
              reuse: EvalResult | Mapping[str, Any] | None, dev: torch.device, cascade: bool,
              masking_threshold: float, zero_grad_threshold: float, sanity_examples: int, verbose: bool,
              log: _Progress, channels_last: bool) -> EvalResult:
    """`evaluate` after its inputs are checked."""
    # order: nat, the cheap attacks as given, then the expensive ones as given
    order = ["nat"] + [a for a in names if a != "nat" and not ATTACKS[a].expensive] + \
        [a for a in names if ATTACKS[a].expensive]
    started = time.perf_counter()
    with torch.no_grad():
        num_classes = int(model(_float_batch(x, torch.arange(min(n, batch_size)), dev)).shape[1])
    params = {a: ATTACKS[a].params(eps, proto.overrides.get(a), num_classes) for a in order}
    coverage = {a: min(n, int(proto.limits[a])) if a in proto.limits else n for a in order}

    codes: dict[str, Tensor] = {}
    meta: dict[str, dict[str, Any]] = {}
    max_linf: dict[str, float] = {}
    box = [float("inf"), float("-inf")]  # min / max of every adversarial input
    aa_warnings: dict[str, list[str]] = {}  # the AutoAttack package's own checks
    x_min, x_max = _data_range(x)
    settings = {"eps": eps, "seed": seed, "batch_size": batch_size, "cascade": bool(cascade), "n_examples": n,
                "n_available": total}
    reused = _reusable_prefix(reuse, order, params, coverage, settings)
    for a in reused:
        codes[a], meta[a], linf_a, box_a, warns = _stored_attack(reuse, a, n)
        if linf_a is not None:
            max_linf[a] = linf_a
        box[0], box[1] = min(box[0], box_a[0]), max(box[1], box_a[1])
        if warns is not None:
            aa_warnings[a] = warns
        log(f"{a:>8}: {meta[a]['accuracy']:6.2f}%  (reused from the earlier evaluation)")

    for pos, a in enumerate(order):
        if a in reused:
            continue
        spec = ATTACKS[a]
        t0 = time.perf_counter()
        code = torch.full((n,), NOT_RUN, dtype=torch.int8)
        in_cov = torch.arange(n) < coverage[a]
        if a == "nat":
            todo = in_cov
            mode = "natural"
        elif spec.expensive and cascade:
            broken = torch.zeros(n, dtype=torch.bool)
            for prev in codes.values():
                broken |= prev == BROKEN
            todo = in_cov & ~broken & (codes["nat"] == ROBUST)
            mode = "cascade"
        else:
            todo = in_cov & (codes["nat"] == ROBUST)
            mode = "standalone"
        idx_all = todo.nonzero().flatten()
        g = _gen(dev, seed, _ATTACK_SALT, pos)
        linf = 0.0
        pkg_warnings: list[str] = []
        for s in range(0, idx_all.numel(), batch_size):
            idx = idx_all[s:s + batch_size]
            xb, yb = _float_batch(x, idx, dev), y[idx.to(y.device)].to(dev)
            x_adv = spec.run(model, xb, yb, eps, g, overrides=proto.overrides.get(a), seed=seed, verbose=verbose,
                             num_classes=num_classes, warnings_out=pkg_warnings)
            ok = _predict_correct(model, x_adv, yb).cpu()
            code[idx] = torch.where(ok, ROBUST, BROKEN).to(torch.int8)
            if spec.expensive and idx_all.numel() > batch_size:
                log(f"{a:>8}: {min(s + batch_size, idx_all.numel())}/{idx_all.numel()} attacked "
                    f"({time.perf_counter() - t0:.0f} s)")
            if a != "nat":
                linf = max(linf, float((x_adv - xb).abs().flatten(1).amax(1).max()))
                box[0], box[1] = min(box[0], float(x_adv.min())), max(box[1], float(x_adv.max()))
        codes[a] = code
        if a != "nat":
            max_linf[a] = linf
        robust = int((code[:coverage[a]] == ROBUST).sum())
        meta[a] = {"mode": mode, "n_examples": coverage[a], "n_attacked": int(idx_all.numel()), "robust": robust,
                   "accuracy": 100.0 * robust / coverage[a], "seconds": round(time.perf_counter() - t0, 3)}
        if spec.kind == "autoattack":
            aa_warnings[a] = pkg_warnings
        log(f"{a:>8}: {meta[a]['accuracy']:6.2f}%  ({mode}, {meta[a]['n_attacked']} attacked of "
            f"{coverage[a]}, {meta[a]['seconds']:.1f} s)")

    # per-example worst case and the first attack (in run order) that broke each example
    worst_mask = codes["nat"] == ROBUST
    for a in order[1:]:
        worst_mask &= codes[a] != BROKEN
    first = torch.full((n,), -1, dtype=torch.long)
    for pos, a in enumerate(order):
        first = torch.where((first < 0) & (codes[a] == BROKEN), pos, first)
    broken_by: list[str | None] = [order[i] if i >= 0 else None for i in first.tolist()]
    n_common = min(coverage.values())
    accuracy = {a: meta[a]["accuracy"] for a in order}
    accuracy["worst"] = 100.0 * float(worst_mask.sum()) / n
    worst = {"accuracy": accuracy["worst"], "n_examples": n, "over": list(order),
             "definition": "robust only if correct and every attack run on the example failed"}
    if n_common < n:
        worst["common_subset"] = {"n_examples": n_common,
                                  "accuracy": 100.0 * float(worst_mask[:n_common].sum()) / n_common,
                                  "note": f"the first {n_common} examples, where every attack ran; over all {n} "
                                          "examples the worst case is an upper bound"}

    flags = _sanity_flags(model, x, y, dev, eps, order, codes, coverage, params, proto, seed, batch_size,
                          sanity_examples, masking_threshold, zero_grad_threshold, (x_min, x_max), max_linf, box,
                          aa_warnings)
    cascaded = [a for a in order if meta[a]["mode"] == "cascade"]
    report: dict[str, Any] = {
        "irat_version": _version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "accuracy": accuracy,
        "worst": worst,
        "eps": eps,
        "eps_source": eps_source,
        "norm": "Linf",
        "protocol": proto.to_dict(),
        "order": order,
        "attacks": {a: {**params[a], **meta[a], "doc": ATTACKS[a].doc} for a in order},
        "cascade": {"enabled": bool(cascade), "attacks": cascaded,
                    "n_attacked": {a: meta[a]["n_attacked"] for a in cascaded},
                    "note": "a cascaded attack runs only on examples no earlier attack broke; its accuracy is "
                            "robustness against it and every attack before it"},
        "flags": flags,
        "reused": {"attacks": reused, "from": _report_of(reuse).get("created") if reused else None,
                   "note": "these attacks' results were taken from an earlier evaluation of the same model with the "
                           "same settings; their 'seconds' are that evaluation's"},
        "data": {**data_desc, "n_examples": n, "n_available": total, "selection": f"the first {n} in data-set order",
                 "num_classes": num_classes},
        "seed": seed,
        "batch_size": batch_size,
        "device": str(dev),
        "channels_last": bool(channels_last),
        "seconds": round(time.perf_counter() - started, 3),
    }
    examples = {
        "order": order,
        "codes": {"null": "not attacked (natural error, broken earlier in the cascade, or outside the attack's "
                          "example limit)", "1": "robust", "0": "broken"},
        "index": list(range(n)),
        "label": y.tolist(),
        "broken_by": broken_by,
        "robust": {a: [None if c == NOT_RUN else int(c) for c in codes[a].tolist()] for a in order},
    }
    return EvalResult(report, examples)


def _report_of(previous: EvalResult | Mapping[str, Any] | None) -> dict[str, Any]:
    if previous is None:
        return {}
    return dict(previous.report if isinstance(previous, EvalResult) else previous.get("report") or {})


def _examples_of(previous: EvalResult | Mapping[str, Any]) -> dict[str, Any]:
    return dict(previous.examples if isinstance(previous, EvalResult) else previous.get("examples") or {})


def _reusable_prefix(previous: EvalResult | Mapping[str, Any] | None, order: list[str],
                     params: dict[str, dict[str, Any]], coverage: dict[str, int],
                     settings: dict[str, Any]) -> list[str]:
    """The attacks at the head of `order` that `previous` ran identically (same position, parameters,
    example count and evaluation settings), so their per-example codes can be taken as they are."""
    rep = _report_of(previous)
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
    out: list[str] = []
    for pos, a in enumerate(order):
        if pos >= len(stored_order) or stored_order[pos] != a or a not in robust:
            break
        stored = rep["attacks"].get(a, {})
        if int(stored.get("n_examples", -1)) != coverage[a] or len(robust[a]) != settings["n_examples"]:
            break
        if {k: stored.get(k) for k in params[a]} != params[a]:
            break
        out.append(a)
    return out


def _stored_attack(previous: EvalResult | Mapping[str, Any], a: str, n: int
                   ) -> tuple[Tensor, dict[str, Any], float | None, tuple[float, float], list[str] | None]:
    """One stored attack: (codes, meta, max |δ|∞, (min, max) of its inputs, AutoAttack warnings)."""
    rep, ex = _report_of(previous), _examples_of(previous)
    codes = torch.tensor([NOT_RUN if c is None else int(c) for c in ex["robust"][a]], dtype=torch.int8)
    stored = rep["attacks"][a]
    meta = {k: stored[k] for k in ("mode", "n_examples", "n_attacked", "robust", "accuracy", "seconds")}
    bound = rep.get("flags", {}).get("perturbation_bound", {})
    linf = bound.get("max_linf", {}).get(a)
    lo, hi = bound.get("adv_min"), bound.get("adv_max")
    box = (float("inf") if lo is None or a == "nat" else float(lo), float("-inf") if hi is None or a == "nat"
           else float(hi))
    warns = rep.get("flags", {}).get("autoattack_checks", {}).get("warnings", {}).get(a, []) \
        if ATTACKS[a].kind == "autoattack" else None
    return codes, meta, linf, box, warns


def load_eval(path: str | Path) -> dict[str, Any] | None:
    """{"report", "examples"} from an eval.json and the eval_examples.json beside it; None if either
    is missing or unreadable (then nothing is reused)."""
    report = read_eval(path)
    examples = read_eval_examples(path, report) if report is not None else None
    return None if examples is None else {"report": report, "examples": examples}


def _gen(device: torch.device, *parts: int) -> torch.Generator:
    from .data.loader import generator
    return generator(device, *parts)


def _version() -> str:
    from . import __version__
    return __version__


def _data_range(x: Tensor) -> tuple[float, float]:
    if x.dtype == torch.uint8:
        return float(x.min()) / 255.0, float(x.max()) / 255.0
    return float(x.min()), float(x.max())


def _zero_gradient_share(model: nn.Module, x: Tensor, y: Tensor) -> tuple[int, int]:
    """(examples whose CE input gradient is exactly zero, examples) at the natural inputs."""
    with eval_mode(model), torch.enable_grad():
        xr = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(xr).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xr)
    zero = grad.flatten(1).abs().amax(1) == 0
    return int(zero.sum()), int(zero.numel())


def _sanity_flags(model: nn.Module, x: Tensor, y: Tensor, dev: torch.device, eps: float, order: list[str],
                  codes: dict[str, Tensor], coverage: dict[str, int], params: dict[str, dict[str, Any]],
                  proto: Protocol, seed: int, batch_size: int, sanity_examples: int, masking_threshold: float,
                  zero_grad_threshold: float, data_range: tuple[float, float], max_linf: dict[str, float],
                  box: list[float], aa_warnings: dict[str, list[str]]) -> dict[str, Any]:
    n = x.shape[0]
    flags: dict[str, Any] = {}
    flags["train_mode"] = {"flag": False, "model_training": bool(model.training),
                           "note": "attacks ran in eval mode (a model in train mode is refused)"}
    lo, hi = data_range
    flags["input_range"] = {"flag": bool(lo < 0.0 or hi > 1.0), "min": lo, "max": hi,
                            "note": "inputs must be in [0, 1]; normalization belongs inside the model"}

    # ε = 0: PGD must reproduce natural accuracy exactly
    m = min(n, sanity_examples)
    pgd_name = "pgd20"
    g = _gen(dev, seed, _SANITY_SALT)
    nat_ok = pgd_ok = zero = 0
    for s in range(0, m, batch_size):
        idx = torch.arange(s, min(s + batch_size, m))
        xb, yb = _float_batch(x, idx, dev), y[idx].to(dev)
        nat_ok += int(_predict_correct(model, xb, yb).sum())
        x0 = ATTACKS[pgd_name].run(model, xb, yb, 0.0, g, overrides=proto.overrides.get(pgd_name))
        pgd_ok += int(_predict_correct(model, x0, yb).sum())
        zero += _zero_gradient_share(model, xb, yb)[0]
    flags["eps_zero"] = {"flag": nat_ok != pgd_ok, "n_examples": m, "nat_accuracy": 100.0 * nat_ok / m,
                         "pgd_eps0_accuracy": 100.0 * pgd_ok / m,
                         "attack": ATTACKS[pgd_name].params(0.0, proto.overrides.get(pgd_name)),
                         "note": "PGD with ε = 0 must give natural accuracy"}
    share = 100.0 * zero / m
    flags["zero_gradients"] = {"flag": share > zero_grad_threshold, "share": share, "n_zero": zero,
                               "n_examples": m, "threshold": zero_grad_threshold,
                               "note": "share (%) of inputs whose CE input gradient is exactly zero: "
                                       "gradient-based attacks cannot move them (masking)"}

    def acc_on(a: str, k: int) -> float:
        return 100.0 * float((codes[a][:k] == ROBUST).sum()) / k

    # more steps must not be weaker
    pairs = []
    run_family = [a for a in PGD_FAMILY if a in codes]
    for i, fewer in enumerate(run_family):
        for more in run_family[i + 1:]:
            k = min(coverage[fewer], coverage[more])
            a_few, a_more = acc_on(fewer, k), acc_on(more, k)
            margin = _binomial_margin(a_few, k)
            pairs.append({"fewer": fewer, "more": more, "steps": [params[fewer]["steps"], params[more]["steps"]],
                          "accuracy_fewer": a_few, "accuracy_more": a_more, "difference": a_more - a_few,
                          "noise_margin": margin, "flag": a_more > a_few + margin, "n_examples": k})
    flags["more_steps_stronger"] = {"flag": any(p["flag"] for p in pairs), "checked": bool(pairs), "pairs": pairs,
                                    "note": "an attack with more steps giving higher accuracy than one with fewer "
                                            "(beyond noise) hints at gradient masking or a broken attack"}

    # gap between the strongest PGD and the worst case
    pgds = [a for a in ("pgd20", "pgd100") if a in codes]
    others = [a for a in order if a not in ("nat", *pgds)]
    k = min(coverage.values())
    worst_k = codes["nat"][:k] == ROBUST
    for a in order[1:]:
        worst_k = worst_k & (codes[a][:k] != BROKEN)
    worst_acc = 100.0 * float(worst_k.sum()) / k
    if pgds:
        best_pgd = min(pgds, key=lambda a: acc_on(a, k))
        gap = acc_on(best_pgd, k) - worst_acc
        margin = _binomial_margin(worst_acc, k)
        flags["gradient_masking"] = {"flag": gap > masking_threshold and gap > margin, "checked": bool(others),
                                     "pgd": best_pgd, "pgd_accuracy": acc_on(best_pgd, k), "worst": worst_acc,
                                     "gap": gap, "threshold": masking_threshold, "noise_margin": margin,
                                     "compared_with": others, "n_examples": k,
                                     "note": "PGD accuracy above the worst case over all attacks by more than the "
                                             "threshold and the noise margin: possible gradient masking"}
    else:
        flags["gradient_masking"] = {"flag": False, "checked": False, "threshold": masking_threshold,
                                     "note": "not checked: no PGD attack was run"}

    bound_ok = all(v <= eps + 1e-6 for v in max_linf.values())
    box_ok = not max_linf or (box[0] >= -1e-6 and box[1] <= 1.0 + 1e-6) or lo < 0.0 or hi > 1.0
    flags["perturbation_bound"] = {"flag": not (bound_ok and box_ok), "eps": eps, "max_linf": max_linf,
                                   "adv_min": box[0] if max_linf else None, "adv_max": box[1] if max_linf else None,
                                   "note": "every adversarial input within the ε-ball and the [0, 1] box"}
    flags["autoattack_checks"] = {"flag": any(aa_warnings.values()), "checked": bool(aa_warnings),
                                  "warnings": {a: w for a, w in aa_warnings.items() if w},
                                  "note": "the AutoAttack package's own checks (randomized or dynamic defense, zero "
                                          "gradients, Square stronger than the gradient attacks, ...)"}
    flags["any"] = any(v["flag"] for v in flags.values() if isinstance(v, dict))
    return flags


# ---------------------------------------------------------------------------------------------
# reports


def format_eps(eps: float) -> str:
    """8/255 for multiples of 1/255, else the number (0.1, 0.031)."""
    k = eps * 255.0
    if eps > 0 and abs(k - round(k)) < 1e-6:
        return f"{int(round(k))}/255"
    return f"{eps:g}"


def describe_params(name: str, p: Mapping[str, Any]) -> str:
    if not p:
        return "clean inputs"
    if "steps" in p:
        rule = "" if p["step_rule"] == "absolute" else f" = {p['step_rule'].replace('*eps', 'ε').replace('eps', 'ε')}"
        steps = f"{p['steps']} step{'s' if p['steps'] != 1 else ''}"
        s = f"ε={format_eps(p['eps'])}, {steps}, α={p['step_size']:.4g}{rule}, {p['loss'].upper()} loss"
        if "kappa" in p:
            s += f" (κ={p['kappa']:g})"
        return s + f", start: {p['random_start']}"
    s = f"ε={format_eps(p['eps'])}, {p['norm']}, version={p['version']}: {' + '.join(p.get('attacks', []))}"
    parts = []
    if "apgd" in p:
        parts.append(f"APGD {p['apgd']['n_iter']} it × {p['apgd']['n_restarts']} restart")
    if "apgd_t" in p:
        parts.append(f"APGD-T {p['apgd_t']['n_iter']} it × {p['apgd_t']['n_target_classes']} targets")
    if "fab" in p:
        parts.append(f"FAB {p['fab']['n_iter']} it × {p['fab']['n_target_classes']} targets")
    if "square" in p:
        parts.append(f"Square {p['square']['n_queries']} queries")
    return s + (f" ({'; '.join(parts)})" if parts else "")


def _flag_lines(flags: Mapping[str, Any]) -> list[str]:
    out = []
    f = flags
    if f["input_range"]["flag"]:
        out.append(f"inputs outside [0, 1]: min {f['input_range']['min']:.4g}, max {f['input_range']['max']:.4g}")
    if f["eps_zero"]["flag"]:
        out.append(f"PGD with ε = 0 gives {f['eps_zero']['pgd_eps0_accuracy']:.2f}% but natural accuracy is "
                   f"{f['eps_zero']['nat_accuracy']:.2f}% (first {f['eps_zero']['n_examples']} examples)")
    for p in f["more_steps_stronger"]["pairs"]:
        if p["flag"]:
            out.append(f"more steps, higher accuracy: {p['more']} {p['accuracy_more']:.2f}% > {p['fewer']} "
                       f"{p['accuracy_fewer']:.2f}% + noise {p['noise_margin']:.2f}")
    gm = f["gradient_masking"]
    if gm["flag"]:
        out.append(f"possible gradient masking: {gm['pgd']} {gm['pgd_accuracy']:.2f}% vs worst case "
                   f"{gm['worst']:.2f}% (gap {gm['gap']:.2f} > {max(gm['threshold'], gm['noise_margin']):.2f} "
                   "points: threshold and noise margin)")
    zg = f["zero_gradients"]
    if zg["flag"]:
        out.append(f"zero input gradients on {zg['share']:.1f}% of inputs (> {zg['threshold']:g}%): "
                   "gradient-based attacks are blind there")
    for a, msgs in f.get("autoattack_checks", {}).get("warnings", {}).items():
        out += [f"{a} (AutoAttack's own check): {m}" for m in msgs]
    if f["perturbation_bound"]["flag"]:
        out.append(f"adversarial inputs leave the ε-ball or [0, 1]: max L∞ {f['perturbation_bound']['max_linf']}")
    return out


def format_markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown table plus its provenance and sanity checks."""
    lines = []
    ck = report.get("checkpoint")
    title = f"# Robustness evaluation: {ck['path']}" if ck else "# Robustness evaluation"
    lines += [title, ""]
    if ck:
        lines.append(f"- checkpoint: epoch {ck.get('epoch')}, sha256 `{ck.get('sha256', '')[:16]}…`"
                     + (f", method {report['method']}" if report.get("method") else ""))
    d = report["data"]
    lines.append(f"- data: {d['name']} ({d['split']}), {d['selection']} of {d['n_available']}")
    pr = report["protocol"]
    lines.append(f"- protocol: {pr['name']} — {pr['doc']}")
    source = f" (from {report['eps_source']})" if report.get("eps_source") else ""
    lines.append(f"- threat model: L∞, ε = {format_eps(report['eps'])}{source}; seed {report['seed']}")
    lines += ["", "| attack | accuracy (%) | examples | mode | parameters |", "|---|---:|---:|---|---|"]
    for a in report["order"]:
        m = report["attacks"][a]
        ex = f"{m['n_attacked']}/{m['n_examples']}" if a != "nat" else f"{m['n_examples']}"
        params = {k: v for k, v in m.items() if k not in ("mode", "n_examples", "n_attacked", "robust", "accuracy",
                                                            "seconds", "doc", "implementation")}
        lines.append(f"| {a} | {m['accuracy']:.2f} | {ex} | {m['mode']} | {describe_params(a, params)} |")
    w = report["worst"]
    lines.append(f"| **worst** | **{w['accuracy']:.2f}** | {w['n_examples']} | per-example | "
                 f"robust only if every attack failed ({', '.join(w['over'])}) |")
    if "common_subset" in w:
        cs = w["common_subset"]
        lines.append(f"| worst (first {cs['n_examples']}) | {cs['accuracy']:.2f} | {cs['n_examples']} | per-example | "
                     "every attack ran on these |")
    lines += ["", "Examples: attacked / counted; natural errors are not attacked and count as broken."]
    if report["cascade"]["attacks"]:
        lines.append("Cascaded attacks ran only on examples that no earlier attack broke, so their accuracy "
                     "includes every attack before them (a lower bound of the standalone number).")
    if "aa" not in report["order"]:
        lines.append("AutoAttack was not run; `--attacks all` runs the full suite.")
    warn = _flag_lines(report["flags"])
    lines += ["", "## Sanity checks", ""]
    lines += [f"- **WARNING** {w_}" for w_ in warn] if warn else ["- all passed (eval mode, input range, ε = 0, "
                                                                   "steps, gradient masking, zero gradients, ε-ball)"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# checkpoints


def evaluate_checkpoint(path: str | Path, attacks: str | Sequence[str] | None = None, eps: float | None = None,
                        n_examples: int | None = None, batch_size: int = 256, seed: int = 0, device: str = "auto",
                        out: str | Path | None = None, protocol: str | Protocol = "default",
                        limits: Mapping[str, int] | None = None, cascade: bool = True, reuse: bool = False,
                        masking_threshold: float = 5.0, zero_grad_threshold: float = 5.0,
                        sanity_examples: int = 100, verbose: bool = False, progress: bool = False,
                        save: bool = True, channels_last: bool = True) -> EvalResult:
    """Evaluate an irat checkpoint on its data set's test split, in eval mode.

    Writes eval.json to `out` (default: the run directory, i.e. the checkpoint's grandparent) with
    eval.md and eval_examples.json beside it. ε: explicit `eps`, else the protocol's, else training ε.
    reuse: if that eval.json already holds results for this checkpoint (the file's SHA-256, or the
    same architecture with the same weights' hash), keep the attacks it ran with the same settings
    and run only the others (see `evaluate`).
    """
    from .checkpoint import check_data_matches, load_checkpoint
    from .distributed import local_device
    from .files import sha256_file

    names = parse_attacks(attacks)  # validate before loading anything
    proto = resolve_protocol(protocol, limits)
    if eps is not None:
        eps = _check_eps(eps)
    path = Path(path)
    ckpt = load_checkpoint(path)
    model, cfg = model_from_checkpoint(ckpt, path)
    dev = local_device(device)
    model = model.to(dev).eval()
    eps_source = "--eps" if eps is not None else (f"protocol {proto.name}" if proto.eps is not None
                                                   else "the checkpoint's training ε")
    eps = eps if eps is not None else (proto.eps if proto.eps is not None else cfg.attack.eps)
    from .data.datasets import load_dataset
    ds = load_dataset(cfg.data.name, cfg.data.root)
    check_data_matches(ckpt, ds, path)
    out_path = Path(out) if out else RunDir.of_checkpoint(path).eval_json
    digest = sha256_file(path)
    previous = load_eval(out_path) if reuse else None
    if previous is not None:
        stored = previous["report"].get("checkpoint", {})
        same_weights = (ckpt.get("model_sha256") is not None and stored.get("model_sha256") == ckpt["model_sha256"]
                        and previous["report"].get("model", {}).get("name") == cfg.model.name)
        if stored.get("sha256") != digest and not same_weights:
            previous = None  # another model's results
    result = evaluate(model, ds, names, eps=eps, protocol=proto, n_examples=n_examples, batch_size=batch_size,
                      seed=seed, device=dev, cascade=cascade, reuse=previous, masking_threshold=masking_threshold,
                      zero_grad_threshold=zero_grad_threshold, sanity_examples=sanity_examples, verbose=verbose,
                      progress=progress, channels_last=channels_last)
    r = result.report
    r["data"]["name"] = cfg.data.name
    r["checkpoint"] = {"path": str(path), "sha256": digest, "epoch": int(ckpt["epoch"]),
                       "model_sha256": ckpt.get("model_sha256"), "best": ckpt.get("best") or None}
    r["method"] = cfg.method
    r["model"] = {"name": cfg.model.name, "num_classes": int(ckpt["num_classes"]),
                  "in_channels": int(ckpt["in_channels"]), "image_size": list(ckpt.get("image_size", []))}
    r["training_eps"] = float(cfg.attack.eps)
    r["eps_source"] = eps_source
    if save:
        result.save(out_path)
    return result


# ---------------------------------------------------------------------------------------------
# `irat eval`


__all__ = ["ATTACKS", "DEFAULT_ATTACKS", "PROTOCOLS", "AttackSpec", "EvalResult", "Protocol", "describe_params",
           "evaluate", "format_eps", "evaluate_checkpoint", "load_eval", "format_markdown", "parse_attacks", "parse_limits",
           "quick_accuracy",
           "resolve_protocol", "robust_mask"]
