"""Fault injection: a run killed at any moment and resumed ends bitwise where the uninterrupted run ends.

Every run here is a real `python -m irat train` subprocess on CPU with one thread, on a tiny config
(512 Fashion-MNIST images, 8 steps per epoch, 3 epochs, a checkpoint every 2 steps, MAIL-AT weights
after a burn-in epoch, AWP on, an LR decay after epoch 2), so that optimizer momentum, the scheduler,
the AWP proxy, the mid-epoch statistics and the reweighting all have to survive a restart.

Proved here:
- SIGKILL at seeded random moments, then `--resume` until done: last.pt and best.pt hold weights
  bitwise equal to the uninterrupted run's, and metrics.jsonl has the same lines (timing fields aside);
- SIGKILL while a file is being written (the `IRAT_TEST_SLOW_WRITE` hook in irat.files holds the temp file
  open before its rename): the previous file stays loadable, the temp file is cleaned up on resume;
- after every kill last.pt loads and metrics.jsonl is a prefix of the checkpoint's metrics; each resume
  goes on from the checkpoint (not from scratch), and a kill before the first checkpoint is resumable;
- `checkpoint_every_steps` writes last.pt within an epoch;
- SIGTERM / SIGINT mid-epoch: exit 143 / 130 with a checkpoint, and resuming is exact.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from irat.checkpoint import load_checkpoint
from irat.files import SLOW_WRITE_ENV

FMNIST = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not FMNIST.is_dir(), reason="needs the system Fashion-MNIST copy")

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIG = """\
method: mail-at
epochs: 3
batch_size: 64
seed: 0
checkpoint_every_steps: 2
data: {name: fashion-mnist, train_subset: 512, val_size: 128}
model: {name: smallcnn}
attack: {eps: 0.1, steps: 2, step_size: 0.05}
optim: {lr: 0.05, momentum: 0.9, weight_decay: 5.0e-4, milestones: [2]}
reweight: {from_epoch: 2}
awp: {enabled: true, gamma: 0.01}
"""
STEPS_PER_EPOCH = 8
TIMING_FIELDS = ("seconds", "images_per_s")
TIMEOUT = 180.0  # one subprocess, generous for a loaded 2-core machine


def _env(slow_write: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""))
    env.pop(SLOW_WRITE_ENV, None)
    if slow_write:
        env[SLOW_WRITE_ENV] = slow_write
    return env


def launch(out: Path, config: Path, *, resume: bool = False, slow_write: str | None = None) -> subprocess.Popen:
    args = ["--resume"] if resume else ["--config", str(config)]
    cmd = [sys.executable, "-m", "irat", "train", *args, "--out", str(out), "--device", "cpu", "--quiet"]
    return subprocess.Popen(cmd, env=_env(slow_write), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("irat train did not finish in time")
    return proc.returncode, err


def wait_for(proc: subprocess.Popen, cond, what: str, poll: float = 0.01) -> bool:
    """Poll `cond()` until true (returns True) or the process exits first (returns False)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return bool(cond())
        time.sleep(poll)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def temps(out: Path, name: str = "") -> list[Path]:
    return sorted(p for p in out.rglob(f".{name}*.tmp"))


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    proc.send_signal(sig)
    return finish(proc)[0]


def check_after_kill(out: Path) -> tuple[int, int]:
    """What a kill at any moment must leave: a loadable last.pt, metrics.jsonl no further than it.

    Returns last.pt's position (completed epochs, steps into the next), (0, 0) if there is none."""
    last = out / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last) if last.exists() else None
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").exists() else []
    if ckpt is None:
        assert lines == []
    else:
        assert lines == ckpt["metrics"][:len(lines)]
    best = out / "checkpoints" / "best.pt"
    if best.exists():
        load_checkpoint(best)
    return (0, 0) if ckpt is None else (int(ckpt["epoch"]), int(ckpt["step_in_epoch"]))


def resume_until_done(out: Path, config: Path) -> None:
    proc = launch(out, config, resume=True)
    rc, err = finish(proc)
    assert rc == 0, err


def metrics_without_timing(out: Path) -> list[dict]:
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k not in TIMING_FIELDS} for m in lines]


