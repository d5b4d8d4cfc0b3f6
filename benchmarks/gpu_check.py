#!/usr/bin/env python3
"""One prepared GPU check of irat (issue 18): CIFAR-10, ResNet-18, PGD-10 AT, batch 128, ~8 minutes.

It runs from a source checkout (it puts ``<repo>/src`` on ``sys.path`` itself, so irat need not be
installed) under whatever Python and torch (>= 2.4) the machine has, and writes two files under
``--out DIR``: ``gpu_check.json`` (every number, rewritten after each section, so a run stopped
half-way still leaves what it measured) and ``gpu_check.log`` (everything printed). Sections, each
in its own try/except and time box (an error or a timeout is recorded as the section's
``status: error`` with the message and traceback, and the run goes on; a section the remaining
``--budget-s`` cannot hold is recorded as ``status: skipped`` with the reason):

1. ``throughput``: images/s of AT epochs through the trainer's batch loop (``irat.bench.irat_epoch``)
   for fp32, bf16 autocast (``fast.amp``: the attack), bf16 + channels_last (the CUDA default), the
   same with the training step in bf16 too (``fast.amp_train``) and bf16 + channels_last +
   torch.compile, each after a warm-up epoch; plus the host-device syncs of a whole epoch (dispatch-mode op count, and on CUDA
   ``torch.cuda.set_sync_debug_mode("warn")`` with the Python line of each sync).
2. ``bench``: ``irat bench`` (``run_bench``) on the same data: the cost floor ratio, the MAIL-AT,
   CLIRAT and GAIRAT overheads against AT, and its per-step host-sync check (on CUDA also what the
   sync debug mode reports and the step's peak memory).
3. ``train_eval``: ``irat train --preset cifar10-resnet18-mail-at`` for 3 epochs on 10,000 training
   images with reweighting from epoch 2, then ``irat eval CHECKPOINT --attacks nat,pgd20,aa
   --n-examples 500``: the time of each step, the per-epoch log and the accuracies.
4. ``bf16_parity``: one model (the trained checkpoint when there is one), one fp32 PGD-10
   adversarial batch, logits in fp32 and under bf16 autocast (channels-first and channels-last):
   the largest differences in PM (``pm_adv``), CL-PM (``cl_pm``) and the normalized weights ω of
   MAIL-AT and CLIRAT (sigmoid, γ = 10, β = −0.5, batch normalization), eval- and train-mode forward
   (irat keeps the margin inputs in fp32 unless ``fast.amp_train``: this is what bf16 would move).
5. ``memory``: peak device memory (``torch.cuda.max_memory_allocated``) of one PGD-10 AT training
   step at batch 128 for ResNet-18 and WRN-34-10: fp32, the default fast path, and with amp_train.

The compile variant of 1. runs last (its warm-up compiles for a minute or more) and only with the
budget left. ``--device cpu --tiny`` is a dry run of every section on CPU in well under a minute
(width-8 ResNet, batches of 16, PGD-3, 2 epochs of 32 images, 20 test images under nat, pgd20 and
apgd-ce — add ``--attacks nat,pgd20,aa`` for the whole AutoAttack, ~40 s more, which needs at least
4 classes; compile only with ``--compile``; the CUDA-only items are recorded as skipped), which
``tests/test_gpu_check.py`` runs.

Preparing (here, in the repository root; both folders are git-ignored and travel with ``carry``)::

    python3 benchmarks/gpu_check.py --prepare --data /work/shared/data/cifar10-jpeg.tar.gz

which does: ``python3 -m pip download --no-deps --only-binary=:all: -d .whl pyautoattack==0.2.0``
(a pure-Python wheel, ``pyautoattack-0.2.0-py3-none-any.whl``, so no ``--python-version`` or
platform flags are needed), drops the wheel's ``examples/`` folder (a 45 MB demo checkpoint that no
import needs: the full wheel is 42.4 MB, which with the CIFAR-10 tarball and the tree would not fit
the 64 MiB that may travel), copies the tarball to ``.tmp/cifar10-jpeg.tar.gz`` (19.4 MB) and
prints the size of what travels.

On the device machine (device tool ``run`` with ``carry: [".whl", ".tmp"]``, ``timeout_s`` 600)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --data .tmp/cifar10-jpeg.tar.gz --out $OUT

Dry run on CPU::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpu_check.py --device cpu --tiny --data DIR_OR_TAR --out /tmp/gc
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import warnings
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))  # the checkout's irat, installed or not

import torch  # noqa: E402

JSON_NAME, LOG_NAME = "gpu_check.json", "gpu_check.log"
PRESET = "cifar10-resnet18"
VARIANTS = {  # name -> fast.* overrides
    "fp32": ["fast.amp=false", "fast.channels_last=false"],
    "bf16": ["fast.amp=true", "fast.channels_last=false"],
    "bf16_channels_last": ["fast.amp=true", "fast.channels_last=true"],
    "bf16_train_channels_last": ["fast.amp=true", "fast.amp_train=true", "fast.channels_last=true"],
    "bf16_channels_last_compile": ["fast.amp=true", "fast.channels_last=true", "fast.compile=true"],
}
VARIANT_DOC = {
    "fp32": "no autocast, NCHW",
    "bf16": "fast.amp: bf16 autocast around the attack (the training step in fp32 unless fast.amp_train), NCHW",
    "bf16_channels_last": "fast.amp + channels_last: irat's default on CUDA",
    "bf16_train_channels_last": "fast.amp + fast.amp_train (the training forward/backward in bf16 too) + channels_last",
    "bf16_channels_last_compile": "irat's default on CUDA + fast.compile (torch.compile of the attack and training model)",
}
COMPILE_VARIANT = "bf16_channels_last_compile"


def variants() -> dict[str, list[str]]:
    """The variants this checkout's FastConfig can express (fast.amp_train is recent)."""
    from dataclasses import fields

    from irat.config import FastConfig

    keys = {f.name for f in fields(FastConfig)}
    return {n: v for n, v in VARIANTS.items() if all(o.split("=")[0].split(".")[1] in keys for o in v)}
