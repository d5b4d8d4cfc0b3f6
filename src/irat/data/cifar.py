"""CIFAR-10 and CIFAR-100 from torchvision's pickle batches under ``<root>``."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from irat.errors import DataError

from .image_dataset import ImageDataset, download, from_arrays, one_line


def _unpickle(path: Path) -> dict[str, Any]:
    """Load one CIFAR pickle and normalize its keys to ``str`` (files are written with bytes keys)."""
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as exc:  # truncated file, not a pickle, ...
        raise DataError(f"data.root: corrupt CIFAR file {path} ({one_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"data.root: corrupt CIFAR file {path}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _cifar_batches(paths: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate CIFAR batches into x [N, 3, 32, 32] uint8 and y [N] int64.

    Each row of ``data`` is 1024 red, then 1024 green, then 1024 blue values, each plane row-major,
    so a plain reshape gives NCHW.
    """
    xs, ys = [], []
    for path in paths:
        batch = _unpickle(path)
        if "data" not in batch or label_key not in batch:
            raise DataError(f"data.root: corrupt CIFAR file {path}: needs keys 'data' and {label_key!r}")
        data = np.asarray(batch["data"])
        labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
            raise DataError(
                f"data.root: corrupt CIFAR file {path}: data must be uint8 [N, 3072] with N labels "
                f"(got {data.dtype} {data.shape}, {len(labels)} labels)"
            )
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def _label_names(path: Path, key: str) -> list[str]:
    """Class names from a CIFAR meta file."""
    meta = _unpickle(path)
    if key not in meta:
        raise DataError(f"data.root: corrupt CIFAR meta file {path}: no {key!r}")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in meta[key]]


def _load_cifar(root: Path, allow_download: bool, *, hundred: bool) -> ImageDataset:
    """CIFAR-10/100 from torchvision's layout; torchvision downloads when files are missing."""
    if hundred:
        name, what, folder = "cifar100", "CIFAR-100", root / "cifar-100-python"
        train_names, test_names, meta_name = ["train"], ["test"], "meta"
        label_key, names_key = "fine_labels", "fine_label_names"
        expected = "cifar-100-python/{train, test, meta}"
    else:
        name, what, folder = "cifar10", "CIFAR-10", root / "cifar-10-batches-py"
        train_names, test_names, meta_name = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta"
        label_key, names_key = "labels", "label_names"
        expected = "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}"
    needed = [folder / n for n in (*train_names, *test_names, meta_name)]
    if not all(p.is_file() for p in needed):
        def fetch() -> None:
            import torchvision.datasets  # heavy, and needed only to download

            cls = torchvision.datasets.CIFAR100 if hundred else torchvision.datasets.CIFAR10
            cls(str(root), train=True, download=True)

        download(what, root, expected, allow_download, fetch)
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise DataError(f"data.root: {what} download finished but {folder} lacks {', '.join(missing)}")
    x_train, y_train = _cifar_batches([folder / n for n in train_names], label_key)
    x_test, y_test = _cifar_batches([folder / n for n in test_names], label_key)
    classes = _label_names(folder / meta_name, names_key)
    return from_arrays(name, x_train, y_train, x_test, y_test, classes)


def load_cifar10(root: Path, allow_download: bool) -> ImageDataset:
    return _load_cifar(root, allow_download, hundred=False)


def load_cifar100(root: Path, allow_download: bool) -> ImageDataset:
    return _load_cifar(root, allow_download, hundred=True)
