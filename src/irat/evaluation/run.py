"""Running an evaluation: `evaluate` (a model), `evaluate_checkpoint` (an irat checkpoint), and
`quick_accuracy` (the trainer's validation).

The attacks run in a fixed order: nat, the cheap ones as given, then the expensive ones as given.
Each attack cuts the examples it is due for into batches in data-set order, and each batch draws its
random start from its own generator (the seed, `seeds.EVAL_ATTACK`, the attack's position and the
batch's index), so reusing the head of an earlier run leaves the rest unchanged, and a batch's result
does not depend on which process ran it.

Under `torchrun` (or any initialized process group) the batches of every attack, AutoAttack included,
are dealt round-robin over the ranks; after each attack the ranks exchange their per-example codes, so
the cascade and the worst case see every example, and rank 0 writes the same eval.json as one process.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import __version__, seeds
from ..attacks.registry import ATTACKS
from ..checkpoint import check_data_matches, load_checkpoint
from ..data.datasets import load_dataset
from ..data.loader import eval_batches
from ..distributed import (all_gather_lists, all_reduce_into, barrier, init_from_env, is_main, local_device,
                           rank_world)
from ..errors import ConfigError, IratError
from ..files import sha256_file
from ..runs import RunDir, checkpoint_weights, model_from_checkpoint
from .outcomes import BROKEN, NOT_RUN, ROBUST, Outcomes, float_batch, predict_correct
from .protocols import EvalSettings, Protocol, check_settings
from .result import EvalResult, Previous, load_eval_of, report_of, take_reusable
from .sanity import sanity_flags

# ---------------------------------------------------------------------------------------------
# the trainer's validation: accuracy under a few cheap attacks


def quick_accuracy(model: nn.Module, x_u8: Tensor, y: Tensor, eps: float, attacks: list[str],
                   batch_size: int = 256, seed: int = 0, device: torch.device | None = None,
                   channels_last: bool = False, reduce: Callable[[Tensor], Tensor] | None = None) -> dict[str, float]:
    """Accuracy (%) under each attack for uint8 images, e.g. the trainer's validation (nat, PGD-20).

    Each attack runs standalone on every example. `reduce` all-reduces a tensor of counts across
    data-parallel ranks (sharded evaluation).
    """
    device = device or x_u8.device
    rank, world = rank_world()
    g = seeds.generator(device, seed, seeds.VALIDATION_ATTACK)
    counts = torch.zeros(len(attacks) + 1, device=device, dtype=torch.float64)
    for _, xb, yb in eval_batches(x_u8, y, batch_size, device, rank, world, channels_last):
        for i, name in enumerate(attacks):
            x_adv = ATTACKS[name].run(model, xb, yb, eps, g)
            counts[i] += predict_correct(model, x_adv, yb).sum()
        counts[-1] += yb.numel()
    if reduce is not None:
        counts = reduce(counts)
    total = max(float(counts[-1]), 1.0)
    return {name: 100.0 * float(counts[i]) / total for i, name in enumerate(attacks)}


# ---------------------------------------------------------------------------------------------
# the full evaluation


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
    reuse: Previous | None = None,
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
    settings = check_settings(attacks, protocol, limits, eps, n_examples, batch_size, seed, cascade,
                              masking_threshold, zero_grad_threshold, sanity_examples, verbose, channels_last)
    if settings.eps is None:
        raise ConfigError("eps", "a finite number >= 0 (a bare model has no training ε; give eps=...)", None)
    eps_source = "eps argument" if eps is not None else f"protocol {settings.protocol.name}"
    if not isinstance(model, nn.Module):
        raise ConfigError("model", "a torch.nn.Module", type(model).__name__)
    if model.training:
        raise IratError("model: is in train mode; attacks must run in eval mode (batch-norm statistics, dropout). "
                        "Call model.eval() first")
    x_all, y_all, data = _as_data(dataset, data_root)
    x, y, total = _first_examples(x_all, y_all, settings.n_examples)
    dev = _model_device(model)
    if device is not None:
        want = local_device(device) if isinstance(device, str) else torch.device(device)
        if want.type != dev.type or (want.index is not None and dev.index is not None and want.index != dev.index):
            raise ConfigError("device", f"the model's device ({dev}); move the model first", str(want))
    return run_evaluation(model, x, y, total, data, settings, eps_source=eps_source, device=dev, reuse=reuse,
                          progress=progress)


def evaluate_checkpoint(path: str | Path, attacks: str | Sequence[str] | None = None, eps: float | None = None,
                        n_examples: int | None = None, batch_size: int = 256, seed: int = 0, device: str = "auto",
                        out: str | Path | None = None, protocol: str | Protocol = "default",
                        limits: Mapping[str, int] | None = None, cascade: bool = True, reuse: bool = False,
                        masking_threshold: float = 5.0, zero_grad_threshold: float = 5.0,
                        sanity_examples: int = 100, verbose: bool = False, progress: bool = False,
                        save: bool = True, channels_last: bool = True, weights: str = "auto") -> EvalResult:
    """Evaluate an irat checkpoint on its data set's test split, in eval mode.

    weights: "auto" evaluates the EMA weights when the run kept them, else the trained ones; "raw"
    always the trained ones (see irat.runs.checkpoint_weights); the report records which.

    Writes eval.json to `out` (default: the run directory, i.e. the checkpoint's grandparent) with
    eval.md and eval_examples.json beside it. ε: explicit `eps`, else the protocol's, else training ε.
    reuse: if that eval.json already holds results for this checkpoint (the file's SHA-256, or the
    same architecture with the same weights' hash), keep the attacks it ran with the same settings
    and run only the others (see `evaluate`).
    """
    settings = check_settings(attacks, protocol, limits, eps, n_examples, batch_size, seed, cascade,
                              masking_threshold, zero_grad_threshold, sanity_examples, verbose, channels_last)
    path = Path(path)
    ckpt = load_checkpoint(path)
    model, cfg = model_from_checkpoint(ckpt, path, weights)
    used = checkpoint_weights(ckpt, weights)[1]
    dev = local_device(device)
    init_from_env(dev)  # under torchrun: join the process group, and shard every attack's batches over it
    model = model.to(dev).eval()
    if eps is not None:
        eps_source = "--eps"
    elif settings.eps is not None:
        eps_source = f"protocol {settings.protocol.name}"
    else:
        settings, eps_source = replace(settings, eps=float(cfg.attack.eps)), "the checkpoint's training ε"
    ds = load_dataset(cfg.data.name, cfg.data.root)
    check_data_matches(ckpt, ds, path)
    x, y, total = _first_examples(ds.x_test, ds.y_test, settings.n_examples)
    out_path = Path(out) if out else RunDir.of_checkpoint(path).eval_json
    digest = sha256_file(path)
    previous = load_eval_of(out_path, digest, ckpt.get("model_sha256"), cfg.model.name, used) if reuse else None
    source = {
        "checkpoint": {"path": str(path), "sha256": digest, "epoch": int(ckpt["epoch"]),
                       "model_sha256": ckpt.get("model_sha256"), "best": ckpt.get("best") or None,
                       "weights": used},
        "method": cfg.method,
        "model": {"name": cfg.model.name, "num_classes": int(ckpt["num_classes"]),
                  "in_channels": int(ckpt["in_channels"]), "image_size": list(ckpt.get("image_size", []))},
        "training_eps": float(cfg.attack.eps),
    }
    result = run_evaluation(model, x, y, total, {"name": cfg.data.name, "split": "test"}, settings,
                            eps_source=eps_source, device=dev, reuse=previous, progress=progress, source=source)
    if save:
        if is_main():
            result.save(out_path)
        barrier()  # every rank returns once the files are written
    return result


def evaluate_run(run_dir: str | Path, **kwargs: Any) -> list[EvalResult]:
    """Evaluate every kept checkpoint of a run (checkpoints/epoch-NNN.pt) with the same settings, each
    into checkpoints/epoch-NNN.eval.json beside it; `reuse=True` extends each file on its own. The
    keyword arguments are evaluate_checkpoint's (all but `out`)."""
    run = RunDir(Path(run_dir))
    if "out" in kwargs and kwargs["out"] is not None:
        raise ConfigError("--out", "not given with a run directory (each kept checkpoint's results go beside it)",
                          kwargs["out"])
    kept = run.kept_checkpoints()
    if not kept:
        raise IratError(f"checkpoint: {run.path} holds no kept checkpoints ({run.checkpoints}/epoch-NNN.pt); train "
                        f"with --set keep_every=N or keep_epochs=[…], or name one checkpoint")
    kwargs.pop("out", None)
    return [evaluate_checkpoint(c, out=RunDir.kept_eval(c), **kwargs) for c in kept]


def run_evaluation(model: nn.Module, x: Tensor, y: Tensor, total: int, data: dict[str, Any], settings: EvalSettings,
                   *, eps_source: str, device: torch.device, reuse: Previous | None = None, progress: bool = False,
                   source: Mapping[str, Any] | None = None) -> EvalResult:
    """The evaluation after its arguments are checked (`settings.eps` decided) of the first
    examples (x, y) of `total`: every attack, the per-example worst case, the sanity flags.
    `source` (checkpoint, method, model, training ε) ends the report."""
    n = int(x.shape[0])
    log = _Progress(progress and is_main())
    with _weights_layout(model, settings.channels_last):
        started = time.perf_counter()
        with torch.no_grad():
            num_classes = int(model(float_batch(x, torch.arange(min(n, settings.batch_size)), device)).shape[1])
        out = _plan(settings, n, num_classes)
        key = {"eps": settings.eps, "seed": settings.seed, "batch_size": settings.batch_size,
               "cascade": settings.cascade, "n_examples": n, "n_available": total}
        reused = take_reusable(reuse, out, key)
        for a in reused:
            log(f"{a:>8}: {out.meta[a]['accuracy']:6.2f}%  (reused from the earlier evaluation)")
        for pos, a in enumerate(out.order):
            if a not in reused:
                _run_attack(model, x, y, a, pos, out, settings, device, num_classes, log)
        flags = sanity_flags(model, x, y, device, settings, out)
        accuracy, worst = _worst_case(out)
    order, meta = out.order, out.meta
    cascaded = [a for a in order if meta[a]["mode"] == "cascade"]
    report = {
        "irat_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "accuracy": accuracy,
        "worst": worst,
        "eps": settings.eps,
        "eps_source": eps_source,
        "norm": "Linf",
        "protocol": settings.protocol.to_dict(),
        "order": order,
        "attacks": {a: {**out.params[a], **meta[a], "doc": ATTACKS[a].doc} for a in order},
        "cascade": {"enabled": settings.cascade, "attacks": cascaded,
                    "n_attacked": {a: meta[a]["n_attacked"] for a in cascaded},
                    "note": "a cascaded attack runs only on examples no earlier attack broke; its accuracy is "
                            "robustness against it and every attack before it"},
        "flags": flags,
        "reused": {"attacks": reused, "from": report_of(reuse).get("created") if reused else None,
                   "note": "these attacks' results were taken from an earlier evaluation of the same model with the "
                           "same settings; their 'seconds' are that evaluation's"},
        "data": {**data, "n_examples": n, "n_available": total, "selection": f"the first {n} in data-set order",
                 "num_classes": num_classes},
        "seed": settings.seed,
        "batch_size": settings.batch_size,
        "device": str(device),
        "processes": rank_world()[1],
        "channels_last": settings.channels_last,
        "seconds": round(time.perf_counter() - started, 3),
        **(source or {}),
    }
    return EvalResult(report, _examples(out, y))


def _plan(settings: EvalSettings, n: int, num_classes: int) -> Outcomes:
    """The run order (nat, the cheap attacks as given, then the expensive ones as given), each
    attack's parameters and example coverage."""
    names, eps = settings.attacks, settings.eps
    assert eps is not None
    order = ["nat"] + [a for a in names if a != "nat" and not ATTACKS[a].expensive] + \
        [a for a in names if ATTACKS[a].expensive]
    proto = settings.protocol
    params = {a: ATTACKS[a].params(eps, proto.overrides.get(a), num_classes) for a in order}
    coverage = {a: min(n, int(proto.limits[a])) if a in proto.limits else n for a in order}
    return Outcomes(order, params, coverage)


def _run_attack(model: nn.Module, x: Tensor, y: Tensor, a: str, pos: int, out: Outcomes, settings: EvalSettings,
                device: torch.device, num_classes: int, log: _Progress) -> None:
    """Attack `a` (position `pos` in the run order) on the examples it is due for; records it in `out`.

    nat: every example; a cheap attack: the naturally correct ones (standalone); an expensive one
    with the cascade on: those still unbroken by every attack before it."""
    spec, n, batch_size = ATTACKS[a], x.shape[0], settings.batch_size
    assert settings.eps is not None
    t0 = time.perf_counter()
    code = torch.full((n,), NOT_RUN, dtype=torch.int8)
    todo = torch.arange(n) < out.coverage[a]
    if a == "nat":
        mode = "natural"
    elif spec.expensive and settings.cascade:
        todo, mode = todo & ~out.broken_before() & (out.codes["nat"] == ROBUST), "cascade"
    else:
        todo, mode = todo & (out.codes["nat"] == ROBUST), "standalone"
    idx_all = todo.nonzero().flatten()
    rank, world = rank_world()
    linf, lo, hi = 0.0, float("inf"), float("-inf")
    pkg_warnings: list[str] = []
    for b, s in enumerate(range(0, idx_all.numel(), batch_size)):
        if b % world != rank:  # sharded: this batch is another rank's
            continue
        idx = idx_all[s:s + batch_size]
        g = seeds.generator(device, settings.seed, seeds.EVAL_ATTACK, pos, b)
        xb, yb = float_batch(x, idx, device), y[idx.to(y.device)].to(device)
        x_adv = spec.run(model, xb, yb, settings.eps, g, overrides=settings.protocol.overrides.get(a),
                         seed=settings.seed, verbose=settings.verbose, num_classes=num_classes,
                         warnings_out=pkg_warnings)
        ok = predict_correct(model, x_adv, yb).cpu()
        code[idx] = torch.where(ok, ROBUST, BROKEN).to(torch.int8)
        if spec.expensive and idx_all.numel() > batch_size:
            log(f"{a:>8}: {min(s + batch_size, idx_all.numel())}/{idx_all.numel()} attacked "
                f"({time.perf_counter() - t0:.0f} s)" + (f" [rank {rank} of {world}]" if world > 1 else ""))
        if a != "nat":
            linf = max(linf, float((x_adv - xb).abs().flatten(1).amax(1).max()))
            lo, hi = min(lo, float(x_adv.min())), max(hi, float(x_adv.max()))
    if world > 1:  # every rank gets every example's code (NOT_RUN < BROKEN < ROBUST: one rank ran each)
        code = all_reduce_into(code.int(), "max", device).to(torch.int8)
        linf, neg_lo, hi = all_reduce_into(torch.tensor([linf, -lo, hi], dtype=torch.float64), "max", device).tolist()
        lo = -neg_lo
        pkg_warnings = list(dict.fromkeys(all_gather_lists(pkg_warnings)))
    out.codes[a] = code
    if a != "nat":
        out.max_linf[a] = linf
        if lo <= hi:
            out.widen_box(lo, hi)
    robust = int((code[:out.coverage[a]] == ROBUST).sum())
    out.meta[a] = {"mode": mode, "n_examples": out.coverage[a], "n_attacked": int(idx_all.numel()), "robust": robust,
                   "accuracy": 100.0 * robust / out.coverage[a], "seconds": round(time.perf_counter() - t0, 3)}
    if spec.reports_checks:
        out.package_warnings[a] = pkg_warnings
    log(f"{a:>8}: {out.meta[a]['accuracy']:6.2f}%  ({mode}, {out.meta[a]['n_attacked']} attacked of "
        f"{out.coverage[a]}, {out.meta[a]['seconds']:.1f} s)")


def _worst_case(out: Outcomes) -> tuple[dict[str, float], dict[str, Any]]:
    """Each attack's accuracy plus the per-example worst case (robust only if no attack broke it),
    also on the first examples every attack ran on when an attack had a limit."""
    order, n = out.order, len(out.codes["nat"])
    worst_mask = out.codes["nat"] == ROBUST
    for a in order[1:]:
        worst_mask &= out.codes[a] != BROKEN
    n_common = min(out.coverage.values())
    accuracy = {a: out.meta[a]["accuracy"] for a in order}
    accuracy["worst"] = 100.0 * float(worst_mask.sum()) / n
    worst = {"accuracy": accuracy["worst"], "n_examples": n, "over": list(order),
             "definition": "robust only if correct and every attack run on the example failed"}
    if n_common < n:
        worst["common_subset"] = {"n_examples": n_common,
                                  "accuracy": 100.0 * float(worst_mask[:n_common].sum()) / n_common,
                                  "note": f"the first {n_common} examples, where every attack ran; over all {n} "
                                          "examples the worst case is an upper bound"}
    return accuracy, worst


def _examples(out: Outcomes, y: Tensor) -> dict[str, Any]:
    """eval_examples.json: per example its label, the first attack (in run order) that broke it, and
    each attack's code."""
    n = y.shape[0]
    first = torch.full((n,), -1, dtype=torch.long)
    for pos, a in enumerate(out.order):
        first = torch.where((first < 0) & (out.codes[a] == BROKEN), pos, first)
    return {
        "order": out.order,
        "codes": {"null": "not attacked (natural error, broken earlier in the cascade, or outside the attack's "
                          "example limit)", "1": "robust", "0": "broken"},
        "index": list(range(n)),
        "label": y.tolist(),
        "broken_by": [out.order[i] if i >= 0 else None for i in first.tolist()],
        "robust": {a: [None if c == NOT_RUN else int(c) for c in out.codes[a].tolist()] for a in out.order},
    }


# ---------------------------------------------------------------------------------------------
# inputs


def _first_examples(x_all: Tensor, y_all: Tensor, n_examples: int | None) -> tuple[Tensor, Tensor, int]:
    """(x, y) of the first `n_examples` (all if None) in data-set order, and how many there are in all."""
    if x_all.dim() != 4:
        raise ConfigError("dataset", "images as an NCHW tensor", f"shape {tuple(x_all.shape)}")
    if y_all.shape[0] != x_all.shape[0]:
        raise ConfigError("dataset", "as many labels as images", f"{y_all.shape[0]} labels, {x_all.shape[0]} images")
    total = int(x_all.shape[0])
    n = total if n_examples is None else min(n_examples, total)
    if n == 0:
        raise ConfigError("dataset", "at least one example", 0)
    return x_all[:n], y_all[:n].long(), total


def _as_data(dataset: Any, root: str | Path = "data") -> tuple[Tensor, Tensor, dict[str, Any]]:
    """(x, y, description) from a data set name, an object with x_test/y_test, or an (x, y) pair."""
    if isinstance(dataset, str):
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


def _model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


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


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"irat eval: {msg}", file=sys.stderr, flush=True)


__all__ = ["evaluate", "evaluate_checkpoint", "quick_accuracy", "run_evaluation"]
