"""Fashion-MNIST from idx files: the system copy, else torchvision's layout under ``<root>``."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from irat.errors import DataError

from .image_dataset import ImageDataset, download, from_arrays, one_line

FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_ENV = "IRAT_FMNIST_DIR"
FMNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_FMNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an idx file (optionally gzipped): big-endian int32 magic, int32 dims, then uint8 data.

    ``magic`` is 2051 for images (3 dims: N, H, W) and 2049 for labels (1 dim: N).
    """
    ndim = 3 if magic == _IDX_IMAGES_MAGIC else 1
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = bytearray(f.read())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"data.root: cannot read {path} ({one_line(exc)})") from exc
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise DataError(f"data.root: corrupt idx file {path}: only {len(raw)} bytes")
    fields = np.frombuffer(raw, dtype=">i4", count=1 + ndim)
    if int(fields[0]) != magic:
        raise DataError(f"data.root: corrupt idx file {path}: magic number {int(fields[0])}, expected {magic}")
    dims = tuple(int(d) for d in fields[1:])
    if min(dims) < 0 or len(raw) != header + int(np.prod(dims)):
        raise DataError(
            f"data.root: corrupt idx file {path}: header says {dims} but holds {len(raw) - header} data bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four Fashion-MNIST files in ``directory`` (plain or ``.gz``), or None if any is missing."""
    found: dict[str, Path] = {}
    for key, base in _FMNIST_FILES.items():
        for candidate in (directory / f"{base}.gz", directory / base):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def fmnist_system_dir() -> Path:
    """The system Fashion-MNIST directory: ``$IRAT_FMNIST_DIR`` if set, else the Debian path."""
    env = os.environ.get(FMNIST_ENV)
    return Path(env) if env else FMNIST_SYSTEM_DIR


def load_fashion_mnist(root: Path, allow_download: bool) -> ImageDataset:
    """Fashion-MNIST as [N, 1, 28, 28] uint8: system copy first, then ``<root>/FashionMNIST/raw``."""
    files = _find_idx_files(fmnist_system_dir())
    if files is None:
        raw_dir = root / "FashionMNIST" / "raw"
        files = _find_idx_files(raw_dir)
        if files is None:
            def fetch() -> None:
                import torchvision.datasets  # heavy, and needed only to download

                for train in (True, False):
                    torchvision.datasets.FashionMNIST(str(root), train=train, download=True)

            expected = "FashionMNIST/raw/" + ", ".join(f"{b}[.gz]" for b in _FMNIST_FILES.values())
            download(f"Fashion-MNIST (no system copy in {fmnist_system_dir()}; set {FMNIST_ENV})",
                     root, expected, allow_download, fetch)
            files = _find_idx_files(raw_dir)
            if files is None:
                raise DataError(f"data.root: Fashion-MNIST download finished but {raw_dir} lacks the idx files")
    split = {}
    for s in ("train", "test"):
        x = _read_idx(files[f"{s}_images"], _IDX_IMAGES_MAGIC)
        y = _read_idx(files[f"{s}_labels"], _IDX_LABELS_MAGIC)
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"data.root: {files[f'{s}_images']} holds {x.shape[0]} images but "
                f"{files[f'{s}_labels']} holds {y.shape[0]} labels"
            )
        split[s] = (x[:, None], y)
    return from_arrays("fashion-mnist", *split["train"], *split["test"], classes=FMNIST_CLASSES)
