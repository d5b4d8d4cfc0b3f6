"""Splits and on-device batches: a seeded permutation, batched crop/flip, no per-image Python.

Randomness is derived from (seed, epoch, step), so a run resumed in the middle of an epoch draws
exactly the batches, augmentations and attack starts the uninterrupted run would have, and every
data-parallel rank draws the same global batch and takes its own slice of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from .. import seeds
from ..errors import ConfigError, DataError
from ..seeds import generator
from .datasets import ImageShape, dataset_names, load_dataset


def check_data_name(name: str) -> None:
    """Validate a data set name without loading it (raises ConfigError naming data.name)."""

    if name.startswith("imagefolder:"):
        if not name[len("imagefolder:"):]:
            raise ConfigError("data.name", "imagefolder:<dir> with a directory", name)
        return
    if name not in dataset_names():
        raise ConfigError("data.name", "one of: fashion-mnist, cifar10, cifar100, svhn, imagefolder:<dir>", name)


@dataclass
class Splits(ImageShape):
    """uint8 images [N, C, H, W] and int64 labels for train / val / test, on one device."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: list[str]
    name: str
    x_extra: Tensor | None = None  # data.extra: uint8 images and labels mixed into every training batch
    y_extra: Tensor | None = None


def load_extra(path: str, splits: Splits) -> tuple[Tensor, Tensor]:
    """data.extra: an .npz with `images` (uint8, N×H×W×C or N×C×H×W) and `labels` (integers < K) that
    must fit the training set's channels, size and classes."""
    try:
        with np.load(path) as f:
            images, labels = f["images"], f["labels"]
    except FileNotFoundError:
        raise DataError(f"data.extra: file not found: {path}") from None
    except (KeyError, ValueError, OSError) as e:
        raise DataError(f"data.extra: {path} is not an .npz with arrays 'images' and 'labels' "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    c, (h, w) = splits.in_channels, splits.image_size
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != labels.shape[0] or labels.ndim != 1:
        raise DataError(f"data.extra: {path}: images must be uint8 N×H×W×C or N×C×H×W with one label each "
                        f"(got images {images.dtype} {images.shape}, labels {labels.shape})")
    if images.shape[1:] == (h, w, c):
        images = images.transpose(0, 3, 1, 2)
    if images.shape[1:] != (c, h, w):
        raise DataError(f"data.extra: {path}: images are {images.shape[1:]}, the training set's are {c}×{h}×{w} "
                        f"(or {h}×{w}×{c})")
    if labels.size and (labels.min() < 0 or labels.max() >= splits.num_classes):
        raise DataError(f"data.extra: {path}: labels must lie in 0 … {splits.num_classes - 1}")
    dev = splits.x_train.device
    return torch.from_numpy(np.ascontiguousarray(images)).to(dev), torch.from_numpy(labels.astype(np.int64)).to(dev)


def make_splits(ds, seed: int, train_subset: int | None = None, val_size: int = 0,
                device: torch.device | str = "cpu") -> Splits:
    """Hold out a seeded validation split, then take a seeded training subset; move to `device`."""
    ds.validate()
    n = ds.x_train.shape[0]
    order = torch.randperm(n, generator=generator("cpu", seed, seeds.VALIDATION_SPLIT))
    if val_size >= n:
        raise ConfigError("data.val_size", f"smaller than the training set ({n})", val_size)
    val_idx, train_idx = order[:val_size].sort().values, order[val_size:]
    if train_subset is not None:
        if train_subset > train_idx.numel():
            raise ConfigError("data.train_subset", f"at most {train_idx.numel()} (training examples left)",
                              train_subset)
        pick = torch.randperm(train_idx.numel(), generator=generator("cpu", seed, seeds.TRAIN_SUBSET))[:train_subset]
        train_idx = train_idx[pick]
    train_idx = train_idx.sort().values
    to = dict(device=device)
    return Splits(
        x_train=ds.x_train[train_idx].contiguous().to(**to), y_train=ds.y_train[train_idx].to(**to),
        x_val=ds.x_train[val_idx].contiguous().to(**to), y_val=ds.y_train[val_idx].to(**to),
        x_test=ds.x_test.to(**to), y_test=ds.y_test.to(**to), classes=list(ds.classes), name=ds.name)


def load_splits(cfg, device: torch.device) -> Splits:

    ds = load_dataset(cfg.data.name, cfg.data.root)
    storage = device if cfg.data.on_device else torch.device("cpu")
    splits = make_splits(ds, cfg.seed, cfg.data.train_subset, cfg.data.val_size, storage)
    if cfg.data.extra:
        splits.x_extra, splits.y_extra = load_extra(cfg.data.extra, splits)
    return splits


def default_augment(splits: Splits) -> bool:
    """Crop + flip for 32×32 RGB (CIFAR-like) sets; none for SVHN, Fashion-MNIST and others."""
    return splits.in_channels == 3 and splits.image_size == (32, 32) and splits.name != "svhn"


def to_float(x: Tensor, channels_last: bool = False) -> Tensor:
    """uint8 [0, 255] → float [0, 1]."""
    out = x.float().div_(255.0)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def random_crop_flip(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """Batched random crop with zero padding and horizontal flip, as tensor ops on x's device."""
    b, c, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (2, b), generator=g, device=dev)
    flip = torch.rand(b, generator=g, device=dev) < 0.5
    rows = off[0][:, None] + torch.arange(h, device=dev)[None, :]
    cols = off[1][:, None] + torch.arange(w, device=dev)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


@dataclass
class Batch:
    step: int
    x: Tensor  # float [0, 1], this rank's slice
    y: Tensor
    global_size: int  # size of the global batch (all ranks)
    noise: Tensor  # this rank's slice of the global attack-start noise, U(−1, 1) or N(0, 1)


def steps_per_epoch(n: int, batch_size: int, extra_per_batch: int = 0) -> int:
    """Global batches in an epoch: one pass over the n training images, batch_size − extra_per_batch a batch."""
    real = batch_size - extra_per_batch
    return (n + real - 1) // real


def epoch_batches(x: Tensor, y: Tensor, *, batch_size: int, seed: int, epoch: int, device: torch.device,
                  augment: bool, start_step: int = 0, rank: int = 0, world: int = 1,
                  noise_kind: str = "uniform", channels_last: bool = False,
                  extra: tuple[Tensor, Tensor] | None = None, extra_per_batch: int = 0) -> Iterator[Batch]:
    """The batches of one epoch from `start_step` on: global batch b of the seeded permutation,
    augmented with generators seeded by (seed, epoch, b), sliced to this rank.

    With `extra` (data.extra), every global batch is batch_size − extra_per_batch training images followed
    by extra_per_batch extra images, taken in a seeded per-epoch order of the extra set (cycled)."""
    n = x.shape[0]
    real = batch_size - extra_per_batch
    # the permutation goes to the data's device once per epoch: slicing it per step then needs no
    # (synchronous) host-to-device copy of indices
    perm = torch.randperm(n, generator=generator("cpu", seed, seeds.EPOCH_ORDER, epoch)).to(x.device)
    perm_y = perm if y.device == x.device else perm.to(y.device)
    if extra is not None and extra_per_batch:
        n_extra = extra[0].shape[0]
        extra_perm = torch.randperm(n_extra, generator=generator("cpu", seed, seeds.EXTRA_ORDER, epoch))
        extra_perm = extra_perm.to(extra[0].device)
    stream = x.device.type == "cpu" and device.type == "cuda"  # data.on_device=false: pinned async copies
    for step in range(start_step, steps_per_epoch(n, batch_size, extra_per_batch)):
        sl = slice(step * real, (step + 1) * real)
        xb_u8, yb = x[perm[sl]], y[perm_y[sl]]
        if extra is not None and extra_per_batch:
            pick = extra_perm[torch.arange(step * extra_per_batch, (step + 1) * extra_per_batch,
                                           device=extra_perm.device) % n_extra]
            xb_u8 = torch.cat([xb_u8, extra[0][pick].to(xb_u8.device)])
            yb = torch.cat([yb, extra[1][pick].to(yb.device)])
        gsize = yb.shape[0]
        lo, hi = (gsize * rank) // world, (gsize * (rank + 1)) // world
        if stream:
            xb_u8, yb = xb_u8.pin_memory(), yb.pin_memory()
        xb_u8, yb = xb_u8.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        if augment:
            xb_u8 = random_crop_flip(xb_u8, generator(device, seed, seeds.AUGMENTATION, epoch, step))
        xb = to_float(xb_u8, channels_last)
        g = generator(device, seed, seeds.ATTACK_START, epoch, step)
        if noise_kind == "normal":
            noise = torch.randn(xb.shape, generator=g, device=device)
        else:
            noise = torch.rand(xb.shape, generator=g, device=device).mul_(2).sub_(1)
        if channels_last:
            noise = noise.contiguous(memory_format=torch.channels_last)
        yield Batch(step, xb[lo:hi], yb[lo:hi], gsize, noise[lo:hi])


def eval_batches(x: Tensor, y: Tensor, batch_size: int, device: torch.device, rank: int = 0, world: int = 1,
                 channels_last: bool = False) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Contiguous shards for evaluation: yields (indices, x float, y) of this rank's share."""
    n = x.shape[0]
    lo, hi = (n * rank) // world, (n * (rank + 1)) // world
    for start in range(lo, hi, batch_size):
        stop = min(start + batch_size, hi)
        idx = torch.arange(start, stop)
        yield idx, to_float(x[start:stop].to(device, non_blocking=True), channels_last), y[start:stop].to(device)
