"""Data parallelism and the benchmark: what they must guarantee, never how fast they are.

- A 2-process gloo run under torchrun equals the 1-process run with the same global batch (final
  weights, weight statistics, sharded validation).
- The weight normalization sums over the global batch: a mocked 2-rank world through Trainer.step
  gives weights that sum to the global batch size and equal the 1-process weights.
- Trainer.step makes no host-device sync (no `.item()`, no tensor from host data) for any method.
- `irat bench --quick` writes JSON with the documented structure.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from irat import distributed as dist_utils
from irat.bench import QUICK_METHODS, count_sync_ops
from irat.config import build_config
from irat.data.loader import epoch_batches
from irat.training import EpochStats, Trainer

SRC = Path(__file__).resolve().parents[1] / "src"
# Few optimizer steps on purpose: the weights of the two runs differ by float rounding (~1e-8: the
# gradient is summed in another order), and PGD's sign(∇) turns a rounding difference at a pixel
# whose gradient is ~0 into a full ±α step; after enough steps such a flip happens (e.g. at the 4th
# step with 128 images) and the runs drift apart by ~1e-4 — chaos, not a DDP error.
TINY = ["data.train_subset=64", "data.val_size=64", "epochs=2", "reweight.from_epoch=1", "attack.steps=2",
        "batch_size=32", "model.dropout=0", "device=cpu"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _train_cmd(out: Path, overrides: list[str], preset: str = "fmnist-smallcnn-mail-at") -> list[str]:
    return ["-m", "irat", "train", "--preset", preset, "--out", str(out), "--quiet", "--set", *overrides]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _close(a, b, tol: float = 1e-5) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


@pytest.mark.parametrize("preset", ["fmnist-smallcnn-mail-at", "fmnist-smallcnn-awp-at"])
def test_two_process_gloo_run_matches_one_process(tmp_path, preset):
    """MAIL-AT: the weights are normalized over the global batch. AWP: the weight perturbation comes from
    the all-reduced proxy gradient, so every replica is perturbed the same and equals one process."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    r1 = subprocess.run([sys.executable, *_train_cmd(single, TINY, preset)], env=_env(), capture_output=True,
                        text=True, timeout=300)
    assert r1.returncode == 0, r1.stderr[-2000:]
    port = _free_port()
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                         "--master_addr=127.0.0.1", f"--master_port={port}", *_train_cmd(ddp, TINY, preset)],
                        env=_env(), capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[:3000] + " … " + r2.stderr[-1500:]

    a = torch.load(single / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    b = torch.load(ddp / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=1e-5), k

    ma, mb = _metrics(single), _metrics(ddp)
    assert [m["epoch"] for m in ma] == [m["epoch"] for m in mb] == [1, 2]
    for x, y in zip(ma, mb):
        assert x["reweight_active"] == y["reweight_active"] == preset.endswith("mail-at")
        for key in ("weights", "margin", "loss", "train_acc", "confused"):
            assert _close(x[key], y[key]), (key, x[key], y[key])
        assert x["val"]["nat"] == y["val"]["nat"]  # sharded evaluation, counts all-reduced
    # only rank 0 wrote: one config, one metrics file, no stray temp files
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())


def _restore(trainer: Trainer, state: dict) -> None:
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])


def test_global_weight_normalization_in_a_mocked_two_rank_world(tmp_path, monkeypatch):
    """Rank 0 and rank 1 each step on half of a global batch; the all-reduce is mocked with the
    other half's local sums. Σω over both halves = global batch size, and ω = the 1-process ω."""
    cfg = build_config("fmnist-smallcnn-mail-at", None, TINY + ["data.val_size=0"])
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    batch = next(epoch_batches(tr.splits.x_train, tr.splits.y_train, batch_size=64, seed=0, epoch=1,
                               device=tr.device, augment=False, channels_last=tr.channels_last))
    x, y, noise = batch.x, batch.y, batch.noise
    halves = [slice(0, 32), slice(32, 64)]
    start = {"model": {k: v.clone() for k, v in tr.model.state_dict().items()},
             "optimizer": tr.optimizer.state_dict()}

    # 1 process, global batch of 64
    stats = EpochStats(tr.device)
    tr.step(x, y, noise, 64, 1, stats)
    omega_single = stats.weights.clone()
    assert omega_single.sum().item() == pytest.approx(64.0, rel=1e-5)

    # each rank's local [Σw, Σw²]: what it hands to the all-reduce
    local: dict[int, torch.Tensor] = {}
    tr.world = 2
    for rank, sl in enumerate(halves):
        _restore(tr, start)

        def record(t, rank=rank):
            local[rank] = t.clone()
            return t
        monkeypatch.setattr(dist_utils, "all_reduce_sum", record)
        tr.step(x[sl], y[sl], noise[sl], 64, 1, EpochStats(tr.device))

    omegas = []
    for rank, sl in enumerate(halves):
        _restore(tr, start)
        monkeypatch.setattr(dist_utils, "all_reduce_sum", lambda t, rank=rank: t + local[1 - rank])
        st = EpochStats(tr.device)
        tr.step(x[sl], y[sl], noise[sl], 64, 1, st)
        omegas.append(st.weights.clone())
    omega = torch.cat(omegas)
    assert omega.sum().item() == pytest.approx(64.0, rel=1e-5)  # the global batch size, not 32 per rank
    assert torch.allclose(omega, omega_single, atol=1e-5)
    assert not torch.allclose(omegas[0].sum(), torch.tensor(32.0))  # so the global sum really mattered