BENCH_METHODS = ("mail-at", "clirat", "gairat")
PYAUTOATTACK = "pyautoattack==0.2.0"


class SectionTimeout(BaseException):
    """Raised by the section's alarm. A BaseException, so `irat.cli.main`'s `except Exception` lets it through."""


# ---------------------------------------------------------------------------------------------
# sizes


@dataclass
class Plan:
    """Every size the check uses; `full` on the GPU, `tiny` for the CPU dry run."""

    batch_size: int = 128
    width: int | None = None  # model.width (None: ResNet-18's 64)
    attack_steps: int = 10
    throughput_images: int = 2048  # per epoch (a multiple of the batch: no recompile for a short batch)
    throughput_epochs: int = 2  # timed, after one warm-up epoch
    bench_repeats: int = 7
    bench_batches: int = 2
    bench_epoch_images: int = 1024
    bench_epoch_repeats: int = 2
    train_images: int = 10000
    train_epochs: int = 3
    reweight_from: int = 2
    val_size: int = 1000
    eval_examples: int = 500
    attacks: str = "nat,pgd20,aa"
    parity_batches: int = 4
    memory_models: tuple[tuple[str, int | None], ...] = (("resnet18", None), ("wrn-34-10", None))
    # seconds a section needs at least (skipped below that) and at most (its time box)
    need: tuple[tuple[str, float, float], ...] = (
        ("data", 20, 180), ("throughput", 40, 150), ("bench", 40, 150), ("train_eval", 60, 300),
        ("bf16_parity", 10, 60), ("memory", 20, 90), ("compile", 90, 240))

    @classmethod
    def tiny(cls) -> Plan:
        return cls(batch_size=16, width=8, attack_steps=3, throughput_images=32, throughput_epochs=1,
                   bench_repeats=1, bench_batches=1, bench_epoch_images=32, bench_epoch_repeats=1,
                   train_images=32, train_epochs=2, reweight_from=2, val_size=8, eval_examples=20,
                   attacks="nat,pgd20,apgd-ce", parity_batches=2, memory_models=(("resnet18", 8), ("wrn-34-10", 1)),
                   need=(("data", 1, 60), ("throughput", 2, 60), ("bench", 2, 60), ("train_eval", 3, 120),
                         ("bf16_parity", 1, 30), ("memory", 1, 60), ("compile", 5, 120)))

    def need_s(self, name: str) -> float:
        return dict((n, a) for n, a, _ in self.need)[name]

    def cap_s(self, name: str) -> float:
        return dict((n, b) for n, _, b in self.need)[name]

    def model_sets(self) -> list[str]:
        return [f"batch_size={self.batch_size}", f"attack.steps={self.attack_steps}",
                *([f"model.width={self.width}"] if self.width is not None else [])]


