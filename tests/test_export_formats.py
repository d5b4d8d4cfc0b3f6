"""`irat export` writes current formats that load back without unpickling code and give the checkpoint's
logits: a torch.export program (`torch.export.load`, any batch size) and safetensors weights that
rebuild the network from their own metadata (`irat.load_model`); TorchScript only behind --torchscript.

The network is a BatchNorm one (PreAct-ResNet-18, width 4) trained one epoch on 64 CIFAR-like images,
so an export in training mode (batch statistics) would not match on a batch of another size.
Torch runs single-threaded here: on a shared 2-core machine OpenMP threads make small batches far slower.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch

import irat
from irat.checkpoint import WEIGHTS_FORMAT, load_checkpoint, save_checkpoint
from irat.cli import main
from irat.errors import CheckpointError
from irat.export import export_checkpoint
from irat.models import model_from_config


pytestmark = pytest.mark.usefixtures("one_thread")


def sets(*pairs: str) -> list[str]:
    return [a for p in pairs for a in ("--set", p)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, cifar_root) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "--preset", "cifar10-resnet18-at", *sets(
        "data.name=cifar10", f"data.root={cifar_root}", "data.train_subset=64", "data.val_size=0",
        "model.name=preact_resnet18", "model.width=4", "epochs=1", "batch_size=32", "attack.steps=1",
        "optim.lr=0.05"), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    return out / "checkpoints" / "last.pt"


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("irat: error: ") and "\n" not in err, err
    return err


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def test_program_and_safetensors_give_the_checkpoints_logits(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    assert main(["export", str(checkpoint), "--out", str(out)]) == 0
    program, weights, card_path = out / "model.pt2", out / "model.safetensors", out / "model.json"
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt2", "model.safetensors"]  # no TorchScript

    reference = irat.load_model(checkpoint)
    from_program = torch.export.load(str(program)).module()
    from_weights = irat.load_model(weights)  # rebuilt from the file's metadata via the model registry
    gen = torch.Generator().manual_seed(1)
    for batch in (5, 1):  # the export's example has 2 images: the batch dimension is dynamic
        x = torch.rand(batch, 3, 32, 32, generator=gen)
        ref = _logits(reference, x)
        assert torch.allclose(_logits(from_program, x), ref, atol=1e-5)
        assert torch.allclose(_logits(from_weights, x), ref, atol=1e-5)
    # attacks run on the program: it has the model's input gradient
    x = torch.rand(4, 3, 32, 32, generator=gen, requires_grad=True)
    y = torch.arange(4)
    grads = [torch.autograd.grad(torch.nn.functional.cross_entropy(m(x), y), x)[0] for m in (reference, from_program)]
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[1], grads[0], rtol=1e-4, atol=1e-8)

    # the safetensors file is plain tensors (no pickle) with the config as JSON metadata
    tensors = safetensors.torch.load_file(str(weights))
    state = reference.state_dict()
    assert set(tensors) == set(state) and all(torch.equal(tensors[k], state[k]) for k in state)
    with safetensors.safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == WEIGHTS_FORMAT
    model = json.loads(meta["config"])["model"]
    assert (model["name"], model["width"]) == ("preact_resnet18", 4)
    assert (json.loads(meta["num_classes"]), json.loads(meta["image_size"])) == (10, [32, 32])

    # the card names each file with its sha256
    card = json.loads(card_path.read_text())
    files = card["irat"]["files"]
    assert card["irat"]["model_file"] == "model.pt2" and card["irat"]["torchscript"] is None
    assert set(files) == {"program", "weights"}
    for entry in files.values():
        assert entry["sha256"] == hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest()
    assert card["architecture"] == "PreActResNet-18" and card["irat"]["model"]["width"] == 4

    # plain torch runs the program: no irat import
    code = ("import sys, torch; m = torch.export.load(sys.argv[1]).module(); y = m(torch.rand(3, 3, 32, 32)); "
            "assert y.shape == (3, 10) and 'irat' not in sys.modules; print('ok')")
    res = subprocess.run([sys.executable, "-c", code, str(program)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_the_program_loads_without_unpickling(checkpoint: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.export.load may unpickle payloads a .pt2 marks so (or fall back to it); ours has none: with
    every torch.load forced to weights_only=True and pickle's loaders disabled, the program still loads."""
    paths = export_checkpoint(checkpoint, tmp_path / "m.pt2")
    real_load = torch.load

    def weights_only_load(f, *args, weights_only=None, **kwargs):
        return real_load(f, *args, weights_only=True, **kwargs)

    def refused(*args, **kwargs):
        raise AssertionError("the program's loader unpickled an object")

    monkeypatch.setattr(torch, "load", weights_only_load)
    monkeypatch.setattr(pickle, "loads", refused)
    monkeypatch.setattr(torch._C, "_pickle_load_obj", refused)
    program = torch.export.load(str(paths["program"])).module()
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(_logits(program, x), _logits(irat.load_model(checkpoint), x), atol=1e-5)


