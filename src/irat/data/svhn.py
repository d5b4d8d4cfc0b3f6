"""SVHN cropped digits from torchvision's ``train_32x32.mat`` / ``test_32x32.mat`` under ``<root>``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from irat.errors import DataError

from .image_dataset import ImageDataset, download, from_arrays, one_line

_SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN .mat: 'X' [32, 32, 3, N] uint8 -> [N, 3, 32, 32]; 'y' [N, 1] with 10 meaning digit 0."""
    import scipy.io  # heavy, and needed only for SVHN

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise DataError(f"data.root: corrupt SVHN file {path} ({one_line(exc)})") from exc
    if "X" not in mat or "y" not in mat:
        raise DataError(f"data.root: corrupt SVHN file {path}: needs variables 'X' and 'y'")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise DataError(
            f"data.root: corrupt SVHN file {path}: X must be uint8 [H, W, 3, N] with N labels "
            f"(got {x.dtype} {x.shape}, {len(y)} labels)"
        )
    y[y == 10] = 0
    return x.transpose(3, 2, 0, 1), y


def load_svhn(root: Path, allow_download: bool) -> ImageDataset:
    """SVHN cropped digits (train + test, no 'extra') from torchvision's layout."""
    for split, fname in _SVHN_FILES.items():
        if not (root / fname).is_file():
            def fetch(split: str = split) -> None:
                import torchvision.datasets  # heavy, and needed only to download

                torchvision.datasets.SVHN(str(root), split=split, download=True)

            download("SVHN", root, ", ".join(_SVHN_FILES.values()), allow_download, fetch)
            if not (root / fname).is_file():
                raise DataError(f"data.root: SVHN download finished but {root / fname} is missing")
    x_train, y_train = _read_svhn_mat(root / _SVHN_FILES["train"])
    x_test, y_test = _read_svhn_mat(root / _SVHN_FILES["test"])
    return from_arrays("svhn", x_train, y_train, x_test, y_test, [str(d) for d in range(10)])
