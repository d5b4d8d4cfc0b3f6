"""Weight averaging: the EMA equals a hand-computed average over 3 updates (parameters and BatchNorm
statistics; integer buffers copied), a kill and resume leaves it bitwise equal, and it is what eval uses."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import irat
from irat.checkpoint import load_checkpoint
from irat.cli import main
from irat.training import EMA


def test_ema_equals_a_hand_computed_average_over_three_updates():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 30 * 30, 2))
    ema = EMA(net, decay=0.9, warmup=2)  # d_1 = 0 (copy), d_2 = 0.9·1/2 = 0.45, d_3 = 0.9
    snapshots = []
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net.train()(torch.randn(5, 3, 32, 32))  # moves BatchNorm's running statistics and its counter
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        ema.update(net)
    assert [ema.decay_at(t) for t in (1, 2, 3, 4)] == pytest.approx([0.0, 0.45, 0.9, 0.9])
    for k, v in ema.model.state_dict().items():
        a, b, c = (s[k] for s in snapshots)
        if v.is_floating_point():
            want = 0.9 * (0.45 * a + 0.55 * b) + 0.1 * c
            assert torch.allclose(v, want, atol=1e-6), k
        else:
            assert torch.equal(v, c), k  # num_batches_tracked: copied
    assert ema.updates == 3 and not any(p.requires_grad for p in ema.model.parameters())


def _train(out, *extra):
    return main(["train", "--preset", "cifar10-resnet18-mail-at", "--set", "data.name=imagefolder:" + str(extra[0]),
                 "--set", "model.name=preact_resnet18", "--set", "model.width=4", "--set", "epochs=2",
                 "--set", "batch_size=16", "--set", "data.val_size=16", "--set", "attack.steps=1",
                 "--set", "optim.milestones=[1]", "--set", "ema.enabled=true", "--set", "ema.decay=0.8",
                 *extra[1:], "--out", str(out), "--device", "cpu", "--quiet"])


def test_ema_is_checkpointed_resumed_exactly_and_used_by_eval(tmp_path, image_folder, stop_after_epoch):
    ref = tmp_path / "ref"
    assert _train(ref, image_folder) == 0
    # stop after the first epoch (the SIGTERM path), then resume: EMA bitwise equal to the uninterrupted run
    stop_after_epoch(1)
    out = tmp_path / "resumed"
    assert _train(out, image_folder) == 143
    stop_after_epoch(None)
    assert main(["train", "--out", str(out), "--resume", "--device", "cpu", "--quiet"]) == 0
    got, want = load_checkpoint(out / "checkpoints" / "last.pt"), load_checkpoint(ref / "checkpoints" / "last.pt")
    assert got["ema"]["updates"] == want["ema"]["updates"] > 0
    for k, v in want["ema"]["model"].items():
        assert torch.equal(got["ema"]["model"][k], v), k
    lines = [json.loads(s) for s in (ref / "metrics.jsonl").read_text().splitlines()]
    assert all(m["val_weights"] == "ema" for m in lines)
    # eval, export and load_model use the EMA weights unless told otherwise
    x = torch.rand(3, 3, 32, 32)
    ema_model = irat.load_model(ref / "checkpoints" / "last.pt")
    raw_model = irat.load_model(ref / "checkpoints" / "last.pt", weights="raw")
    expect = irat.load_model(ref / "checkpoints" / "last.pt", weights="ema")
    with torch.no_grad():
        assert torch.equal(ema_model(x), expect(x)) and not torch.allclose(ema_model(x), raw_model(x))
    with pytest.raises(irat.errors.ConfigError, match="weights"):
        irat.load_model(ref / "checkpoints" / "last.pt", weights="best")


def test_eval_and_export_use_the_ema_weights_unless_asked_for_the_raw_ones(tmp_path, image_folder):
    run = tmp_path / "run"
    assert _train(run, image_folder) == 0
    ckpt = run / "checkpoints" / "last.pt"
    ev = tmp_path / "ema.json"
    assert main(["eval", str(ckpt), "--attacks", "nat", "--n-examples", "8", "--device", "cpu", "--quiet",
                 "--out", str(ev)]) == 0
    assert json.loads(ev.read_text())["checkpoint"]["weights"] == "ema"
    # the raw weights into the same file with --reuse: nothing of the EMA evaluation is taken over
    assert main(["eval", str(ckpt), "--attacks", "nat", "--n-examples", "8", "--device", "cpu", "--quiet",
                 "--out", str(ev), "--reuse", "--raw-weights"]) == 0
    report = json.loads(ev.read_text())
    assert report["checkpoint"]["weights"] == "raw" and report["reused"]["attacks"] == []
    assert main(["export", str(ckpt), "--out", str(tmp_path / "exp")]) == 0
    card = json.loads((tmp_path / "exp" / "model.json").read_text())
    assert card["irat"]["weights"] == "ema"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(irat.load_model(tmp_path / "exp" / "model.safetensors")(x), irat.load_model(ckpt)(x),
                              atol=1e-5)
