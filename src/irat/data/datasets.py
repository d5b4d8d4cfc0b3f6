"""Image classification data sets as whole uint8 tensors: one registry, one loader, one error type.

Every data set is returned as an :class:`ImageDataset` holding the *whole* train and test split as
contiguous ``uint8`` tensors in NCHW layout plus ``int64`` labels, so that training can move it to
the device once and augment with batched tensor ops (the airbench habit; see STYLE.md).

Supported names (``data.name``):

- ``fashion-mnist``: the system copy (Debian ``dataset-fashion-mnist`` in
  ``/usr/share/datasets/fashion-mnist``, overridable with ``IRAT_FMNIST_DIR``) or
  ``<root>/FashionMNIST/raw`` in torchvision's layout; idx files are parsed here.
- ``cifar10`` / ``cifar100``: torchvision's on-disk pickle batches under ``<root>``.
- ``svhn``: torchvision's ``train_32x32.mat`` / ``test_32x32.mat`` under ``<root>``.
- ``imagefolder:<dir>``: ``<dir>/{train,test}/<class>/<image>``; decoded once, then cached.

Downloads go through torchvision and only happen when files are missing and ``download`` is true.
Every problem raises :class:`irat.errors.DataError` with a one-line message naming the field.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irat.errors import DataError
from irat.files import atomic_torch_save

log = logging.getLogger(__name__)

__all__ = [
    "DATASETS",
    "FMNIST_ENV",
    "FMNIST_SYSTEM_DIR",
    "ImageDataset",
    "dataset_names",
    "load_dataset",
    "load_image_folder",
]

FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_ENV = "IRAT_FMNIST_DIR"
IMAGEFOLDER_PREFIX = "imagefolder:"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp", ".gif")
CACHE_NAME = ".irat-cache.pt"
CACHE_VERSION = 1


# --------------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------------


class ImageShape:
    """K, C and (H, W) of anything holding `classes` and an NCHW `x_train`."""

    classes: list[str]
    x_train: torch.Tensor

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """C, the number of image channels (1 for grayscale, 3 for RGB)."""
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every image."""
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])


@dataclass
class ImageDataset(ImageShape):
    """A labelled image data set held entirely in memory.

    ``x_*`` are contiguous ``uint8`` tensors ``[N, C, H, W]`` (pixel values 0..255; the trainer
    scales them to [0, 1]); ``y_*`` are ``int64`` tensors ``[N]`` with values in ``[0, K)``,
    ``K = len(classes)``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]

    def validate(self) -> None:
        """Check the invariants above; raise :class:`DataError` naming the first violation."""
        where = f"data set {self.name!r}"
        if self.num_classes < 1:
            raise DataError(f"data.name: {where} has no classes")
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise DataError(f"data.name: {where}: x_{split}/y_{split} must be torch tensors")
            if x.dtype != torch.uint8:
                raise DataError(f"data.name: {where}: x_{split} must be uint8 (got {x.dtype})")
            if x.dim() != 4:
                raise DataError(f"data.name: {where}: x_{split} must be 4-D [N, C, H, W] (got shape {tuple(x.shape)})")
            if y.dtype != torch.int64:
                raise DataError(f"data.name: {where}: y_{split} must be int64 (got {y.dtype})")
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise DataError(
                    f"data.name: {where}: y_{split} must have shape [{x.shape[0]}] to match x_{split} "
                    f"(got {tuple(y.shape)})"
                )
            if x.shape[0] == 0:
                raise DataError(f"data.name: {where}: the {split} split is empty")
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= self.num_classes:
                raise DataError(
                    f"data.name: {where}: y_{split} must lie in [0, {self.num_classes}) (got min {lo}, max {hi})"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"data.name: {where}: train images are {tuple(self.x_train.shape[1:])} (C, H, W) but test images "
                f"are {tuple(self.x_test.shape[1:])}"
            )
        if self.in_channels not in (1, 3):
            raise DataError(f"data.name: {where}: images must have 1 or 3 channels (got {self.in_channels})")


def _one_line(exc: BaseException) -> str:
    """``type: message`` of an exception, squeezed onto one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _dataset(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             classes: list[str]) -> ImageDataset:
    """Wrap NCHW uint8 / integer numpy arrays as a validated :class:`ImageDataset`."""
    ds = ImageDataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.uint8)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.uint8)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_test, dtype=np.int64)),
        classes=list(classes),
    )
    ds.validate()
    return ds


