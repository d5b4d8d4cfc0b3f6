"""Shared fixtures: CIFAR-like 3-channel 32×32 data in the real on-disk formats (the path users take)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Learnable 32×32 RGB images (N, 32, 32, 3): a class colour and stripe, plus noise."""
    n = labels.shape[0]
    base = np.zeros((n, 32, 32, 3))
    for c in range(10):
        idx = labels == c
        base[idx, :, :, c % 3] = 0.25 + 0.05 * c
        base[idx, (c * 3) % 32:(c * 3) % 32 + 4, :, :] = 0.9
    noisy = base + rng.normal(0, 0.08, base.shape)
    return (np.clip(noisy, 0, 1) * 255).astype(np.uint8)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # CIFAR's own files are Python-2 pickles with bytes keys


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    """CIFAR-10's on-disk format: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        y = rng.integers(0, 10, 40)
        x = _images(rng, y).transpose(0, 3, 1, 2).reshape(40, 3072)  # rows of R, G, B planes
        _pickle(folder / f"data_batch_{i}", {b"batch_label": b"b", b"data": x, b"labels": [int(v) for v in y]})
    y = rng.integers(0, 10, 40)
    _pickle(folder / "test_batch", {b"data": _images(rng, y).transpose(0, 3, 1, 2).reshape(40, 3072),
                                    b"labels": [int(v) for v in y]})
    _pickle(folder / "batches.meta", {b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072})
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """An image folder of JPEG and PNG files: <dir>/{train,test}/<class>/<image>."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs") / "cifar-like"
    rng = np.random.default_rng(1)
    for split, n in (("train", 24), ("test", 6)):
        for c, name in enumerate(CLASSES[:4]):
            (root / split / name).mkdir(parents=True)
            for i, img in enumerate(_images(rng, np.full(n, c))):
                ext = "jpg" if i % 2 else "png"
                Image.fromarray(img).save(root / split / name / f"{i:03d}.{ext}")
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and much faster on a shared, busy machine.
    A module uses it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def stop_after_epoch(monkeypatch):
    """stop_after_epoch(n): the next training run stops after epoch n as if sent SIGTERM (exit 143, a
    checkpoint written); call it again with None to let runs finish."""
    import signal

    import irat.training.trainer as trainer_mod

    real = trainer_mod.Trainer._summary

    def arm(epoch: int | None) -> None:
        def summary(self, e, *a, **k):
            line = real(self, e, *a, **k)
            if e == epoch:
                self._stop_signal = signal.SIGTERM
            return line
        monkeypatch.setattr(trainer_mod.Trainer, "_summary", real if epoch is None else summary)
    return arm
