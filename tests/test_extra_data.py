"""Extra training data (data.extra, an .npz of generated images): mixed into every batch at the exact
ratio, for every method, with one-line errors for a file that does not fit."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from irat.cli import main
from irat.config import build_config
from irat.errors import ConfigError
from irat.training import Trainer


def _npz(path, n=40, shape=(32, 32, 3), classes=10, dtype=np.uint8, marker=7):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, *shape)).astype(dtype)
    images[..., 0, 0, :] = marker if len(shape) == 3 and shape[-1] == 3 else images[..., 0, 0, :]
    np.savez(path, images=images, labels=rng.integers(0, classes, n))
    return path


def _cfg(cifar_root, extra, *more):
    return build_config("cifar10-resnet18-mail-at", None, [
        "data.name=cifar10", f"data.root={cifar_root}", "model.width=4", "batch_size=16", "data.val_size=0",
        "epochs=1", "attack.steps=1", "reweight.from_epoch=1", "device=cpu", f"data.extra={extra}",
        "data.extra_fraction=0.25", "data.augment=false", *more])


def test_every_batch_mixes_real_and_extra_images_at_the_exact_ratio(tmp_path, cifar_root):
    extra = _npz(tmp_path / "gen.npz", n=10)  # NHWC; fewer than one epoch needs: the order cycles
    tr = Trainer(_cfg(cifar_root, extra), tmp_path / "run", progress=False)
    ex_x, ex_y = tr.splits.x_extra, tr.splits.y_extra
    assert ex_x.shape == (10, 3, 32, 32) and ex_x.dtype == torch.uint8
    batches = list(tr.batches(1))
    assert len(batches) == 200 // 12 + 1  # 12 training images a batch cover the 200 once
    used = []
    for b in batches:
        real, tail = b.x[:-4], b.x[-4:]
        tail_u8 = (tail * 255).round().to(torch.uint8)
        match = [(tail_u8[i:i + 1] == ex_x).flatten(1).all(1).nonzero().flatten().tolist() for i in range(4)]
        assert all(len(m) >= 1 for m in match)  # the last 4 of every batch come from data.extra
        used += [m[0] for m in match]
        assert real.shape[0] == b.global_size - 4
        assert torch.equal(b.y[-4:], ex_y[[m[0] for m in match]])
    assert b.global_size == 200 - 16 * 12 + 4  # the last batch: 8 real + 4 extra
    assert sorted(set(used)) == list(range(10))  # the seeded order walks through the whole extra set


def test_a_run_with_extra_data_trains_and_counts_the_extra_images(tmp_path, cifar_root):
    extra = _npz(tmp_path / "gen.npz", n=64)
    out = tmp_path / "run"
    assert main(["train", "--preset", "cifar10-resnet18-trades", "--set", "data.name=cifar10",
                 "--set", f"data.root={cifar_root}", "--set", "model.width=4", "--set", "epochs=1",
                 "--set", "batch_size=20", "--set", "data.val_size=0", "--set", "attack.steps=1",
                 "--set", f"data.extra={extra}", "--set", "data.extra_fraction=0.5",
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    line = json.loads((out / "metrics.jsonl").read_text())
    assert line["confused"]["misclassified"] <= 400 and sum(line["margin"]["hist"]) == 400  # 200 real + 200 extra


@pytest.mark.parametrize("kind,match", [
    ("missing", "data.extra: file not found"), ("shape", "data.extra: .*images are"),
    ("labels", "data.extra: .*labels must lie in 0 … 9"), ("dtype", "data.extra: .*uint8")])
def test_an_extra_file_that_does_not_fit_is_one_line(tmp_path, cifar_root, capsys, kind, match):
    path = tmp_path / "bad.npz"
    if kind == "shape":
        _npz(path, shape=(28, 28, 1))
    elif kind == "labels":
        _npz(path, classes=12)
        data = dict(np.load(path))
        data["labels"][0] = 11
        np.savez(path, **data)
    elif kind == "dtype":
        _npz(path, dtype=np.float32)
    out = tmp_path / "run"
    assert main(["train", "--preset", "cifar10-resnet18-at", "--set", "data.name=cifar10", "--set",
                 f"data.root={cifar_root}", "--set", f"data.extra={path}", "--set", "data.extra_fraction=0.5", "--set", "data.val_size=0",
                 "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and __import__("re").search(match, err), err
    assert not out.exists()


def test_extra_fraction_needs_a_file_and_a_whole_image():
    with pytest.raises(ConfigError, match="data.extra_fraction"):
        build_config("cifar10-resnet18-at", None, ["data.extra_fraction=0.3"])
    with pytest.raises(ConfigError, match="data.extra_fraction"):
        build_config("cifar10-resnet18-at", None, ["data.extra=x.npz", "data.extra_fraction=0.001"])