# ---------------------------------------------------------------------------------------------
# small helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _error(e: BaseException) -> dict[str, Any]:
    return {"status": "error", "error": f"{type(e).__name__}: {' '.join(str(e).split())}",
            "traceback": traceback.format_exc()}


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise SectionTimeout in the main thread after `seconds` (SIGALRM; no limit where unavailable)."""
    if (seconds is None or not math.isfinite(seconds) or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise SectionTimeout(f"ran past its time box of {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class _Tee:
    """A text stream that writes to the original stream and to the log file."""

    def __init__(self, stream: Any, log: Any):
        self.stream, self.log = stream, log

    def write(self, s: str) -> int:
        self.stream.write(s)
        try:
            self.log.write(s)
        except ValueError:  # log closed
            pass
        return len(s)

    def flush(self) -> None:
        self.stream.flush()
        with contextlib.suppress(ValueError):
            self.log.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, (Path, torch.device, torch.dtype)):
        return str(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return repr(o)


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)


def irat_cli(argv: list[str]) -> tuple[int, str]:
    """`irat.cli.main(argv)`: its exit code and its last error line (its stderr still reaches the log)."""
    import io

    import irat.cli

    buf = io.StringIO()
    with contextlib.redirect_stderr(_Tee(sys.stderr, buf)):
        rc = irat.cli.main(argv)
    errors = [ln for ln in buf.getvalue().splitlines() if ln.startswith("irat:")]
    return rc, (errors[-1] if errors else "")


def timed_cli(rec: dict[str, Any], what: str, argv: list[str]) -> None:
    """Run `irat <argv>` and record `<what>_argv`, `<what>_s` and `<what>_rc` in `rec`; raise on failure."""
    rec[f"{what}_argv"] = argv
    t = time.perf_counter()
    rc, err = irat_cli(argv)
    rec[f"{what}_s"] = round(time.perf_counter() - t, 3)
    rec[f"{what}_rc"] = rc
    if rc != 0:
        raise RuntimeError(f"irat {what} exited {rc}: {err or 'see the log'}")


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().mean()) if a.numel() else 0.0


# ---------------------------------------------------------------------------------------------
# data


def find_image_folder(root: Path) -> Path:
    """The folder holding train/ and test/ at or below `root` (the tarball may have a top folder)."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root
    for sub in sorted(p for p in root.rglob("train") if p.is_dir()):
        if (sub.parent / "test").is_dir():
            return sub.parent
    raise FileNotFoundError(f"no train/ and test/ folders under {root}")


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def balanced_folder(src: Path, dst: Path, per_class: int) -> dict[str, Any]:
    """`dst/train` → `src/train` (a link) and `dst/test/<class>/` linking the first `per_class` images of
    each class: irat orders an image folder's test split by class, so `irat eval --n-examples N` takes
    the first N in that order; with this test split the first N = K · per_class are class-balanced."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "train").symlink_to((src / "train").resolve(), target_is_directory=True)
    counts = {}
    for cdir in sorted(p for p in (src / "test").iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in cdir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
        (dst / "test" / cdir.name).mkdir(parents=True)
        for f in files[:per_class]:
            (dst / "test" / cdir.name / f.name).symlink_to(f.resolve())
        counts[cdir.name] = min(per_class, len(files))
    return {"test_per_class": counts,
            "test_selection": f"the first {per_class} images (sorted names) of each class of {src}/test, so that "
                              "the evaluation's first N examples are class-balanced (irat orders an image folder's "
                              "test split by class)"}


def prepare_data(path: Path, work: Path) -> tuple[Path, dict[str, Any]]:
    """An image folder from a .tar.gz (extracted under `work`) or an extracted folder."""
    info: dict[str, Any] = {"source": str(path)}
    if path.is_dir():
        folder = find_image_folder(path)
    elif path.is_file() and (path.name.endswith((".tar.gz", ".tgz", ".tar"))):
        info["source_bytes"] = path.stat().st_size
        dest = work / "data"
        dest.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        with tarfile.open(path) as tf:
            if sys.version_info >= (3, 12) or hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # pragma: no cover - old Pythons
                tf.extractall(dest)  # noqa: S202 - our own tarball
        info["extract_s"] = round(time.perf_counter() - t, 3)
        folder = find_image_folder(dest)
    else:
        raise FileNotFoundError(f"--data: {path} is neither a folder nor a .tar.gz")
    info["folder"] = str(folder)
    return folder, info


# ---------------------------------------------------------------------------------------------
# the check


class GpuCheck:
    def __init__(self, args: argparse.Namespace, plan: Plan, out: Path, work: Path):
        self.args, self.plan, self.out, self.work = args, plan, out, work
        self.t0 = time.perf_counter()
        self.json_path = out / JSON_NAME
        dev = args.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(dev)
        self.cuda = self.device.type == "cuda"
        self.folder: Path | None = None
        self.checkpoint: Path | None = None
        self.result: dict[str, Any] = {
            "script": "benchmarks/gpu_check.py",
            "command": " ".join([*(f"{k}={shlex.quote(os.environ[k])}" for k in
                                   ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONPATH") if k in os.environ),
                                 shlex.join([Path(sys.executable).name, *sys.argv])]),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "budget_s": args.budget_s,
            "tiny": bool(args.tiny),
            "env": self._env(),
            "plan": asdict(plan),
            "sections": {},
            "problems": [],
        }

    # ---- bookkeeping ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def remaining(self) -> float:
        return self.args.budget_s - self.elapsed()

    def log(self, msg: str) -> None:
        print(f"[gpu_check {self.elapsed():6.1f}s] {msg}", flush=True)

    def save(self) -> None:
        self.result["wall_s"] = round(self.elapsed(), 3)
        write_json(self.json_path, self.result)

    def _env(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "python": platform.python_version(),
            "python_executable": sys.executable,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda_available": torch.cuda.is_available(),
            "device": str(self.device),
            "device_name": None,
            "irat_source": None,
            "git_commit": None,
        }
        if self.cuda:
            p = torch.cuda.get_device_properties(self.device)
            env["device_name"] = torch.cuda.get_device_name(self.device)
            env["device_memory_bytes"] = int(p.total_memory)
            env["device_capability"] = list(torch.cuda.get_device_capability(self.device))
            env["tf32"] = {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                           "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                           "float32_matmul_precision": torch.get_float32_matmul_precision()}
        else:
            try:
                from irat.bench.run import _device_name

                env["device_name"] = _device_name(self.device)
            except Exception:  # noqa: BLE001 - only a label
                env["device_name"] = platform.processor() or platform.machine()
        try:
            import irat

            env["irat_source"] = str(Path(irat.__file__).resolve().parent)
            env["irat_version"] = irat.__version__
        except Exception as e:  # noqa: BLE001 - recorded, and every section will say it too
            env["irat_import_error"] = f"{type(e).__name__}: {e}"
        try:
            env["git_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                               text=True, timeout=10).stdout.strip() or None
        except Exception:  # noqa: BLE001 - no git there
            pass
        env["pyautoattack"] = self._pyautoattack()
        return env

    @staticmethod
    def _pyautoattack() -> dict[str, Any]:
        if importlib.util.find_spec("pyautoattack") is None:
            return {"available": False, "error": "pyautoattack is not importable: install its wheel "
                    "(pip install --no-index --no-deps --target /tmp/site .whl/*.whl; PYTHONPATH=/tmp/site)"}
        try:
            import pyautoattack

            return {"available": True, "version": getattr(pyautoattack, "__version__", None),
                    "path": str(Path(pyautoattack.__file__).resolve().parent)}
        except Exception as e:  # noqa: BLE001
            return {"available": False, "error": f"import failed: {type(e).__name__}: {e}"}

    def section(self, name: str, fn: Callable[[dict[str, Any]], None], *, key: str | None = None) -> None:
        """Run fn(record) in a time box; record status, seconds and any error under sections[key or name]."""
        key = key or name
        need, cap = self.plan.need_s(name), self.plan.cap_s(name)
        rec: dict[str, Any] = self.result["sections"].setdefault(key, {})
        left = self.remaining()
        if self.args.sections and name not in self.args.sections:
            rec.update(status="skipped", reason="not in --sections")
            self.save()
            return
        if left < need:
            rec.update(status="skipped", reason=f"budget: {left:.0f} s left of --budget-s {self.args.budget_s:.0f}, "
                                                 f"the section needs about {need:.0f} s")
            self.log(f"{name}: skipped ({rec['reason']})")
            self.save()
            return
        box = min(cap, left - 2.0)
        self.log(f"{name}: start (time box {box:.0f} s, {left:.0f} s of the budget left)")
        t = time.perf_counter()
        try:
            with time_limit(box):
                fn(rec)
            rec.setdefault("status", "ok")
        except SectionTimeout as e:
            rec.update(status="error", error=f"SectionTimeout: {e}", traceback=traceback.format_exc())
        except Exception as e:  # noqa: BLE001 - every section on its own
            rec.update(_error(e))
        rec["seconds"] = round(time.perf_counter() - t, 3)
        if rec.get("status") == "error":
            self.result["problems"].append(f"{key}: {rec['error']}")
            self.log(f"{name}: ERROR {rec['error']}")
        else:
            self.log(f"{name}: {rec['status']} in {rec['seconds']:.1f} s")
        _free(self.device)
        self.save()

    # ---- irat pieces ------------------------------------------------------------------------------
    def data_sets(self) -> list[str]:
        assert self.folder is not None
        return [f"data.name=imagefolder:{self.folder}"]

    def trainer(self, name: str, method: str = "at", extra: list[str] | tuple[str, ...] = (),
                n_train: int | None = None):
        from irat.config import build_config
        from irat.training import Trainer

        overrides = [*self.data_sets(), *self.plan.model_sets(), f"device={self.device}",
                     f"data.train_subset={n_train or self.plan.throughput_images}", "data.val_size=0",
                     "eval_every=0", "checkpoint_every_steps=0", "epochs=100", "reweight.from_epoch=1", *extra]
        cfg = build_config(f"{PRESET}-{method}", None, overrides)
        return Trainer(cfg, self.work / "trainers" / name, overwrite=True, progress=False)

    # ---- 0. data ----------------------------------------------------------------------------------
    def run_data(self, rec: dict[str, Any]) -> None:
        from irat.data.datasets import load_dataset

        src, info = prepare_data(Path(self.args.data), self.work)
        rec.update(info)
        n_classes = sum(1 for p in (src / "test").iterdir() if p.is_dir() and not p.name.startswith("."))
        per_class = max(self.plan.eval_examples // max(n_classes, 1), 1)
        folder = self.work / "check-data"
        rec.update(balanced_folder(src, folder, per_class), folder=str(folder))
        self.plan.eval_examples = self.result["plan"]["eval_examples"] = sum(rec["test_per_class"].values())
        t = time.perf_counter()
        ds = load_dataset(f"imagefolder:{folder}")  # decodes once and writes the folder's cache
        rec["decode_s"] = round(time.perf_counter() - t, 3)
        rec.update(n_train=int(ds.x_train.shape[0]), n_test=int(ds.x_test.shape[0]), classes=list(ds.classes),
                   image_shape=list(ds.x_train.shape[1:]))
        self.folder = folder

    # ---- 1. throughput ------------------------------------------------------------------------
    def run_variant(self, name: str, rec: dict[str, Any]) -> None:
        from irat.bench import irat_epoch

        v: dict[str, Any] = rec.setdefault("variants", {}).setdefault(name, {})
        v.pop("reason", None)  # the compile variant's "pending" note
        v.update(fast=VARIANTS[name], what=VARIANT_DOC[name])
        t = time.perf_counter()
        try:
            tr = self.trainer(f"throughput-{name}", extra=VARIANTS[name])
            v.update(amp=bool(tr.amp), amp_train=bool(getattr(tr.cfg.fast, "amp_train", False)),
                     channels_last=bool(tr.channels_last), compile=bool(tr.cfg.fast.compile))
            n, secs = irat_epoch(tr, 1)
            v["warmup_s"] = round(secs, 3)
            ips, step_s = [], []
            for e in range(2, 2 + self.plan.throughput_epochs):
                n, secs = irat_epoch(tr, e)
                ips.append(n / secs)
                step_s.append(secs / math.ceil(n / self.plan.batch_size))
            v.update(status="ok", images_per_s=statistics.median(ips), images_per_s_epochs=ips,
                     step_ms=1e3 * statistics.median(step_s), epoch_images=n)
            if name == "bf16_channels_last":
                try:
                    self.epoch_syncs(tr, rec)
                except Exception as e:  # noqa: BLE001 - the throughput numbers stand
                    rec.setdefault("host_sync_epoch", {}).update(_error(e))
                    self.result["problems"].append(f"throughput.host_sync_epoch: {rec['host_sync_epoch']['error']}")
            del tr
        except SectionTimeout:
            v.update(status="error", error="SectionTimeout: the section's time box ended during this variant")
            raise
        except Exception as e:  # noqa: BLE001 - the other variants still run
            v.update(_error(e))
            self.result["problems"].append(f"throughput.{name}: {v['error']}")
        finally:
            v["seconds"] = round(time.perf_counter() - t, 3)
            _free(self.device)
        fp = rec["variants"].get("fp32", {}).get("images_per_s")
        if fp and v.get("images_per_s"):
            v["speedup_vs_fp32"] = v["images_per_s"] / fp

    def run_throughput(self, rec: dict[str, Any]) -> None:
        rec.update(batch_size=self.plan.batch_size, model="resnet18", width=self.plan.width or 64,
                   attack=f"PGD-{self.plan.attack_steps}", epoch_images=self.plan.throughput_images,
                   timed_epochs=self.plan.throughput_epochs,
                   note="images/s of irat.bench.irat_epoch (seeded batches + Trainer.step + finite checks), "
                        "after one warm-up epoch; CUDA synchronized around each epoch. fp32 is irat's path without "
                        "autocast: cuDNN convolutions still use TF32 where env.tf32 says cudnn.allow_tf32")
        for name in variants():
            if name == COMPILE_VARIANT:
                continue
            self.log(f"throughput: {name}")
            self.run_variant(name, rec)
        rec.setdefault("variants", {}).setdefault(COMPILE_VARIANT, {"status": "pending",
                                                                   "reason": "runs last, with the budget left"})
        bad = [n for n, v in rec["variants"].items() if v.get("status") == "error"]
        if bad:
            rec.update(status="error", error=f"variant(s) failed: {', '.join(bad)}")

    def run_compile(self, rec: dict[str, Any]) -> None:
        """The compile variant, stored in the throughput section."""
        thr = self.result["sections"].setdefault("throughput", {})
        self.log(f"throughput: {COMPILE_VARIANT}")
        self.run_variant(COMPILE_VARIANT, thr)
        v = thr["variants"][COMPILE_VARIANT]
        rec.update(status=v.get("status", "error"), stored_in=f"sections.throughput.variants.{COMPILE_VARIANT}")
        if v.get("status") == "error":
            rec["error"] = v.get("error")
            self.result["problems"].remove(f"throughput.{COMPILE_VARIANT}: {v['error']}")

    def epoch_syncs(self, tr: Any, rec: dict[str, Any]) -> None:
        """Host-device syncs in one whole epoch of the loop (steps, batches, finite checks)."""
        from irat.bench import count_sync_ops, irat_epoch

        steps = math.ceil(self.plan.throughput_images / self.plan.batch_size)
        s: dict[str, Any] = rec.setdefault("host_sync_epoch", {})
        s["steps"] = steps
        s["expected"] = ("only the trainer's finite check: every 25 steps and at the epoch's end "
                         "(int()/bool() of device values: aten._local_scalar_dense)")
        s["dispatch_ops"] = count_sync_ops(lambda: irat_epoch(tr, 90))
        if not self.cuda:
            s["cuda_sync_debug"] = {"status": "skipped", "reason": "CUDA only (torch.cuda.set_sync_debug_mode)"}
            return
        seen: dict[str, int] = {}
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                irat_epoch(tr, 91)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        for w in caught:
            k = f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0]}"
            seen[k] = seen.get(k, 0) + 1
        s["cuda_sync_debug"] = {"status": "ok", "warnings": seen, "count": sum(seen.values())}

    # ---- 2. irat bench ------------------------------------------------------------------------
    def run_bench(self, rec: dict[str, Any]) -> None:
        from irat.bench import BenchOptions, run_bench

        p = self.plan
        opts = BenchOptions(device=self.device.type, preset=PRESET, model="resnet18", batch_size=p.batch_size,
                            methods=",".join(BENCH_METHODS), repeats=p.bench_repeats, batches=p.bench_batches,
                            epoch_images=p.bench_epoch_images, epoch_repeats=p.bench_epoch_repeats,
                            no_variants=True, set=[*self.data_sets(), *p.model_sets()[1:]])
        rec["options"] = vars(opts)
        out = run_bench(opts, ["bench (benchmarks/gpu_check.py)"], log=self.log)
        rec["floor_ratio"] = out["floor_ratio"]
        rec["overhead_vs_at"] = {m: out["overhead"][m] for m in BENCH_METHODS}
        rec["overhead_vs_base"] = {m: out["overhead_vs_base"][m] for m in BENCH_METHODS}
        rec["step_ms"] = {k: 1e3 * v for k, v in out["median_s"].items()}
        rec["images_per_s"] = out["images_per_s"]
        rec["reweight_ops_s"] = {m: out["reweight_ops_s"][m] for m in BENCH_METHODS}
        rec["host_sync"] = {"dispatch_ops": out["host_sync_ops"],
                            "none": all(not v for v in out["host_sync_ops"].values())}
        if self.cuda:
            rec["host_sync"]["cuda_sync_debug"] = {"status": "ok", "warnings": out.get("cuda_sync_warnings")}
            rec["peak_memory_bytes"] = out.get("peak_memory_bytes")
        else:
            rec["host_sync"]["cuda_sync_debug"] = {"status": "skipped",
                                                   "reason": "CUDA only (torch.cuda.set_sync_debug_mode)"}
        rec["meets_targets"] = out.get("meets_targets")
        rec["fast"] = out.get("fast")
        rec["bench"] = {k: v for k, v in out.items() if k not in ("rounds_s",)}

    # ---- 3. training run and evaluation -------------------------------------------------------
    def run_train_eval(self, rec: dict[str, Any]) -> None:
        p = self.plan
        run = self.work / "train-mail-at"
        sets = [*self.data_sets(), *p.model_sets()[1:], f"data.train_subset={p.train_images}",
                f"data.val_size={p.val_size}", f"epochs={p.train_epochs}", f"reweight.from_epoch={p.reweight_from}",
                "seed=0"]
        if p.batch_size != 128:
            sets.append(f"batch_size={p.batch_size}")
        argv = ["train", "--preset", f"{PRESET}-mail-at", "--out", str(run), "--overwrite", "--quiet",
                "--device", self.device.type, "--set", *sets]
        timed_cli(rec, "train", argv)
        ckpt = run / "checkpoints" / "last.pt"
        self.checkpoint = ckpt
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        rec["epochs"] = [{"epoch": m["epoch"], "seconds": m["seconds"], "images_per_s": m["images_per_s"],
                          "loss": m["loss"], "train_adv_acc": m["train_acc"], "reweight_active": m["reweight_active"],
                          "val": m.get("val"), "weights": {k: m["weights"][k] for k in ("mean", "std", "min", "max",
                                                                                         "ess")}}
                         for m in metrics]
        attacks = [a for a in p.attacks.split(",") if a]
        aa_like = [a for a in attacks if a in ("aa", "apgd-ce")]
        if aa_like and not self.result["env"]["pyautoattack"]["available"]:
            rec["attacks_skipped"] = {a: self.result["env"]["pyautoattack"]["error"] for a in aa_like}
            self.result["problems"].append(f"train_eval: {','.join(aa_like)} not run: pyautoattack missing")
            attacks = [a for a in attacks if a not in aa_like]
        elif "aa" in attacks and self.remaining() < 60 + (0 if self.args.tiny else 60):
            rec["attacks_skipped"] = {"aa": f"budget: {self.remaining():.0f} s left"}
            attacks.remove("aa")
        out_json = run / "eval.json"
        argv = ["eval", str(ckpt), "--attacks", ",".join(attacks), "--n-examples", str(p.eval_examples),
                "--device", self.device.type, "--out", str(out_json), "--quiet"]
        timed_cli(rec, "eval", argv)
        ev = json.loads(out_json.read_text())
        rec["accuracy"] = ev["accuracy"]
        rec["attack_seconds"] = {a: ev["attacks"][a].get("seconds") for a in ev.get("order", [])}
        rec["eval_n_examples"] = ev["data"]["n_examples"]
        rec["flags"] = {k: (v.get("flag") if isinstance(v, dict) else v) for k, v in ev.get("flags", {}).items()}
        rec["eval_report_seconds"] = ev.get("seconds")

    # ---- 4. bf16 against fp32 -------------------------------------------------------------------
    def run_parity(self, rec: dict[str, Any]) -> None:
        import irat
        from irat.attacks.pgd import pgd
        from irat.data.datasets import load_dataset
        from irat.margins import cl_pm, pm_adv
        from irat.weighting import normalize, sigmoid_weights

        p = self.plan
        dev = self.device
        if self.checkpoint is not None and self.checkpoint.is_file():
            model = irat.load_model(self.checkpoint, dev)
            rec["model"] = f"the train_eval checkpoint ({p.train_epochs} epochs of MAIL-AT)"
        else:
            tr = self.trainer("parity", extra=VARIANTS["fp32"])
            from irat.bench import irat_epoch

            irat_epoch(tr, 1)
            model = tr.model.eval()
            rec["model"] = f"a fresh ResNet-18 after one AT epoch of {p.throughput_images} images (no checkpoint)"
        model = model.float().to(memory_format=torch.contiguous_format).eval()
        assert self.folder is not None
        ds = load_dataset(f"imagefolder:{self.folder}")
        n = min(p.batch_size * p.parity_batches, ds.x_train.shape[0])
        pick = torch.randperm(ds.x_train.shape[0], generator=torch.Generator().manual_seed(0))[:n]
        x = ds.x_train[pick].to(dev).float().div_(255.0)
        y = ds.y_train[pick].to(dev)
        eps, alpha = 8 / 255, 2 / 255
        g = torch.Generator(device=dev).manual_seed(0)
        noise = torch.rand(x.shape, generator=g, device=dev).mul_(2).sub_(1)
        x_adv = pgd(model, x, y, eps, p.attack_steps, alpha, loss="ce", start="uniform", noise=noise).x_adv.detach()
        rec.update(examples=n, images="a seeded random selection of training images", batch_size=p.batch_size,
                   attack=f"fp32 PGD-{p.attack_steps}, eps 8/255, alpha 2/255",
                   weights="sigmoid(-10 (m + 0.5)), normalized per batch of batch_size (Σω = M)")
        cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x_cl = x_adv.contiguous(memory_format=torch.channels_last)

        def logits(m: torch.nn.Module, xa: torch.Tensor, bf16: bool, train: bool) -> torch.Tensor:
            m = copy.deepcopy(m) if train else m  # train mode: BN batch statistics; running stats untouched
            m.train(train)
            outs = []
            ctx = torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with torch.no_grad(), ctx:
                for i in range(0, n, p.batch_size):
                    outs.append(m(xa[i:i + p.batch_size]).float())  # the trainer's `.float()` of the logits
            return torch.cat(outs)

        def derived(z: torch.Tensor) -> dict[str, torch.Tensor]:
            probs = torch.softmax(z, dim=1)
            pm, cl = pm_adv(probs, y), cl_pm(probs, y)
            w_pm, w_cl = sigmoid_weights(pm, 10.0, -0.5), sigmoid_weights(cl, 10.0, -0.5)
            om_pm = torch.cat([normalize(w, "batch") for w in w_pm.split(p.batch_size)])
            om_cl = torch.cat([normalize(w, "batch") for w in w_cl.split(p.batch_size)])
            return {"logits": z, "probs": probs, "pm_adv": pm, "cl_pm": cl, "w_mail_at": w_pm, "w_clirat": w_cl,
                    "omega_mail_at": om_pm, "omega_clirat": om_cl, "pred": z.argmax(1)}

        for mode in ("eval", "train"):
            ref = derived(logits(model, x_adv, False, mode == "train"))
            res: dict[str, Any] = {"fp32_adv_accuracy": 100.0 * float((ref["pred"] == y).float().mean()),
                                   "fp32_pm_adv_quantiles": [float(q) for q in torch.quantile(
                                       ref["pm_adv"], torch.tensor([0.05, 0.5, 0.95], device=dev))]}
            for tag, (m, xa) in {"bf16": (model, x_adv), "bf16_channels_last": (cl_model, x_cl)}.items():
                d = derived(logits(m, xa, True, mode == "train"))
                res[tag] = {
                    "max_abs": {k: _max_abs(d[k], ref[k]) for k in ("logits", "probs", "pm_adv", "cl_pm", "w_mail_at",
                                                                    "w_clirat", "omega_mail_at", "omega_clirat")},
                    "mean_abs": {k: _mean_abs(d[k], ref[k]) for k in ("pm_adv", "cl_pm", "omega_mail_at",
                                                                      "omega_clirat")},
                    "prediction_flips": int((d["pred"] != ref["pred"]).sum()),
                }
            rec[f"{mode}_mode"] = res
        b = rec["train_mode"]["bf16_channels_last"]["max_abs"]
        rec["headline"] = {"forward": "train mode, bf16 + channels_last vs fp32: the shift fast.amp_train=true "
                                      "would give the probabilities that feed PM/CL-PM (irat's default keeps "
                                      "that forward in fp32)",
                           **{k: b[k] for k in ("pm_adv", "cl_pm", "omega_mail_at", "omega_clirat")}}

    # ---- 5. peak memory -------------------------------------------------------------------------
    def run_memory(self, rec: dict[str, Any]) -> None:
        from irat.data.loader import epoch_batches
        from irat.objectives import OBJECTIVES
        from irat.training import EpochStats

        p = self.plan
        if not self.cuda:
            rec.update(status="skipped", reason="CUDA only (torch.cuda.max_memory_allocated); the steps below ran "
                                                "on CPU only to exercise the code")
        rec["models"] = {}
        for model, width in p.memory_models:
            for variant in [v for v in ("fp32", "bf16_channels_last", "bf16_train_channels_last") if v in variants()]:
                key = f"{model}:{variant}"
                r: dict[str, Any] = {}
                rec["models"][key] = r
                t = time.perf_counter()
                try:
                    extra = [f"model.name={model}", *VARIANTS[variant]]
                    extra.append(f"model.width={width}" if width is not None else "model.width=null")
                    tr = self.trainer(f"memory-{model}-{variant}", extra=extra, n_train=2 * p.batch_size)
                    cfg = tr.cfg
                    it = epoch_batches(tr.splits.x_train, tr.splits.y_train, batch_size=cfg.batch_size, seed=0,
                                       epoch=1, device=tr.device, augment=tr.augment,
                                       noise_kind=cfg.attack.start or OBJECTIVES[cfg.objective].attack_start,
                                       channels_last=tr.channels_last)
                    b0, b1 = next(it), next(it)
                    stats = EpochStats(tr.device)
                    tr.step(b0.x, b0.y, b0.noise, b0.global_size, 1, stats)  # warm-up (cuDNN autotuning)
                    _sync(tr.device)
                    if self.cuda:
                        torch.cuda.reset_peak_memory_stats(tr.device)
                        r["allocated_before_bytes"] = int(torch.cuda.memory_allocated(tr.device))
                    t1 = time.perf_counter()
                    tr.step(b1.x, b1.y, b1.noise, b1.global_size, 1, stats)
                    _sync(tr.device)
                    r["step_s"] = round(time.perf_counter() - t1, 4)
                    r["parameters"] = sum(q.numel() for q in tr.model.parameters())
                    if self.cuda:
                        r["peak_bytes"] = int(torch.cuda.max_memory_allocated(tr.device))
                        r["peak_gib"] = r["peak_bytes"] / 2**30
                        r["peak_minus_before_bytes"] = r["peak_bytes"] - r["allocated_before_bytes"]
                    r["status"] = "ok"
                    del tr, b0, b1, stats, it
                except SectionTimeout:
                    r.update(status="error", error="SectionTimeout: the time box ended during this step")
                    raise
                except Exception as e:  # noqa: BLE001
                    r.update(_error(e))
                    self.result["problems"].append(f"memory.{key}: {r['error']}")
                finally:
                    r["seconds"] = round(time.perf_counter() - t, 3)
                    _free(self.device)
        rec.update(batch_size=p.batch_size, attack=f"PGD-{p.attack_steps} AT, one Trainer.step after a warm-up step")
        bad = [k for k, v in rec["models"].items() if v.get("status") == "error"]
        if bad:
            rec.update(status="error", error=f"step(s) failed: {', '.join(bad)}")

    # ---- all --------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        e = self.result["env"]
        self.log(f"torch {e['torch']} on {e['device']} ({e['device_name']}); pyautoattack "
                 f"{'available' if e['pyautoattack']['available'] else 'MISSING'}; budget {self.args.budget_s:.0f} s")
        if not e["pyautoattack"]["available"]:
            self.result["problems"].append(f"env: {e['pyautoattack']['error']}")
        self.save()
        self.section("data", self.run_data)
        if self.folder is None:
            for name in ("throughput", "bench", "train_eval", "bf16_parity", "memory"):
                self.result["sections"][name] = {"status": "error", "error": "no data (see sections.data)"}
            self.result["problems"].append("no data: every section needs it")
        else:
            self.section("throughput", self.run_throughput)
            self.section("bench", self.run_bench)
            self.section("train_eval", self.run_train_eval)
            self.section("bf16_parity", self.run_parity)
            self.section("memory", self.run_memory)
            self.run_compile_last()
        self.result["summary"] = summarize(self.result)
        self.result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.save()
        return self.result

    def run_compile_last(self) -> None:
        thr = self.result["sections"].get("throughput", {})
        if "variants" not in thr:
            self.result["sections"]["compile"] = {"status": "skipped", "reason": "the throughput section did not run"}
            return
        want = self.args.compile if self.args.compile is not None else (self.cuda and not self.args.tiny)
        if not want:
            thr["variants"][COMPILE_VARIANT] = {
                "status": "skipped", "reason": "torch.compile runs only on CUDA unless --compile is given"
                if not self.cuda else "--no-compile"}
            self.result["sections"]["compile"] = {"status": "skipped", "reason": thr["variants"][COMPILE_VARIANT]["reason"]}
            self.save()
            return
        self.section("compile", self.run_compile)
        v = thr["variants"].get(COMPILE_VARIANT, {})
        if v.get("status") == "pending":
            thr["variants"][COMPILE_VARIANT] = {"status": "skipped",
                                                "reason": self.result["sections"]["compile"].get("reason", "")}
            self.save()


# ---------------------------------------------------------------------------------------------
# summary


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    s = r["sections"]
    out: dict[str, Any] = {"device": r["env"].get("device_name"), "torch": r["env"].get("torch"),
                           "status": {k: v.get("status") for k, v in s.items()}}
    v = s.get("throughput", {}).get("variants", {})
    out["images_per_s"] = {k: x.get("images_per_s") for k, x in v.items()}
    out["speedup_vs_fp32"] = {k: x.get("speedup_vs_fp32") for k, x in v.items() if k != "fp32"}
    b = s.get("bench", {})
    out["floor_ratio"] = b.get("floor_ratio")
    out["overhead_vs_at"] = b.get("overhead_vs_at")
    out["host_sync_none"] = b.get("host_sync", {}).get("none")
    t = s.get("train_eval", {})
    out["accuracy"] = t.get("accuracy")
    out["train_s"], out["eval_s"] = t.get("train_s"), t.get("eval_s")
    out["bf16_max_abs"] = s.get("bf16_parity", {}).get("headline")
    out["peak_gib"] = {k: x.get("peak_gib") for k, x in s.get("memory", {}).get("models", {}).items()}
    return out


def format_summary(r: dict[str, Any]) -> str:
    s, m = r["sections"], r["summary"]

    def f(x: Any, fmt: str = ".3f") -> str:
        return format(x, fmt) if isinstance(x, (int, float)) else str(x)
    lines = [f"gpu_check: {m['device']} (torch {m['torch']}), {r['wall_s']:.0f} s of --budget-s {r['budget_s']:.0f}",
             "  sections: " + ", ".join(f"{k} {v}" for k, v in m["status"].items())]
    if m["images_per_s"]:
        lines.append("  images/s: " + ", ".join(f"{k} {f(v, '.0f')}" for k, v in m["images_per_s"].items())
                     + "  (speedup vs fp32: " + ", ".join(f"{k} {f(v, '.2f')}" for k, v in m["speedup_vs_fp32"].items())
                     + ")")
    if m["floor_ratio"] is not None:
        lines.append(f"  floor ratio {f(m['floor_ratio'])}; overhead vs AT: "
                     + ", ".join(f"{k} {f(v)}" for k, v in (m["overhead_vs_at"] or {}).items())
                     + f"; no host-sync ops per step: {m['host_sync_none']}")
    if m["accuracy"]:
        lines.append(f"  train {f(m['train_s'], '.0f')} s, eval {f(m['eval_s'], '.0f')} s: "
                     + ", ".join(f"{k} {f(v, '.2f')}%" for k, v in m["accuracy"].items()))
    if m["bf16_max_abs"]:
        lines.append("  bf16 vs fp32 max |Δ|: " + ", ".join(f"{k} {f(v, '.2e')}" for k, v in m["bf16_max_abs"].items()
                                                             if k != "forward"))
    if any(v is not None for v in m["peak_gib"].values()):
        lines.append("  peak GiB: " + ", ".join(f"{k} {f(v, '.2f')}" for k, v in m["peak_gib"].items()))
    for p in r["problems"]:
        lines.append(f"  PROBLEM {p}")
    skipped = {k: v.get("reason") for k, v in s.items() if v.get("status") == "skipped"}
    for k, why in skipped.items():
        lines.append(f"  skipped {k}: {why}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# --prepare: the wheel and the data set that travel to the device machine


def slim_wheel(path: Path, drop: tuple[str, ...] = ("/examples/",)) -> int:
    """Rewrite a wheel without the entries whose path contains one of `drop` (RECORD updated): bytes saved."""
    before = path.stat().st_size
    tmp = path.with_name(path.name + ".slim")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
        names = [i for i in zin.infolist() if not any(d in "/" + i.filename for d in drop)]
        if len(names) == len(zin.infolist()):
            tmp.unlink(missing_ok=True)
            return 0
        for info in names:
            data = zin.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                kept = [ln for ln in data.decode().splitlines()
                        if ln and not any(d in "/" + ln.split(",", 1)[0] for d in drop)]
                data = ("\n".join(kept) + "\n").encode()
            zout.writestr(info, data)
    os.replace(tmp, path)
    return before - path.stat().st_size


def prepare(args: argparse.Namespace) -> int:
    whl, tmpdir = REPO / ".whl", REPO / ".tmp"
    whl.mkdir(exist_ok=True)
    tmpdir.mkdir(exist_ok=True)
    if not list(whl.glob("pyautoattack-*.whl")):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(whl), PYAUTOATTACK]
        print("$", shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    for w in sorted(whl.glob("*.whl")):
        saved = slim_wheel(w)
        print(f"{w.name}: {w.stat().st_size / 1e6:.2f} MB" + (f" (examples/ dropped: -{saved / 1e6:.1f} MB)"
                                                              if saved else ""))
    if args.data and Path(args.data).is_file():
        dest = tmpdir / Path(args.data).name
        if not dest.exists() or dest.stat().st_size != Path(args.data).stat().st_size:
            shutil.copyfile(args.data, dest)
        print(f"{dest.relative_to(REPO)}: {dest.stat().st_size / 1e6:.2f} MB")
    try:
        tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                                  "--exclude-standard"], capture_output=True, check=True).stdout.split(b"\0")
        tree = sum((REPO / f.decode()).stat().st_size for f in tracked if f and (REPO / f.decode()).is_file())
    except Exception:  # noqa: BLE001
        tree = 0
    carried = sum(f.stat().st_size for d in (whl, tmpdir) for f in d.rglob("*") if f.is_file())
    total = tree + carried
    print(f"travels: tree {tree / 2**20:.1f} MiB + carry (.whl, .tmp) {carried / 2**20:.1f} MiB = "
          f"{total / 2**20:.1f} MiB of 64 MiB" + ("" if total < 64 * 2**20 else "  -- TOO LARGE"))
    return 0 if total < 64 * 2**20 else 1


# ---------------------------------------------------------------------------------------------
# CLI


def _scratch_parent() -> str | None:
    """/dev/shm when it has room (60,000 small JPEGs extract much faster to memory), else the default temp."""
    try:
        if shutil.disk_usage("/dev/shm").free > 4 * 2**30:
            return "/dev/shm"
    except OSError:
        pass
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="CIFAR-10 as a .tar.gz of train/<class>/*.jpg, test/<class>/*.jpg, or that folder")
    p.add_argument("--out", help="folder for gpu_check.json and gpu_check.log (e.g. $OUT)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget (default 480)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a CPU dry run of every section")
    p.add_argument("--compile", dest="compile", action="store_true", default=None,
                   help="run the torch.compile variant (default: on CUDA without --tiny)")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--sections", default=None,
                   help="comma list of data,throughput,bench,train_eval,bf16_parity,memory,compile (default: all)")
    p.add_argument("--attacks", default=None, help="irat eval attacks (default nat,pgd20,aa)")
    p.add_argument("--eval-examples", type=int, default=None)
    p.add_argument("--train-images", type=int, default=None)
    p.add_argument("--train-epochs", type=int, default=None)
    p.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed at the end)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (checkpoints, runs)")
    p.add_argument("--prepare", action="store_true",
                   help="here, before the device run: fetch and slim the pyautoattack wheel into .whl/, copy "
                        "--data into .tmp/, print the size of what travels")
    a = p.parse_args(argv)
    if a.sections:
        a.sections = {s.strip() for s in a.sections.split(",") if s.strip()} | {"data"}
    if not a.prepare and (not a.data or not a.out):
        p.error("--data and --out are required")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        return prepare(args)
    plan = Plan.tiny() if args.tiny else Plan()
    for attr, key in (("attacks", "attacks"), ("eval_examples", "eval_examples"), ("train_images", "train_images"),
                      ("train_epochs", "train_epochs")):
        if getattr(args, attr) is not None:
            setattr(plan, key, getattr(args, attr))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("IRAT_DEBUG", "1")  # irat.cli.main re-raises internal errors: their tracebacks reach the JSON
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="irat-gpu-check-", dir=_scratch_parent()))
    work.mkdir(parents=True, exist_ok=True)
    log_file = open(out / LOG_NAME, "w", buffering=1)  # noqa: SIM115 - closed below
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(sys.stdout, log_file), _Tee(sys.stderr, log_file)
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s", force=True)
    try:
        check = GpuCheck(args, plan, out, work)
        result = check.run()
        print(format_summary(result), flush=True)
        print(f"wrote {check.json_path} and {out / LOG_NAME}", flush=True)
    finally:
        sys.stdout, sys.stderr = old
        log_file.close()
        if not args.keep_work and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