def test_the_exported_weights_evaluate_like_the_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    export_checkpoint(checkpoint, out)
    reports = []
    for path in (checkpoint, out / "model.safetensors"):
        assert main(["eval", str(path), "--attacks", "nat", "--n-examples", "16", "--device", "cpu", "--quiet",
                     "--out", str(tmp_path / f"{path.stem}.json")]) == 0
        reports.append(json.loads((tmp_path / f"{path.stem}.json").read_text()))
    assert reports[0]["accuracy"] == reports[1]["accuracy"]
    assert reports[0]["checkpoint"]["model_sha256"] == reports[1]["checkpoint"]["model_sha256"]


def test_torchscript_only_behind_the_flag(checkpoint: Path, tmp_path: Path) -> None:
    paths = export_checkpoint(checkpoint, tmp_path / "ts" / "at.pt", torchscript=True)
    assert {role: p.name for role, p in paths.items()} == {
        "program": "at.pt2", "weights": "at.safetensors", "torchscript": "at.pt", "card": "at.json"}
    with warnings.catch_warnings():  # torch.jit.load is deprecated, which is why it is behind a flag
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(str(paths["torchscript"]))
    x = torch.rand(4, 3, 32, 32)
    assert torch.allclose(_logits(scripted, x), _logits(irat.load_model(checkpoint), x), atol=1e-5)
    card = json.loads(paths["card"].read_text())
    assert card["irat"]["torchscript"] in ("script", "trace")
    assert card["irat"]["files"]["torchscript"]["sha256"] == hashlib.sha256(paths["torchscript"].read_bytes()).hexdigest()


@pytest.mark.parametrize("arch", ["smallcnn:model.dropout=0.3", "resnet18:model.width=4",
                                  "wrn:model.depth=10:model.width=1"])
def test_every_architecture_exports_with_a_dynamic_batch(arch: str, tmp_path: Path) -> None:
    name, *keys = arch.split(":")
    cfg = irat.build_config("cifar10-resnet18-at", overrides=[f"model.name={name}", *keys])
    torch.manual_seed(0)
    model = model_from_config(cfg, 10, 3, (32, 32))
    ckpt = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(ckpt, {"model": model.state_dict(), "config": cfg.to_dict(), "epoch": 0, "num_classes": 10,
                           "in_channels": 3, "image_size": [32, 32], "classes": []})
    paths = export_checkpoint(ckpt)  # default: the run directory, model.*
    assert paths["program"] == tmp_path / "model.pt2" and paths["card"] == tmp_path / "model.json"
    x = torch.rand(7, 3, 32, 32)
    ref = _logits(model.eval(), x)
    assert torch.allclose(_logits(torch.export.load(str(paths["program"])).module(), x), ref, atol=1e-5)
    assert torch.allclose(_logits(irat.load_model(paths["weights"]), x), ref, atol=1e-5)


def test_exports_are_not_training_checkpoints_and_bad_weights_are_refused(
        checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = export_checkpoint(checkpoint, tmp_path / "m.pt2")
    with pytest.raises(CheckpointError, match="torch.export program.*torch.export.load"):
        irat.load_model(paths["program"])
    assert main(["eval", str(paths["program"]), "--attacks", "nat", "--device", "cpu"]) == 2
    assert "torch.export.load" in _one_line_error(capsys)

    data = paths["weights"].read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="without irat's metadata"):
        load_checkpoint(foreign)
    tampered = tmp_path / "tampered.safetensors"
    state = safetensors.torch.load_file(str(paths["weights"]))
    with safetensors.safe_open(str(paths["weights"]), framework="pt") as f:
        meta = f.metadata()
    key = next(k for k in state if k.endswith("weight"))
    state[key] = state[key] + 1e-3
    safetensors.torch.save_file(state, str(tampered), metadata=meta)
    with pytest.raises(CheckpointError, match="hash mismatch"):
        load_checkpoint(tampered)


def test_bad_input_is_one_line_exit_2(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "out")]) == 2
    assert "not found" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    assert main(["export", str(checkpoint), "--out", str(blocker / "exported")]) == 2
    assert "--out" in _one_line_error(capsys)
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "x"), "--eval", str(tmp_path / "no.json")]) == 2
    assert "--eval" in _one_line_error(capsys)
    assert not (tmp_path / "x").exists()  # the input is checked before anything is written
