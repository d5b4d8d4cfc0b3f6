"""The container every data set loads into — the whole split as one uint8 tensor — and the two
helpers every source shares: one-line error text and torchvision downloads of missing files."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irat.errors import DataError

log = logging.getLogger(__name__)


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


def one_line(exc: BaseException) -> str:
    """``type: message`` of an exception, squeezed onto one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def from_arrays(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
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


def download(what: str, root: Path, expected: str, allowed: bool, fetch: Callable[[], Any]) -> None:
    """Run torchvision's download code ``fetch`` for missing files, or explain why it cannot."""
    if not allowed:
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
            f"({one_line(exc)})"
        ) from exc