@pytest.mark.parametrize("method", QUICK_METHODS + ("pm_dif",))
def test_step_makes_no_host_device_sync(tmp_path, method):
    extra = ["reweight.margin=pm_dif", "reweight.weighting=sigmoid"] if method == "pm_dif" else []
    cfg = build_config(f"fmnist-smallcnn-{'at' if method == 'pm_dif' else method}", None,
                       TINY + ["data.val_size=0"] + extra)
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    b = next(epoch_batches(tr.splits.x_train, tr.splits.y_train, batch_size=32, seed=0, epoch=1, device=tr.device,
                           augment=False, noise_kind=cfg.attack.start or "uniform", channels_last=tr.channels_last))
    stats = EpochStats(tr.device)

    def one_step():
        loss = tr.step(b.x, b.y, b.noise, b.global_size, 1, stats)
        tr.note_finite(loss, 1, 0)
    one_step()  # warm-up (first calls may set up state)
    assert count_sync_ops(one_step) == {}


def test_epoch_stats_preallocated_buffers_grow_and_round_trip():
    st = EpochStats(torch.device("cpu"), capacity=3)
    st.add(loss_sum=torch.tensor(2.0), correct=torch.tensor(3), count=4.0, batches=0.5)
    st.add_samples(torch.tensor([1.0, 2.0]), torch.tensor([0.1, 0.2]))
    st.add_samples(torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4]))  # beyond capacity: grows
    s = dict(zip(EpochStats.KEYS, st.sums.tolist()))
    assert (s["loss_sum"], s["correct"], s["count"], s["batches"]) == (2.0, 3.0, 4.0, 0.5)
    assert st.weights.tolist() == [1.0, 2.0, 3.0, 4.0]
    other = EpochStats(torch.device("cpu"))
    other.load(st.state())
    assert torch.equal(other.sums, st.sums) and torch.equal(other.margins, st.margins)
    with pytest.raises(KeyError):
        st.add(nonsense=1.0)


def test_streaming_from_host_memory_gives_the_same_run(tmp_path):
    """data.on_device=false keeps the uint8 set in host memory and copies each batch: same numbers."""
    from irat import train

    base = TINY + ["epochs=1", "data.val_size=0", "data.train_subset=64"]
    runs = [train(build_config("fmnist-smallcnn-mail-at", None, base + [f"data.on_device={v}"]), tmp_path / v,
                  progress=False) for v in ("true", "false")]
    assert runs[0].metrics[0]["loss"] == runs[1].metrics[0]["loss"]
    assert runs[0].metrics[0]["weights"] == runs[1].metrics[0]["weights"]


def test_bench_quick_writes_json_with_the_documented_structure(tmp_path):
    from irat.cli import main

    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--batch-size", "16", "--repeats", "1", "--epoch-images", "32",
                 "--set", "attack.steps=1", "--reference", "--out", str(out)])
    assert code == 0
    d = json.loads(out.read_text())
    for key, typ in [("floor_ratio", float), ("overhead", dict), ("overhead_vs_base", dict), ("images_per_s", float),
                     ("reference_ratio", float), ("median_s", dict), ("command", str), ("date", str),
                     ("device", str), ("torch", str), ("threads", int), ("methods", list), ("host_sync_ops", dict),
                     ("channels_last", dict), ("meets_targets", dict), ("targets", dict)]:
        assert isinstance(d[key], typ), key
    assert set(d["overhead"]) == set(QUICK_METHODS) == set(d["methods"])
    assert d["overhead_vs_base"]["mail-trades"]["base"] == "trades"
    assert d["overhead_vs_base"]["clirat"]["base"] == "at"
    assert d["overhead"]["at"] == 1.0
    assert all(isinstance(v, float) and v > 0 for v in d["overhead"].values())
    assert {"clean_step", "attack_step", "pgd", "step:at"} <= set(d["median_s"])
    assert {"at_step_speedup", "clean_step_speedup", "attack_step_speedup"} <= set(d["channels_last"])
    assert d["reference"]["methods"]["at"]["images"] == 32
    assert d["attack"]["steps"] == 1 and d["batch_size"] == 16
    assert "irat bench --quick" in d["command"]