def assert_same_run(out: Path, ref: Path) -> None:
    for name in ("last.pt", "best.pt"):
        got, want = load_checkpoint(out / "checkpoints" / name), load_checkpoint(ref / "checkpoints" / name)
        assert got["epoch"] == want["epoch"] and got["step_in_epoch"] == want["step_in_epoch"] == 0
        assert got["model"].keys() == want["model"].keys()
        for k, v in want["model"].items():
            assert torch.equal(got["model"][k], v), f"{name}: {k} differs from the uninterrupted run"
        assert got["model_sha256"] == want["model_sha256"]
    got_opt = load_checkpoint(out / "checkpoints" / "last.pt")["optimizer"]["state"]
    want_opt = load_checkpoint(ref / "checkpoints" / "last.pt")["optimizer"]["state"]
    for i, st in want_opt.items():
        assert torch.equal(got_opt[i]["momentum_buffer"], st["momentum_buffer"])
    assert metrics_without_timing(out) == metrics_without_timing(ref)
    assert (out / "config.yaml").read_text() == (ref / "config.yaml").read_text()
    assert temps(out) == [], "temporary files left behind"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, config: Path) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    rc, err = finish(launch(out, config))
    assert rc == 0, err
    lines = metrics_without_timing(out)
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    assert [m["reweight_active"] for m in lines] == [False, True, True]  # burn-in really ends
    assert lines[0]["lr"] > lines[2]["lr"]  # the LR decay really happens
    return out


def test_sigkill_at_random_moments_then_resume_is_exact(tmp_path: Path, config: Path, reference: Path) -> None:
    rng = random.Random(5)
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.pt"
    kills, positions = 0, []
    proc = launch(out, config)
    try:
        # first kill: right after the run wrote config.yaml, before any checkpoint; --resume restarts it
        assert wait_for(proc, (out / "config.yaml").exists, "config.yaml")
        if kill(proc) == -signal.SIGKILL:
            kills += 1
        check_after_kill(out)
        # then: after each resume made progress (a newer last.pt), kill at a random moment
        for i in range(3):
            before = mtime(last)
            proc = launch(out, config, resume=True)
            if not wait_for(proc, lambda: mtime(last) != before, "progress"):
                break  # the run finished before we could kill it
            if i == 0:  # checkpoint_every_steps=2 writes last.pt within the first epoch
                first = load_checkpoint(last)
                assert first["epoch"] == 0 and first["step_in_epoch"] in (2, 4, 6)
                assert first["epoch_state"] is not None
                assert {"irat_version", "config", "model_sha256", "format"} <= first.keys()
            time.sleep(rng.uniform(0.0, 1.5))
            rc = kill(proc)
            assert rc in (-signal.SIGKILL, 0)
            if rc == 0:
                break
            kills += 1
            positions.append(check_after_kill(out))
        else:
            resume_until_done(out, config)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert kills >= 3
    # each resume continued from the checkpoint rather than starting again (which would also end equal)
    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions
    assert_same_run(out, reference)


def test_sigkill_during_file_writes_then_resume_is_exact(tmp_path: Path, config: Path, reference: Path) -> None:
    """Kill while a temp file is written but not yet renamed: the old file survives, resume is exact."""
    out = tmp_path / "run"
    ckpts = out / "checkpoints"
    # each target: the file whose write (held open 1 s before its rename) the kill interrupts, in the order
    # the run writes them; the first kill lands before any checkpoint exists, so the first --resume starts
    # the run again from config.yaml; the third lands on the metrics.jsonl that --resume rewrites; the
    # fourth on the epoch-end last.pt, after best.pt of that epoch is already on disk
    targets = ["last.pt", "best.pt", "metrics.jsonl", "last.pt"]
    proc = None
    try:
        for i, name in enumerate(targets):
            proc = launch(out, config, resume=i > 0, slow_write=f"1.0:{name}")
            before = {p: mtime(p) for p in (ckpts / "last.pt", ckpts / "best.pt", out / "metrics.jsonl")}
            assert wait_for(proc, lambda: bool(temps(out, name)), f"a temp file of {name}")
            assert kill(proc) == -signal.SIGKILL
            assert temps(out, name), "the kill should land while the write is in flight"
            # the file being written is untouched: the old version (or none) survives
            target = (out if name == "metrics.jsonl" else ckpts) / name
            assert mtime(target) == before[target]
            check_after_kill(out)
        resume_until_done(out, config)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
    assert_same_run(out, reference)


def test_sigterm_and_sigint_checkpoint_exit_code_and_exact_resume(tmp_path: Path, config: Path,
                                                                  reference: Path) -> None:
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.pt"
    proc = launch(out, config)
    positions = []
    try:
        for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
            before = mtime(last)
            assert wait_for(proc, lambda: mtime(last) != before, "a checkpoint")
            proc.send_signal(sig)
            rc, err = finish(proc)
            assert rc == code, err
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("irat: interrupted") and str(last) in lines[0], err
            ckpt = load_checkpoint(last)
            assert 0 < ckpt["step_in_epoch"] < STEPS_PER_EPOCH, "the signal should stop the run mid-epoch"
            positions.append(check_after_kill(out))
            proc = launch(out, config, resume=True)
        rc, err = finish(proc)
        assert rc == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert positions[0] < positions[1]  # the resumed run went on from the SIGTERM checkpoint
    assert_same_run(out, reference)
