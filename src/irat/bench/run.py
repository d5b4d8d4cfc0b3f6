"""`irat bench`: the cost floor of adversarial training, measured on the real code path.

Everything is timed in one process, on the same fixed batches, by calling `Trainer.step` of a
Trainer built on a tiny subset (so the benchmark runs exactly the code `irat train` runs):

- `clean_step`: `Trainer.step` with attack.eps = 0 (forward + backward + SGD step + bookkeeping);
- `attack_step`: one bare input-gradient step (eval-mode forward, `autograd.grad` w.r.t. the
  input, signed step, projection), averaged over a T-step loop — the least an attack step costs;
- `pgd`: irat's `pgd` (κ / first-wrong bookkeeping included), T steps;
- `at_step`: `Trainer.step` of PGD-T AT, and the same for every method.

Reported ratios (each the median over rounds of the ratio measured within one round, items
interleaved and rotated, so drifting machine load cancels):

- `floor_ratio` = AT step ÷ (T × attack step + clean step): 1.0 means no work beyond the floor;
- `overhead[m]` = step of method m ÷ AT step; `overhead_vs_base[m]` = step of m ÷ step of its
  unweighted objective (at, trades or mart), e.g. mail-trades ÷ trades;
- `images_per_s`: epochs of AT through the trainer's batch loop (seeded batches + step);
- `channels_last`: AT / clean / attack step with fast.channels_last off ÷ on (> 1: it helps);
- `threads`: AT step with 1 thread ÷ with the default thread count (CPU);
- `host_sync_ops`: ops per step that read device data on the host (`.item()`, `bool(t)`) or build
  tensors from host data (`torch.tensor(...)`), counted with a dispatch mode — each is a
  host-device sync on CUDA; should be 0;
- with `--reference`: `reference_ratio` = epoch time of the papers'-style loop in
  irat.bench.reference_loop (benchmarks/reference_loop.py runs it alone) ÷ irat's, same model, initial weights and images.

    irat bench --quick --out benchmarks/results/bench-quick.json
    irat bench --reference --out benchmarks/results/bench.json
"""
from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..attacks.pgd import pgd
from ..config import build_config
from ..errors import IratError
from ..methods import METHODS
from ..models import model_from_config
from ..training import EpochStats, Trainer
from .measure import Rounds, bare_attack, count_sync_ops, irat_epoch, reweight_ops_seconds, step_fn, sync

QUICK_METHODS = ("at", "mail-at", "clirat", "gairat", "trades", "mail-trades", "mart")
TARGETS = {"floor_ratio": 1.10, "pm_overhead_vs_base": 1.02, "gair_overhead_vs_base": 1.05, "reference_ratio": 1.5}
REFERENCE_METHODS = ("at", "trades")
_ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # they change the timings


@dataclass
class BenchOptions:
    """What `irat bench` measures (its command-line options, as data)."""

    quick: bool = False
    preset: str = "fmnist-smallcnn"
    model: str = "smallcnn"
    batch_size: int = 128
    device: str = "cpu"
    methods: str | None = None  # comma list; default all, or QUICK_METHODS
    repeats: int | None = None  # timing rounds (default 7, quick 2)
    batches: int | None = None  # fixed batches per timed item (default 2, quick 1)
    epoch_images: int | None = None
    epoch_repeats: int | None = None
    threads: int | None = None
    no_variants: bool = False
    reference: bool = False
    reference_workers: int = 0
    epochs: int = 3
    set: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# building blocks


def base_method(method: str) -> str:
    """The unweighted method of the same objective (mail-trades → trades, clirat → at)."""
    return str(METHODS[method]["objective"])


def _bench_config(method: str, args: BenchOptions, n_train: int, extra: Sequence[str] = ()) -> Any:
    overrides = [f"method={method}", f"model.name={args.model}", f"batch_size={args.batch_size}",
                 f"device={args.device}", f"data.train_subset={n_train}", "data.val_size=0", "eval_every=0",
                 "checkpoint_every_steps=0", f"epochs={max(args.epochs, 1)}", "reweight.from_epoch=1",
                 *(args.set or []), *extra]
    return build_config(f"{args.preset}-{method}", None, overrides)


