"""Image classification data sets as whole uint8 tensors: one registry, one loader, one error type.

Every data set is returned as an :class:`ImageDataset` holding the *whole* train and test split as
contiguous ``uint8`` tensors in NCHW layout plus ``int64`` labels, so that training can move it to
the device once and augment with batched tensor ops (the airbench habit; see STYLE.md).

Supported names (``data.name``), one module each:

- ``fashion-mnist`` (:mod:`.fmnist`): the system copy (Debian ``dataset-fashion-mnist`` in
  ``/usr/share/datasets/fashion-mnist``, overridable with ``IRAT_FMNIST_DIR``) or
  ``<root>/FashionMNIST/raw`` in torchvision's layout; idx files are parsed here.
- ``cifar10`` / ``cifar100`` (:mod:`.cifar`): torchvision's on-disk pickle batches under ``<root>``.
- ``svhn`` (:mod:`.svhn`): torchvision's ``train_32x32.mat`` / ``test_32x32.mat`` under ``<root>``.
- ``imagefolder:<dir>`` (:mod:`.imagefolder`): ``<dir>/{train,test}/<class>/<image>``; decoded
  once, then cached.

Downloads go through torchvision and only happen when files are missing and ``download`` is true.
Every problem raises :class:`irat.errors.DataError` with a one-line message naming the field.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from irat.errors import DataError

from .cifar import load_cifar10, load_cifar100
from .fmnist import FMNIST_ENV, FMNIST_SYSTEM_DIR, load_fashion_mnist
from .image_dataset import ImageDataset, ImageShape
from .imagefolder import IMAGEFOLDER_PREFIX, load_image_folder
from .svhn import load_svhn

__all__ = [
    "DATASETS",
    "FMNIST_ENV",
    "FMNIST_SYSTEM_DIR",
    "ImageDataset",
    "ImageShape",
    "dataset_names",
    "load_dataset",
    "load_image_folder",
]

DATASETS: dict[str, Callable[[Path, bool], ImageDataset]] = {
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "svhn": load_svhn,
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
