"""The path users take: 3-channel 32×32 images in both real on-disk formats (CIFAR-10 pickles and an
image folder of JPEG and PNG files), BatchNorm networks (ResNet-18 and PreAct-ResNet-18 at width 8, a
WRN-10-1), and the CLI typed as people type it: one `--set` per key.

Every command runs here on a BatchNorm network: train, kill + resume (bitwise), eval (PGD-20, CW,
APGD-CE, AutoAttack), export and loading the export, sweep, report, analyze and bench --quick.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import irat
from irat.checkpoint import load_checkpoint, state_hash
from irat.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"
ARCHS = {  # tiny BatchNorm networks and the preset family a user would start from
    "resnet18": ("cifar10-resnet18-mail-at", ["model.width=8"]),
    "preact_resnet18": ("cifar10-resnet18-clirat", ["model.name=preact_resnet18", "model.width=8"]),
    "wrn": ("cifar10-wrn32-10-trades", ["model.depth=10", "model.width=1"]),
}


def sets(*pairs: str) -> list[str]:
    """The CLI as people type it: `--set a=1 --set b=2 …`."""
    return [w for p in pairs for w in ("--set", p)]


def data_sets(fmt: str, cifar_root: Path, image_folder: Path) -> list[str]:
    if fmt == "pickle":
        return ["data.name=cifar10", f"data.root={cifar_root}"]
    return [f"data.name=imagefolder:{image_folder}", f"data.root={image_folder.parent}"]


TINY = ["epochs=2", "batch_size=16", "data.val_size=16", "attack.steps=2", "optim.milestones=[1]",
        "reweight.from_epoch=2"]


def _train(out: Path, preset: str, *pairs: str) -> int:
    return main(["train", "--preset", preset, *sets(*pairs), "--out", str(out), "--device", "cpu", "--quiet"])


# ---------------------------------------------------------------------------------------------
# train: every architecture on both formats


@pytest.mark.parametrize("fmt", ["pickle", "imagefolder"])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_train_batchnorm_networks_on_both_formats(tmp_path, cifar_root, image_folder, arch, fmt):
    preset, model_sets = ARCHS[arch]
    out = tmp_path / "run"
    assert _train(out, preset, *data_sets(fmt, cifar_root, image_folder), *model_sets, *TINY, "seed=3") == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["epochs"] == 2 and cfg["batch_size"] == 16 and cfg["seed"] == 3  # every --set applied
    assert cfg["attack"]["steps"] == 2 and cfg["optim"]["milestones"] == [1]
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["in_channels"] == 3 and ckpt["image_size"] == [32, 32]
    assert any(k.endswith("num_batches_tracked") for k in ckpt["model"])  # a BatchNorm network
    assert ckpt["model_sha256"] == state_hash(ckpt["model"])
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2] and all(np.isfinite(m["loss"]) for m in lines)
    model = irat.load_model(out / "checkpoints" / "last.pt")
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.out_channels == (16 if arch == "wrn" else 8)  # model.width reached the network
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10 if fmt == "pickle" else 4)


# ---------------------------------------------------------------------------------------------
# kill -9 and resume: bitwise equal to the uninterrupted run


def _launch(out: Path, args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "irat", "train", *args, "--out", str(out), "--device", "cpu",
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume_is_bitwise_on_preact_resnet(tmp_path, image_folder):
    args = ["--preset", "cifar10-resnet18-mail-at",
            *sets(f"data.name=imagefolder:{image_folder}", "model.name=preact_resnet18", "model.width=8",
                  "epochs=2", "batch_size=16", "data.val_size=16", "attack.steps=2", "optim.milestones=[1]",
                  "reweight.from_epoch=2", "checkpoint_every_steps=1")]
    ref = tmp_path / "ref"
    proc = _launch(ref, args)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()

    out = tmp_path / "killed"
    proc = _launch(out, args)
    last = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists() and last.stat().st_size > 0:
            time.sleep(0.3)  # a step or two more, then kill -9 mid-epoch
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert load_checkpoint(last)["epoch"] < 2, "the run finished before it could be killed"
    proc = _launch(out, ["--resume"])
    assert proc.wait(timeout=300) == 0, proc.stderr.read()

    got, want = load_checkpoint(last), load_checkpoint(ref / "checkpoints" / "last.pt")
    for k, v in want["model"].items():  # weights and BatchNorm statistics alike
        assert torch.equal(got["model"][k], v), k
    assert got["model_sha256"] == want["model_sha256"]
    strip = lambda run: [{k: v for k, v in json.loads(s).items() if k not in ("seconds", "images_per_s")}
                         for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert strip(out) == strip(ref)


# ---------------------------------------------------------------------------------------------
# eval, export, sweep, report, analyze, bench on a trained BatchNorm network


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cifar_root) -> Path:
    out = tmp_path_factory.mktemp("bn") / "run"
    assert _train(out, "cifar10-resnet18-at", "data.name=cifar10", f"data.root={cifar_root}",
                  "model.name=preact_resnet18", "model.width=8", "epochs=2", "batch_size=20",
                  "data.val_size=20", "attack.steps=3", "optim.lr=0.05", "optim.milestones=[2]") == 0
    return out


def test_eval_pgd_cw_apgd_and_autoattack_on_a_few_examples(trained):
    ckpt = trained / "checkpoints" / "last.pt"
    out = trained / "eval-small.json"
    rc = main(["eval", str(ckpt), "--attacks", "nat,pgd20,cw,apgd-ce,aa", "--n-examples", "6", "--device", "cpu",
               "--no-cascade", "--limit", "aa=3", "--limit", "apgd-ce=5", "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    acc, attacks = report["accuracy"], report["attacks"]
    assert {"nat", "pgd20", "cw", "apgd-ce", "aa", "worst"} <= set(acc)
    assert all(0.0 <= v <= 100.0 for v in acc.values())
    assert acc["worst"] <= min(acc["pgd20"], acc["cw"], acc["nat"])
    # both --limit flags were kept; standalone attacks attacked every example the model got right
    assert (attacks["pgd20"]["n_examples"], attacks["apgd-ce"]["n_examples"], attacks["aa"]["n_examples"]) == (6, 5, 3)
    assert attacks["aa"]["implementation"].startswith("pyautoattack")


def test_export_and_load_the_exported_model(trained, tmp_path):
    ckpt = trained / "checkpoints" / "last.pt"
    assert main(["export", str(ckpt), "--out", str(tmp_path)]) == 0
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        ref = irat.load_model(ckpt)(x)
        assert torch.allclose(program(x), ref, atol=1e-5)
        assert torch.allclose(irat.load_model(tmp_path / "model.safetensors")(x), ref, atol=1e-5)
    with pytest.raises(irat.errors.CheckpointError, match="torch.export program.*torch.export.load"):
        irat.load_model(tmp_path / "model.pt2")
    assert main(["eval", str(tmp_path / "model.pt2"), "--attacks", "nat", "--device", "cpu"]) == 2
    assert main(["export", str(ckpt), "--out", str(tmp_path / "ts"), "--torchscript"]) == 0
    with pytest.raises(irat.errors.CheckpointError, match="TorchScript export.*torch.jit.load"):
        irat.load_model(tmp_path / "ts" / "model.pt")


def test_analyze_lps_and_paths(trained):
    ckpt = trained / "checkpoints" / "last.pt"
    assert main(["analyze", "lps", str(ckpt), "--n", "16", "--device", "cpu", "--out", str(trained / "an")]) == 0
    assert main(["analyze", "paths", str(ckpt), "--n", "8", "--steps", "5", "--device", "cpu",
                 "--out", str(trained / "an2")]) == 0
    assert any((trained / "an").iterdir()) and any((trained / "an2").iterdir())


def test_sweep_then_report(tmp_path, image_folder):
    out = tmp_path / "grid"
    rc = main(["sweep", "--preset", "cifar10-resnet18-at", "--methods", "at,clirat", "--seeds", "0", "--out", str(out),
               *sets(f"data.name=imagefolder:{image_folder}", "model.name=preact_resnet18", "model.width=8",
                     "epochs=2", "batch_size=16", "data.val_size=16", "attack.steps=2", "optim.milestones=[1]"),
               "--eval", "nat,pgd20", "--eval-examples", "8", "--device", "cpu", "--quiet"])
    assert rc == 0
    for m in ("at", "clirat"):
        cell = out / m / "seed0"
        assert (cell / "eval.json").is_file()
        assert yaml.safe_load((cell / "config.yaml").read_text())["model"]["width"] == 8
    report = tmp_path / "report.md"
    assert main(["report", str(out), "--out", str(report), "--device", "cpu", "--analysis-examples", "16"]) == 0
    text = report.read_text()
    assert "clirat" in text and "at" in text


def test_bench_quick_on_a_batchnorm_network(tmp_path, image_folder):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--quick", "--preset", "cifar10-resnet18", "--model", "preact_resnet18",
               "--batch-size", "16", "--methods", "mail-at", "--no-variants", "--out", str(out),
               *sets(f"data.name=imagefolder:{image_folder}", "model.width=8", "attack.steps=2")])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["model"] == "preact_resnet18" and "imagefolder" in json.dumps(result["data"])
    assert result["floor_ratio"] > 0 and set(result["overhead"]) >= {"mail-at"}


# ---------------------------------------------------------------------------------------------
# the CLI as typed: repeated flags


def test_repeated_set_flags_all_apply_in_every_command():
    from irat.cli import build_parser

    p = build_parser()
    assert p.parse_args(["train", "--preset", "x", "--set", "epochs=2", "--set", "data.train_subset=4000",
                         "--set", "seed=0"]).set == ["epochs=2", "data.train_subset=4000", "seed=0"]
    assert p.parse_args(["train", "--preset", "x", "--set", "a=1", "b=2", "--set", "c=3"]).set == ["a=1", "b=2", "c=3"]
    assert p.parse_args(["sweep", "--methods", "at", "--out", "o", "--set", "a=1", "--set", "b=2"]).set == ["a=1", "b=2"]
    assert p.parse_args(["bench", "--set", "a=1", "--set", "b=2"]).set == ["a=1", "b=2"]
    assert p.parse_args(["eval", "c.pt", "--limit", "aa=5", "--limit", "cw=3"]).limit == ["aa=5", "cw=3"]
    assert p.parse_args(["sweep", "--methods", "at", "--out", "o", "--grid", "seed=1,2", "--grid", "epochs=1,2",
                         "--eval-limit", "aa=1", "--eval-limit", "cw=2"]).grid == ["seed=1,2", "epochs=1,2"]


def test_repeated_train_flags_reach_the_config(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--preset", "fmnist-smallcnn-at", "--set", "epochs=1", "--set", "data.train_subset=64",
               "--set", "data.val_size=0", "--set", "attack.steps=1", "--set", "seed=4", "--out", str(out),
               "--device", "cpu", "--quiet"])
    assert rc == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["epochs"], cfg["data"]["train_subset"], cfg["attack"]["steps"], cfg["seed"]) == (1, 64, 1, 4)


@pytest.mark.parametrize("argv", [
    ["train", "--preset", "fmnist-smallcnn-at", "--out", "a", "--out", "b"],
    ["eval", "c.pt", "--attacks", "nat", "--attacks", "pgd20"],
    ["sweep", "--methods", "at", "--methods", "mail-at", "--out", "o"],
])
def test_a_single_valued_option_given_twice_is_refused(tmp_path, capsys, argv):
    os.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "given twice" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------------------
# model keys


@pytest.mark.parametrize("model,key", [("resnet18", "model.depth=18"), ("resnet18", "model.dropout=0.5"),
                                       ("preact_resnet18", "model.depth=10"), ("wrn-34-10", "model.dropout=0.3"),
                                       ("smallcnn", "model.depth=12")])
def test_a_model_key_the_architecture_does_not_use_is_refused(tmp_path, capsys, model, key):
    out = tmp_path / "run"
    rc = main(["train", "--preset", "cifar10-resnet18-at", "--set", f"model.name={model}", "--set", key,
               "--out", str(out), "--device", "cpu"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and key.split("=")[0] in err and model in err
    assert not out.exists()


def test_model_width_sets_the_resnet_base_width():
    from irat.models import create_model

    for name in ("resnet18", "preact_resnet18"):
        small, full = create_model(name, 10, 3, width=8), create_model(name, 10, 3)
        convs = [m.out_channels for m in small.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs[0] == 8 and max(convs) == 64  # 8, 16, 32, 64
        assert max(m.out_channels for m in full.modules() if isinstance(m, torch.nn.Conv2d)) == 512
        assert small.net.linear.in_features == 64


def test_state_hash_takes_batchnorm_state():
    from irat.models import create_model

    state = create_model("resnet18", 10, 3, width=4).state_dict()
    assert state["net.bn1.num_batches_tracked"].dim() == 0
    h = state_hash(state)
    state["net.bn1.num_batches_tracked"] += 1
    assert state_hash(state) != h


def test_python_api_on_a_batchnorm_network(tmp_path, image_folder):
    cfg = irat.build_config("cifar10-resnet18-mail-trades", overrides=[
        f"data.name=imagefolder:{image_folder}", "model.name=preact_resnet18", "model.width=8", "epochs=1",
        "batch_size=16", "data.val_size=16", "attack.steps=2", "reweight.from_epoch=1", "device=cpu"])
    run = irat.train(cfg, tmp_path / "api", progress=False)
    assert run.checkpoint.is_file() and run.metrics[0]["reweight_active"]
    report = irat.evaluate_checkpoint(run.checkpoint, attacks=["nat", "pgd20"], n_examples=8, device="cpu")
    assert set(report["accuracy"]) == {"nat", "pgd20", "worst"}
    model = irat.load_model(run.checkpoint)
    assert not model.training and any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("preset", ["fmnist-smallcnn-gairat", "fmnist-quickstart"])
def test_the_fashion_mnist_presets_take_cifar_data_too(tmp_path, cifar_root, preset):
    """Every preset family runs on 3-channel 32×32 data: the small CNN adapts its input channels and size."""
    out = tmp_path / "run"
    assert _train(out, preset, "data.name=cifar10", f"data.root={cifar_root}", "data.train_subset=64",
                  "data.val_size=16", "epochs=1", "attack.steps=1", "model.width=4") == 0
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["in_channels"] == 3 and ckpt["image_size"] == [32, 32] and ckpt["num_classes"] == 10
