"""benchmarks/gpu_check.py: its CPU dry run (--device cpu --tiny) on a tiny CIFAR-like JPEG tarball
runs every section end to end and writes a JSON with numbers in every section; only CUDA-only and
compile items may be skipped, and nothing may be an error."""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
CLASSES = ("cat", "dog", "frog", "ship")  # 4: AutoAttack's targeted DLR loss needs K >= 4
SECTIONS = ("data", "throughput", "bench", "train_eval", "bf16_parity", "memory", "compile")


def make_tarball(path: Path, n_train: int = 12, n_test: int = 5, seed: int = 0) -> Path:
    """Random 32x32 RGB JPEGs in the true layout: train/<class>/NNNN.jpg, test/<class>/NNNN.jpg."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz") as tf:
        for split, n in (("train", n_train), ("test", n_test)):
            for c in CLASSES:
                for i in range(n):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
                    info = tarfile.TarInfo(f"{split}/{c}/{i:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tf.addfile(info, buf)
    return path


def _numbers(d: object) -> list[float]:
    if isinstance(d, bool):
        return []
    if isinstance(d, (int, float)):
        return [float(d)]
    if isinstance(d, dict):
        return [x for v in d.values() for x in _numbers(v)]
    if isinstance(d, list):
        return [x for v in d for x in _numbers(v)]
    return []


def _statuses(d: object, path: str = "") -> list[tuple[str, str, str]]:
    """Every (path, status, reason-or-error) in the JSON tree."""
    out = []
    if isinstance(d, dict):
        if "status" in d:
            out.append((path, d["status"], str(d.get("reason") or d.get("error") or "")))
        for k, v in d.items():
            out += _statuses(v, f"{path}.{k}" if path else k)
    return out


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("gpu-check")
    tar = make_tarball(tmp / "tiny-cifar.tar.gz")
    out = tmp / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--data", str(tar),
                           "--out", str(out), "--budget-s", "240"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), out, proc


def test_dry_run_has_every_section_and_no_error(dry_run: tuple[dict, Path, subprocess.CompletedProcess]) -> None:
    res, out, proc = dry_run
    assert set(SECTIONS) <= set(res["sections"])
    statuses = _statuses(res["sections"])
    errors = [s for s in statuses if s[1] not in ("ok", "skipped")]
    assert not errors, errors
    assert res["problems"] == [] or all("pyautoattack" in p for p in res["problems"]), res["problems"]
    # on CPU only the CUDA-only and torch.compile items may be skipped
    skipped = {p: why for p, s, why in statuses if s == "skipped"}
    allowed = ("memory", "compile", "throughput.variants.bf16_channels_last_compile",
               "throughput.host_sync_epoch.cuda_sync_debug", "bench.host_sync.cuda_sync_debug")
    assert set(skipped) <= set(allowed), skipped
    assert all(("CUDA" in why) or ("compile" in why) for why in skipped.values()), skipped
    for name in ("data", "throughput", "bench", "train_eval", "bf16_parity"):
        assert res["sections"][name]["status"] == "ok", res["sections"][name]
        assert isinstance(res["sections"][name]["seconds"], float)
    assert (out / "gpu_check.log").read_text().strip()
    assert "gpu_check:" in proc.stdout  # the human-readable summary
    for key in ("torch", "device", "device_name", "python", "pyautoattack"):
        assert key in res["env"]
    assert "gpu_check.py" in res["command"] and res["wall_s"] > 0


def test_dry_run_numbers(dry_run: tuple[dict, Path, subprocess.CompletedProcess]) -> None:
    res, _, _ = dry_run
    s = res["sections"]
    assert s["data"]["n_train"] == 4 * 12 and s["data"]["n_test"] == 4 * 5 and s["data"]["classes"] == list(CLASSES)
    v = s["throughput"]["variants"]
    for name in ("fp32", "bf16", "bf16_channels_last", "bf16_train_channels_last"):
        if name in v or name != "bf16_train_channels_last":  # the last one where the config has fast.amp_train
            assert v[name]["images_per_s"] > 0 and v[name]["step_ms"] > 0, v[name]
    assert v["bf16"]["amp"] and not v["fp32"]["amp"] and v["bf16_channels_last"]["channels_last"]
    assert isinstance(s["throughput"]["host_sync_epoch"]["dispatch_ops"], dict)
    b = s["bench"]
    assert b["floor_ratio"] > 0
    assert set(b["overhead_vs_at"]) == {"mail-at", "clirat", "gairat"}
    assert all(x > 0 for x in b["overhead_vs_at"].values())
    assert b["host_sync"]["none"] in (True, False)
    t = s["train_eval"]
    assert t["train_rc"] == 0 and t["eval_rc"] == 0 and t["train_s"] > 0 and t["eval_s"] > 0
    assert [e["epoch"] for e in t["epochs"]] == [1, 2] and t["epochs"][1]["reweight_active"]
    assert {"nat", "pgd20", "worst"} <= set(t["accuracy"]) and t["eval_n_examples"] == 20
    assert all(0 <= a <= 100 for a in t["accuracy"].values())
    p = s["bf16_parity"]
    for mode in ("eval_mode", "train_mode"):
        for tag in ("bf16", "bf16_channels_last"):
            m = p[mode][tag]["max_abs"]
            for k in ("pm_adv", "cl_pm", "omega_mail_at", "omega_clirat"):
                assert math.isfinite(m[k]) and m[k] >= 0, (mode, tag, k, m)
    assert set(p["headline"]) >= {"pm_adv", "cl_pm", "omega_mail_at", "omega_clirat"}
    mem = s["memory"]["models"]
    assert set(mem) >= {"resnet18:fp32", "resnet18:bf16_channels_last", "wrn-34-10:fp32",
                        "wrn-34-10:bf16_channels_last"}
    assert all(x["status"] == "ok" and x["step_s"] > 0 for x in mem.values()), mem
    for name in SECTIONS:
        assert _numbers(s[name]) or s[name]["status"] == "skipped", name
    assert res["summary"]["images_per_s"]["fp32"] > 0


def test_slim_wheel_drops_examples_and_their_record_lines(tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    whl = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("pkg/__init__.py", "x = 1\n")
        z.writestr("pkg/examples/big.pt", b"\0" * 100_000)
        z.writestr("pkg-1.0.dist-info/RECORD",
                   "pkg/__init__.py,sha256=a,6\npkg/examples/big.pt,sha256=b,100000\npkg-1.0.dist-info/RECORD,,\n")
    assert gpu_check.slim_wheel(whl) > 0
    with zipfile.ZipFile(whl) as z:
        assert z.namelist() == ["pkg/__init__.py", "pkg-1.0.dist-info/RECORD"]
        assert "examples" not in z.read("pkg-1.0.dist-info/RECORD").decode()
    assert gpu_check.slim_wheel(whl) == 0  # nothing left to drop