def _fetch(what: str, root: Path, expected: str, download: bool, fetch: Callable[[], Any]) -> None:
    """Run torchvision's download code ``fetch`` for missing files, or explain why it cannot."""
    if not download:
        raise DataError(
            f"data.root: {what} files missing under {root} (expected {expected}) and download is off"
        )
    log.info("downloading %s to %s", what, root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fetch()
    except DataError:
        raise
    except Exception as exc:  # no internet, bad checksum, full disk: all reported the same way
        raise DataError(
            f"data.root: {what} files missing under {root} (expected {expected}) and the download failed "
            f"({_one_line(exc)})"
        ) from exc


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (idx files)
# --------------------------------------------------------------------------------------------

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
        raise DataError(f"data.root: cannot read {path} ({_one_line(exc)})") from exc
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


def _load_fashion_mnist(root: Path, download: bool) -> ImageDataset:
    """Fashion-MNIST as [N, 1, 28, 28] uint8: system copy first, then ``<root>/FashionMNIST/raw``."""
    files = _find_idx_files(fmnist_system_dir())
    if files is None:
        raw_dir = root / "FashionMNIST" / "raw"
        files = _find_idx_files(raw_dir)
        if files is None:
            def fetch() -> None:
                import torchvision.datasets

                for train in (True, False):
                    torchvision.datasets.FashionMNIST(str(root), train=train, download=True)

            expected = "FashionMNIST/raw/" + ", ".join(f"{b}[.gz]" for b in _FMNIST_FILES.values())
            _fetch(f"Fashion-MNIST (no system copy in {fmnist_system_dir()}; set {FMNIST_ENV})",
                   root, expected, download, fetch)
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
    return _dataset("fashion-mnist", *split["train"], *split["test"], classes=FMNIST_CLASSES)


# --------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (pickle batches)
# --------------------------------------------------------------------------------------------


def _unpickle(path: Path) -> dict[str, Any]:
    """Load one CIFAR pickle and normalize its keys to ``str`` (files are written with bytes keys)."""
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as exc:  # truncated file, not a pickle, ...
        raise DataError(f"data.root: corrupt CIFAR file {path} ({_one_line(exc)})") from exc
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


def _load_cifar(root: Path, download: bool, *, hundred: bool) -> ImageDataset:
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
            import torchvision.datasets

            cls = torchvision.datasets.CIFAR100 if hundred else torchvision.datasets.CIFAR10
            cls(str(root), train=True, download=True)

        _fetch(what, root, expected, download, fetch)
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise DataError(f"data.root: {what} download finished but {folder} lacks {', '.join(missing)}")
    x_train, y_train = _cifar_batches([folder / n for n in train_names], label_key)
    x_test, y_test = _cifar_batches([folder / n for n in test_names], label_key)
    classes = _label_names(folder / meta_name, names_key)
    return _dataset(name, x_train, y_train, x_test, y_test, classes)


def _load_cifar10(root: Path, download: bool) -> ImageDataset:
    return _load_cifar(root, download, hundred=False)


def _load_cifar100(root: Path, download: bool) -> ImageDataset:
    return _load_cifar(root, download, hundred=True)


# --------------------------------------------------------------------------------------------
# SVHN (.mat files)
# --------------------------------------------------------------------------------------------

_SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN .mat: 'X' [32, 32, 3, N] uint8 -> [N, 3, 32, 32]; 'y' [N, 1] with 10 meaning digit 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise DataError(f"data.root: corrupt SVHN file {path} ({_one_line(exc)})") from exc
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


def _load_svhn(root: Path, download: bool) -> ImageDataset:
    """SVHN cropped digits (train + test, no 'extra') from torchvision's layout."""
    for split, fname in _SVHN_FILES.items():
        if not (root / fname).is_file():
            def fetch(split: str = split) -> None:
                import torchvision.datasets

                torchvision.datasets.SVHN(str(root), split=split, download=True)

            _fetch("SVHN", root, ", ".join(_SVHN_FILES.values()), download, fetch)
            if not (root / fname).is_file():
                raise DataError(f"data.root: SVHN download finished but {root / fname} is missing")
    x_train, y_train = _read_svhn_mat(root / _SVHN_FILES["train"])
    x_test, y_test = _read_svhn_mat(root / _SVHN_FILES["test"])
    return _dataset("svhn", x_train, y_train, x_test, y_test, [str(d) for d in range(10)])


# --------------------------------------------------------------------------------------------
# Image folders (decoded once, cached)
# --------------------------------------------------------------------------------------------


def _list_split(directory: Path, split: str) -> tuple[list[str], list[Path], np.ndarray]:
    """Classes (sorted subdirectory names), image files and their class indices.

    The files are interleaved over the classes (the first of every class, then the second, …; sorted
    names within a class), so that "the first N test examples" (`irat eval --n-examples N`) cover every
    class rather than the first one alone."""
    split_dir = directory / split
    if not split_dir.is_dir():
        raise DataError(
            f"data.name: image folder {directory} has no {split}/ directory "
            f"(expected {directory}/train/<class>/<image> and {directory}/test/<class>/<image>)"
        )
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data.name: image folder {split_dir} has no class subdirectories")
    files: list[Path] = []
    counts: list[int] = []
    for cls in classes:
        found = []
        for dirpath, dirnames, filenames in os.walk(split_dir / cls, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(Path(dirpath) / f for f in filenames
                         if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
        found.sort()
        files.extend(found)
        counts.append(len(found))
    if not files:
        raise DataError(f"data.name: image folder {split_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), counts)
    rank_in_class = np.concatenate([np.arange(c) for c in counts])
    order = np.lexsort((labels, rank_in_class))  # by rank within the class, then by class
    return classes, [files[i] for i in order], labels[order]


def _fingerprint(directory: Path, files: list[Path]) -> str:
    """SHA-256 over (relative path, size, mtime_ns) of every image: changes when any file does."""
    h = hashlib.sha256(f"irat-imagefolder-v{CACHE_VERSION}\n".encode())
    for path in files:
        st = path.stat()
        h.update(f"{path.relative_to(directory).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _decode_image(path: Path, size: tuple[int, int], out: np.ndarray) -> bool:
    """Decode one image into ``out`` ([H, W, 3] uint8); return whether it was grayscale ('L').

    ``size`` is the (width, height) every image must have.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.size != size:
                raise DataError(
                    f"data.name: image {path} is {im.size[0]}x{im.size[1]} but the folder's images are "
                    f"{size[0]}x{size[1]} (all images must share one size)"
                )
            gray = im.mode == "L"
            arr = np.asarray(im if gray else im.convert("RGB"))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"data.name: cannot decode image {path} ({_one_line(exc)})") from exc
    out[...] = arr[..., None] if gray else arr
    return gray


def _decode_all(files: list[Path]) -> tuple[np.ndarray, bool]:
    """Decode images in parallel threads into one [N, H, W, 3] array; also whether all were grayscale."""
    from PIL import Image

    try:
        with Image.open(files[0]) as im:
            size = im.size
    except Exception as exc:
        raise DataError(f"data.name: cannot decode image {files[0]} ({_one_line(exc)})") from exc
    out = np.empty((len(files), size[1], size[0], 3), dtype=np.uint8)
    workers = min(16, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        gray = list(pool.map(lambda i: _decode_image(files[i], size, out[i]), range(len(files))))
    return out, all(gray)


def _cache_paths(directory: Path, root: Path) -> list[Path]:
    """Where the decoded cache may live: inside the folder, else under ``<root>/.irat-cache``."""
    resolved = directory.resolve()
    tag = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.name) or "root"
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return [directory / CACHE_NAME, root / ".irat-cache" / f"{tag}-{digest}.pt"]


def _read_cache(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The cached tensors at ``path`` if it exists and matches ``fingerprint``; else None."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a stale or torn cache is rebuilt, never fatal
        log.warning("ignoring unreadable image-folder cache %s (%s)", path, _one_line(exc))
        return None
    if not isinstance(blob, dict) or blob.get("version") != CACHE_VERSION or blob.get("fingerprint") != fingerprint:
        return None
    return blob


def load_image_folder(directory: str | Path, root: str | Path = "data") -> ImageDataset:
    """An image folder ``<dir>/{train,test}/<class>/<image>`` as an :class:`ImageDataset`.

    Classes are the sorted subdirectory names of ``train`` (``test`` must have the same set).
    Images are decoded to RGB, or to one channel when every image is grayscale ('L'); all must
    share one size. The decoded tensors are cached in ``<dir>/.irat-cache.pt`` (or, if the folder
    is read-only, ``<root>/.irat-cache/<name>-<hash>.pt``) keyed by a fingerprint of every file's
    relative path, size and mtime, so later loads skip decoding until a file changes.
    """
    directory = Path(directory).expanduser()
    root = Path(root)
    name = f"{IMAGEFOLDER_PREFIX}{directory}"
    if not directory.is_dir():
        raise DataError(
            f"data.name: image folder {directory} not found "
            f"(expected {directory}/train/<class>/<image> and {directory}/test/<class>/<image>)"
        )
    classes, train_files, y_train = _list_split(directory, "train")
    test_classes, test_files, y_test_local = _list_split(directory, "test")
    if test_classes != classes:
        missing = sorted(set(classes) - set(test_classes))
        extra = sorted(set(test_classes) - set(classes))
        raise DataError(
            f"data.name: image folder {directory}: test classes differ from train classes "
            f"(missing in test: {missing}, not in train: {extra})"
        )
    fingerprint = _fingerprint(directory, train_files + test_files)
    candidates = _cache_paths(directory, root)
    for path in candidates:
        blob = _read_cache(path, fingerprint)
        if blob is not None:
            log.info("image folder %s: using cache %s", directory, path)
            ds = ImageDataset(name, blob["x_train"], blob["y_train"], blob["x_test"], blob["y_test"],
                              list(blob["classes"]))
            ds.validate()
            return ds

    log.info("image folder %s: decoding %d images", directory, len(train_files) + len(test_files))
    pixels, all_gray = _decode_all(train_files + test_files)
    pixels = pixels[..., :1] if all_gray else pixels
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    n_train = len(train_files)
    ds = ImageDataset(
        name=name,
        x_train=x[:n_train].clone(),
        y_train=torch.from_numpy(y_train),
        x_test=x[n_train:].clone(),
        y_test=torch.from_numpy(y_test_local),
        classes=classes,
    )
    ds.validate()
    blob = {
        "version": CACHE_VERSION, "fingerprint": fingerprint, "classes": classes,
        "x_train": ds.x_train, "y_train": ds.y_train, "x_test": ds.x_test, "y_test": ds.y_test,
    }
    for path in candidates:
        try:
            atomic_torch_save(path, blob)
        except OSError as exc:
            log.info("cannot write image-folder cache %s (%s)", path, _one_line(exc))
            continue
        log.info("image folder %s: cached decoded tensors in %s", directory, path)
        break
    else:
        log.warning("image folder %s: no writable cache location; it will be decoded again next time", directory)
    return ds


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

DATASETS: dict[str, Callable[[Path, bool], ImageDataset]] = {
    "fashion-mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "svhn": _load_svhn,
}


def dataset_names() -> list[str]:
    """Every accepted ``data.name``: the registry, then the ``imagefolder:<dir>`` pattern."""
    return [*DATASETS, f"{IMAGEFOLDER_PREFIX}<dir>"]


def load_dataset(name: str, root: str | Path = "data", download: bool = True) -> ImageDataset:
    """Load the data set ``name`` (see :func:`dataset_names`) with files under ``root``.

    ``download`` lets torchvision fetch missing files; otherwise missing files raise
    :class:`DataError`. For ``imagefolder:<dir>``, ``<dir>`` is relative to the working directory
    and ``root`` only hosts the decode cache when ``<dir>`` is read-only.
    """
    if name.startswith(IMAGEFOLDER_PREFIX):
        directory = name[len(IMAGEFOLDER_PREFIX):]
        if not directory:
            raise DataError(f"data.name: '{IMAGEFOLDER_PREFIX}' needs a directory, e.g. '{IMAGEFOLDER_PREFIX}path/to/images'")
        return load_image_folder(directory, root)
    loader = DATASETS.get(name)
    if loader is None:
        raise DataError(f"data.name: unknown data set {name!r}; allowed: {', '.join(dataset_names())}")
    return loader(Path(root), download)
