"""Image folders ``<dir>/{train,test}/<class>/<image>``: decoded once in threads, then cached as tensors."""
from __future__ import annotations

import hashlib
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from irat.errors import DataError
from irat.files import atomic_torch_save

from .image_dataset import ImageDataset, one_line

log = logging.getLogger(__name__)

IMAGEFOLDER_PREFIX = "imagefolder:"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp", ".gif")
CACHE_NAME = ".irat-cache.pt"
CACHE_VERSION = 1


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
        raise DataError(f"data.name: cannot decode image {path} ({one_line(exc)})") from exc
    out[...] = arr[..., None] if gray else arr
    return gray


def _decode_all(files: list[Path]) -> tuple[np.ndarray, bool]:
    """Decode images in parallel threads into one [N, H, W, 3] array; also whether all were grayscale."""
    try:
        with Image.open(files[0]) as im:
            size = im.size
    except Exception as exc:
        raise DataError(f"data.name: cannot decode image {files[0]} ({one_line(exc)})") from exc
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
        log.warning("ignoring unreadable image-folder cache %s (%s)", path, one_line(exc))
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
            log.info("cannot write image-folder cache %s (%s)", path, one_line(exc))
            continue
        log.info("image folder %s: cached decoded tensors in %s", directory, path)
        break
    else:
        log.warning("image folder %s: no writable cache location; it will be decoded again next time", directory)
    return ds