def _trainer(method: str, args: BenchOptions, tmp: Path, n_train: int, extra: Sequence[str] = (),
             name: str | None = None):
    cfg = _bench_config(method, args, n_train, extra)
    return Trainer(cfg, tmp / (name or method), overwrite=True, progress=False)


def _batches(trainer: Trainer, n: int, epoch: int = 1) -> list:
    return [b for _, b in zip(range(n), trainer.batches(epoch))]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------
# the benchmark


def run_bench(args: BenchOptions, argv: Sequence[str] | None = None,
              log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict[str, Any]:
    quick = bool(args.quick)
    methods = list(QUICK_METHODS if quick else METHODS)
    if args.methods:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise IratError(f"--methods: unknown method(s) {', '.join(bad)}; see `irat methods`")
    if "at" not in methods:
        methods.insert(0, "at")
    for m in list(methods):
        if base_method(m) not in methods:
            methods.append(base_method(m))
    rounds = args.repeats if args.repeats is not None else (2 if quick else 7)
    n_batches = args.batches if args.batches is not None else (1 if quick else 2)
    if rounds < 1 or n_batches < 1 or args.batch_size < 1:
        raise IratError("--repeats/--batches/--batch-size: must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    default_threads = torch.get_num_threads()
    n_train = args.batch_size * n_batches
    started = datetime.now(timezone.utc)
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None

    with tempfile.TemporaryDirectory(prefix="irat-bench-") as tmpdir:
        tmp = Path(tmpdir)
        log(f"building trainers for {len(methods)} methods …")
        trainers = {m: _trainer(m, args, tmp, n_train) for m in methods}
        at = trainers["at"]
        device = at.device
        cfg = at.cfg
        steps = cfg.attack.steps
        batches = {m: _batches(tr, n_batches) for m, tr in trainers.items()}
        clean = _trainer("at", args, tmp, n_train, ["attack.eps=0"], name="clean")
        cl_check = not args.no_variants
        threads_check = cl_check and device.type == "cpu" and default_threads > 1

        r = Rounds(device)
        b0 = batches["at"]
        r.add("clean_step", step_fn(clean, _batches(clean, n_batches)))

        def attack_fn(model, autocast, bs=b0):
            return lambda: [bare_attack(model, b.x, b.y, cfg.attack.eps, cfg.attack.step_size, steps, b.noise,
                                        autocast) for b in bs]

        r.add("attack_steps", attack_fn(at.attack_model, at.autocast))

        def pgd_fn(tr=at, bs=b0):
            def run():
                with tr.autocast():
                    for b in bs:
                        pgd(tr.attack_model, b.x, b.y, cfg.attack.eps, steps, cfg.attack.step_size,
                            start=tr.cfg.training_attack.start, noise=b.noise)
            return run

        r.add("pgd", pgd_fn())
        for m in methods:
            r.add(f"step:{m}", step_fn(trainers[m], batches[m]))
        variants: dict[str, Any] = {}
        if cl_check:
            for flag in (False, True):
                tag = "on" if flag else "off"
                tv = _trainer("at", args, tmp, n_train, [f"fast.channels_last={str(flag).lower()}"], name=f"cl-{tag}")
                tc = _trainer("at", args, tmp, n_train, [f"fast.channels_last={str(flag).lower()}", "attack.eps=0"],
                              name=f"cl-clean-{tag}")
                tv.model.load_state_dict(at.model.state_dict())
                tc.model.load_state_dict(at.model.state_dict())
                bv = _batches(tv, n_batches)
                r.add(f"cl_{tag}:at_step", step_fn(tv, bv))
                r.add(f"cl_{tag}:clean_step", step_fn(tc, _batches(tc, n_batches)))
                r.add(f"cl_{tag}:attack_steps", attack_fn(tv.attack_model, tv.autocast, bv))
                variants[tag] = tv
        if threads_check:
            at1 = step_fn(at, b0)

            def one_thread():
                torch.set_num_threads(1)
                try:
                    at1()
                finally:
                    torch.set_num_threads(default_threads)
            r.add("threads_1:at_step", one_thread)

        log(f"timing {len(r.items)} items × {rounds} rounds on {device} ({default_threads} threads) …")
        r.run(rounds, warmup=1, log=log)

        nb = len(b0)

        def per_step(times: dict[str, list[float]]) -> dict[str, float]:
            """Median seconds per step; the T-step attack loops become one attack step."""
            return {k.replace("attack_steps", "attack_step"):
                    statistics.median(v) / (nb * (steps if k.endswith("attack_steps") else 1))
                    for k, v in times.items()}
        floor = r.ratio("step:at", lambda i: r.times["attack_steps"][i] + r.times["clean_step"][i])
        floor_cpu = r.ratio("step:at", lambda i: r.cpu["attack_steps"][i] + r.cpu["clean_step"][i], cpu=True)
        out: dict[str, Any] = {
            "command": " ".join([*(f"{k}={shlex.quote(os.environ[k])}" for k in _ENV_KEYS if k in os.environ),
                                 shlex.join(["irat", *(argv if argv is not None else sys.argv[1:])])]),
            "date": started.isoformat(timespec="seconds"),
            "quick": quick,
            "device": str(device),
            "device_name": _device_name(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": default_threads,
            "interop_threads": torch.get_num_interop_threads(),
            "env": {k: os.environ[k] for k in _ENV_KEYS if k in os.environ},
            "load_average": {"start": list(load_start) if load_start else None},
            "preset": args.preset,
            "model": cfg.model.name,
            "data": cfg.data.name,
            "batch_size": cfg.batch_size,
            "attack": {"eps": cfg.attack.eps, "steps": steps, "step_size": cfg.attack.step_size},
            "fast": {"amp": bool(at.amp), "channels_last": bool(at.channels_last), "compile": bool(cfg.fast.compile)},
            "rounds": rounds,
            "batches_per_item": nb,
            "methods": methods,
            "median_s": per_step(r.times),
            "rounds_s": {k: [round(t / nb, 6) for t in v] for k, v in r.times.items()},  # per round, ÷ batches
            # process CPU seconds per step: with 1 thread, the cost without the other processes' load
            "median_cpu_s": per_step(r.cpu),
            "floor_ratio": floor,
            "floor_ratio_cpu": floor_cpu,
            "overhead": {m: r.ratio(f"step:{m}", "step:at") for m in methods},
            "overhead_vs_base": {m: {"base": base_method(m), "ratio": r.ratio(f"step:{m}", f"step:{base_method(m)}"),
                                     "iqr": (r.iqr(f"step:{m}", f"step:{base_method(m)}") if rounds > 1 else None)}
                                 for m in methods},
            "overhead_vs_base_cpu": {m: r.ratio(f"step:{m}", f"step:{base_method(m)}", cpu=True) for m in methods},
            "pgd_vs_bare_attack": r.ratio("pgd", "attack_steps"),
        }
        if cl_check:
            out["channels_last"] = {
                f"{k}_speedup": r.ratio(f"cl_off:{k}", f"cl_on:{k}") for k in ("at_step", "clean_step", "attack_steps")}
            out["channels_last"]["attack_step_speedup"] = out["channels_last"].pop("attack_steps_speedup")
        if threads_check:
            out["threads_effect"] = {"at_step_1_thread_s": r.median("threads_1:at_step") / nb,
                                     f"at_step_{default_threads}_threads_s": r.median("step:at") / nb,
                                     "speedup": r.ratio("threads_1:at_step", "step:at")}

        # the reweighting ops alone, per method, and as a fraction of the base objective's step
        out["reweight_ops_s"] = {m: reweight_ops_seconds(trainers[m], batches[m][0]) for m in methods}
        out["reweight_ops_fraction"] = {m: out["reweight_ops_s"][m] / out["median_s"][f"step:{base_method(m)}"]
                                        for m in methods}

        # host-device syncs per step (counted once per method, outside the timing)
        out["host_sync_ops"] = {}
        if device.type == "cuda":
            out["cuda_sync_warnings"], out["peak_memory_bytes"] = {}, {}
        for m in methods:
            tr, b = trainers[m], batches[m][0]
            st = EpochStats(tr.device)

            def one_step(tr=tr, b=b, st=st) -> None:
                tr.note_finite(tr.step(b.x, b.y, b.noise, b.global_size, 1, st), 1, 0)
            out["host_sync_ops"][m] = count_sync_ops(one_step)
            if device.type == "cuda":  # the driver's own view: the syncs torch.cuda flags in one step
                import warnings

                torch.cuda.reset_peak_memory_stats(device)
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        one_step()
                finally:
                    torch.cuda.set_sync_debug_mode("default")
                out["cuda_sync_warnings"][m] = sorted({str(w.message).splitlines()[0] for w in caught})
                out["peak_memory_bytes"][m] = int(torch.cuda.max_memory_allocated(device))

        # epoch throughput of AT (and, with --reference, the papers'-style loop side by side)
        n_epoch = args.epoch_images if args.epoch_images is not None else (2 * args.batch_size if quick else 2048)
        epoch_rounds = args.epoch_repeats if args.epoch_repeats is not None else (1 if quick else 3)
        ref_methods = [m for m in REFERENCE_METHODS if not quick or m == "at"] if args.reference else []
        reference = None
        if ref_methods:  # imports torchvision (its per-image transforms): only when the reference loop runs
            from . import reference_loop as reference
        ep_trainers = {m: _trainer(m, args, tmp, n_epoch, name=f"epoch-{m}") for m in (["at"] + ref_methods)}
        ips: list[float] = []
        ref_out: dict[str, Any] = {}
        ref_state: dict[str, Any] = {}
        for m in ref_methods:
            tr = ep_trainers[m]
            ref_model = _reference_model(tr)
            ref_opt = torch.optim.SGD(ref_model.parameters(), lr=tr.cfg.optim.lr, momentum=tr.cfg.optim.momentum,
                                      weight_decay=tr.cfg.optim.weight_decay)
            x_cpu, y_cpu = tr.splits.x_train.cpu(), tr.splits.y_train.cpu()
            loader = reference.make_loader(x_cpu, y_cpu, tr.cfg.batch_size, seed=tr.cfg.seed,
                                           num_workers=args.reference_workers, augment=tr.augment)
            ref_state[m] = (ref_model, ref_opt, loader)
            ref_out[m] = {"reference_s": [], "irat_s": [], "images": int(x_cpu.shape[0])}
        log(f"epochs: {n_epoch} images × {epoch_rounds} rounds (AT{', reference ' + ','.join(ref_methods) if ref_methods else ''}) …")
        for e in range(1, epoch_rounds + 1):
            n, secs = irat_epoch(ep_trainers["at"], e)
            ips.append(n / secs)
            for m in ref_methods:
                ref_model, ref_opt, loader = ref_state[m]
                tr = ep_trainers[m]
                kw = _reference_kwargs(tr)
                sync(device)
                t = time.perf_counter()
                reference.train_epoch(ref_model, loader, ref_opt, device, method=m, **kw)
                sync(device)
                ref_out[m]["reference_s"].append(time.perf_counter() - t)
                if m == "at":
                    ref_out[m]["irat_s"].append(secs)
                else:
                    ref_out[m]["irat_s"].append(irat_epoch(tr, e)[1])
        out["images_per_s"] = statistics.median(ips)
        out["images_per_s_epochs"] = ips
        out["epoch_images"] = n_epoch
        if ref_methods:
            for m, d in ref_out.items():
                d["ratio"] = statistics.median(a / b for a, b in zip(d["reference_s"], d["irat_s"]))
                d["reference_images_per_s"] = d["images"] / statistics.median(d["reference_s"])
                d["irat_images_per_s"] = d["images"] / statistics.median(d["irat_s"])
            out["reference_ratio"] = ref_out["at"]["ratio"]
            out["reference"] = {"script": "irat.bench.reference_loop", "workers": args.reference_workers,
                                "methods": ref_out}
        del trainers, variants, ep_trainers
    out["load_average"]["end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out["targets"] = dict(TARGETS)
    out["meets_targets"] = _meets(out)
    return out


def _reference_model(trainer) -> torch.nn.Module:
    """The trainer's architecture and initial weights, in plain float32 NCHW."""
    s = trainer.splits
    model = model_from_config(trainer.cfg, s.num_classes, s.in_channels, s.image_size)
    model.load_state_dict({k: v.contiguous() for k, v in trainer.model.state_dict().items()})
    return model.to(trainer.device)


def _reference_kwargs(trainer) -> dict[str, Any]:
    c = trainer.cfg
    return {"epsilon": c.attack.eps, "step_size": c.attack.step_size, "num_steps": c.attack.steps,
            "beta_trades": c.tradeoff, "gamma": c.reweight.gamma, "beta": c.reweight.beta}


def _meets(out: dict[str, Any]) -> dict[str, bool]:
    res = {"floor_ratio": out["floor_ratio"] <= TARGETS["floor_ratio"]}
    pm = [m for m in out["methods"] if METHODS[m]["reweight"]["margin"] in ("pm_adv", "cl_pm")]
    gair = [m for m in out["methods"] if METHODS[m]["reweight"]["margin"] == "lps"]
    if pm:
        res["pm_overhead_vs_base"] = all(out["overhead_vs_base"][m]["ratio"] <= TARGETS["pm_overhead_vs_base"]
                                         for m in pm)
    if gair:
        res["gair_overhead_vs_base"] = all(out["overhead_vs_base"][m]["ratio"] <= TARGETS["gair_overhead_vs_base"]
                                           for m in gair)
    if "reference_ratio" in out:
        res["reference_ratio"] = out["reference_ratio"] >= TARGETS["reference_ratio"]
    res["no_host_sync"] = all(not v for v in out["host_sync_ops"].values())
    return res


def format_report(out: dict[str, Any]) -> str:
    lines = [f"irat bench — {out['device_name']} ({out['device']}, torch {out['torch']}, {out['threads']} threads), "
             f"{out['model']} on {out['data']}, batch {out['batch_size']}, PGD-{out['attack']['steps']}, "
             f"{out['rounds']} rounds",
             f"  clean step   {out['median_s']['clean_step'] * 1e3:9.1f} ms",
             f"  attack step  {out['median_s']['attack_step'] * 1e3:9.1f} ms   (bare input-gradient step)",
             f"  pgd          {out['median_s']['pgd'] * 1e3:9.1f} ms   (irat pgd ÷ bare loop: "
             f"{out['pgd_vs_bare_attack']:.3f})",
             f"  AT step      {out['median_s']['step:at'] * 1e3:9.1f} ms",
             f"  floor ratio  {out['floor_ratio']:.3f}   (AT ÷ (T × attack + clean); target ≤ {TARGETS['floor_ratio']})",
             f"  AT epoch     {out['images_per_s']:.1f} images/s",
             "  method          step ms   ÷ AT   ÷ base (base)"]
    for m in out["methods"]:
        ob = out["overhead_vs_base"][m]
        lines.append(f"  {m:<14}{out['median_s'][f'step:{m}'] * 1e3:9.1f}  {out['overhead'][m]:6.3f}  "
                     f"{ob['ratio']:6.3f} ({ob['base']})")
    ops = {m: f"{v * 1e6:.0f} µs ({100 * out['reweight_ops_fraction'][m]:.3f}%)"
           for m, v in out["reweight_ops_s"].items() if v}
    if ops:
        lines.append(f"  reweighting ops alone per step (share of the base step): {ops}")
    if "channels_last" in out:
        c = out["channels_last"]
        lines.append(f"  channels_last speedup (off ÷ on): AT step {c['at_step_speedup']:.3f}, "
                     f"clean step {c['clean_step_speedup']:.3f}, attack step {c['attack_step_speedup']:.3f}")
    if "threads_effect" in out:
        lines.append(f"  threads: AT step 1 thread ÷ {out['threads']} threads = {out['threads_effect']['speedup']:.3f}")
    if "reference_ratio" in out:
        for m, d in out["reference"]["methods"].items():
            lines.append(f"  reference {m}: {d['reference_images_per_s']:.1f} images/s vs irat "
                         f"{d['irat_images_per_s']:.1f} → irat {d['ratio']:.2f}× faster")
    syncs = {m: v for m, v in out["host_sync_ops"].items() if v}
    lines.append(f"  host-sync ops per step: {syncs if syncs else 'none'}")
    return "\n".join(lines)
