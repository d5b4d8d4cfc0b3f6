"""Data loading: every on-disk format round-trips exact values, and every problem names its field.

Each test writes tiny files in the real format (idx.gz, CIFAR pickles, SVHN .mat, PNG folders)
into tmp_path; nothing is downloaded.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from irat.data import DATASETS, ImageDataset, dataset_names, load_dataset
from irat.data import datasets as ds_mod
from irat.data import imagefolder as folder_mod
from irat.errors import DataError

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _no_system_fmnist(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default no system Fashion-MNIST copy exists (tests that want one set the env var)."""
    monkeypatch.setenv(ds_mod.FMNIST_ENV, str(tmp_path_factory.mktemp("none") / "absent"))


# ---------------------------------------------------------------------------- writers


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = True) -> None:
    """Write an idx file: big-endian int32 magic, int32 dims, uint8 data."""
    payload = struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_fmnist(directory: Path, n_train: int = 7, n_test: int = 5, compress: bool = True) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": RNG.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": RNG.integers(0, 10, n_test, dtype=np.uint8),
    }
    for base, arr in arrays.items():
        magic = 2051 if arr.ndim == 3 else 2049
        write_idx(directory / (base + (".gz" if compress else "")), arr, magic, compress)
    return arrays


def write_pickle(path: Path, obj: dict) -> None:
    """CIFAR files are Python-2 pickles with bytes keys."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root: Path, per_batch: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        data = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, 10, per_batch)]
        write_pickle(folder / f"data_batch_{i}", {b"batch_label": b"x", b"data": data, b"labels": labels})
        xs.append(data)
        ys.extend(labels)
    x_test = RNG.integers(0, 256, (4, 3072), dtype=np.uint8)
    y_test = [int(v) for v in RNG.integers(0, 10, 4)]
    write_pickle(folder / "test_batch", {b"data": x_test, b"labels": y_test})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    write_pickle(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return np.concatenate(xs), np.array(ys), x_test, np.array(y_test)


def make_png_folder(directory: Path, spec: dict[str, dict[str, int]], size: tuple[int, int] = (5, 4),
                    mode: str = "RGB") -> dict[str, np.ndarray]:
    """Write ``spec[split][class]`` random PNGs of ``size`` (W, H); return the expected pixels per path."""
    from PIL import Image

    pixels = {}
    for split, classes in spec.items():
        for cls, n in classes.items():
            (directory / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
                arr = RNG.integers(0, 256, shape, dtype=np.uint8)
                path = directory / split / cls / f"img{i:02d}.png"
                Image.fromarray(arr, mode=mode).save(path)
                pixels[str(path)] = arr
    return pixels


def forbid_decode(*args: object) -> bool:
    """Stands in for the image decoder where a valid cache must make decoding unnecessary."""
    raise AssertionError("decoded although the cache is valid")


# ---------------------------------------------------------------------------- registry / container


def test_names_and_registry() -> None:
    assert dataset_names() == ["fashion-mnist", "cifar10", "cifar100", "svhn", "imagefolder:<dir>"]
    assert set(DATASETS) == {"fashion-mnist", "cifar10", "cifar100", "svhn"}


def test_unknown_name_lists_allowed() -> None:
    with pytest.raises(DataError) as err:
        load_dataset("mnist-ish", download=False)
    msg = str(err.value)
    assert msg.startswith("data.name: unknown data set 'mnist-ish'; allowed: ")
    assert "fashion-mnist, cifar10, cifar100, svhn, imagefolder:<dir>" in msg and "\n" not in msg


def test_validate_names_the_problem() -> None:
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    good = ImageDataset("t", x, y, x.clone(), y.clone(), ["a", "b"])
    good.validate()
    assert (good.num_classes, good.in_channels, good.image_size) == (2, 1, (8, 8))
    cases = {
        "uint8": ImageDataset("t", x.float(), y, x, y, ["a", "b"]),
        "[0, 2)": ImageDataset("t", x, y + 1, x, y, ["a", "b"]),
        "int64": ImageDataset("t", x, y.int(), x, y, ["a", "b"]),
        "shape [4]": ImageDataset("t", x, y[:3], x, y, ["a", "b"]),
        "4-D": ImageDataset("t", x[:, 0], y, x, y, ["a", "b"]),
        "test images": ImageDataset("t", x, y, torch.zeros(4, 1, 9, 8, dtype=torch.uint8), y, ["a", "b"]),
    }
    for needle, bad in cases.items():
        with pytest.raises(DataError, match="data.name") as err:
            bad.validate()
        assert needle in str(err.value)


# ---------------------------------------------------------------------------- Fashion-MNIST


@pytest.mark.parametrize("compress", [True, False])
def test_fmnist_system_dir_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
    arrays = write_fmnist(tmp_path / "sys", compress=compress)
    monkeypatch.setenv(ds_mod.FMNIST_ENV, str(tmp_path / "sys"))
    ds = load_dataset("fashion-mnist", root=tmp_path / "unused", download=False)
    assert ds.x_train.shape == (7, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.x_train.is_contiguous() and ds.x_test.is_contiguous()
    assert np.array_equal(ds.x_train[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(ds.x_test[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert ds.classes[0] == "T-shirt/top" and ds.num_classes == 10


def test_fmnist_torchvision_layout_under_root(tmp_path: Path) -> None:
    arrays = write_fmnist(tmp_path / "FashionMNIST" / "raw", n_train=3, n_test=2)
    ds = load_dataset("fashion-mnist", root=tmp_path, download=False)
    assert np.array_equal(ds.x_test[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])


def test_fmnist_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^data\.root: .*missing.*download is off") as err:
        load_dataset("fashion-mnist", root=tmp_path / "nowhere", download=False)
    assert "train-images-idx3-ubyte" in str(err.value)


def test_fmnist_corrupt_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fmnist(tmp_path)
    monkeypatch.setenv(ds_mod.FMNIST_ENV, str(tmp_path))
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(bad, np.zeros(7, np.uint8), magic=2051)  # wrong magic
    with pytest.raises(DataError, match="magic number 2051, expected 2049") as err:
        load_dataset("fashion-mnist", download=False)
    assert str(bad) in str(err.value)
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"data\.root: cannot read .*train-labels-idx1-ubyte\.gz"):
        load_dataset("fashion-mnist", download=False)
    write_idx(bad, np.zeros(6, np.uint8), magic=2049)  # 6 labels for 7 images
    with pytest.raises(DataError, match="7 images but .* 6 labels"):
        load_dataset("fashion-mnist", download=False)


def test_failed_download_is_wrapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("[Errno -3] Temporary failure\nin name resolution")

    for cls in ("FashionMNIST", "CIFAR10", "CIFAR100", "SVHN"):
        monkeypatch.setattr(torchvision.datasets, cls, offline)
    for name in ("fashion-mnist", "cifar10", "cifar100", "svhn"):
        with pytest.raises(DataError, match=r"^data\.root: .*missing.*the download failed") as err:
            load_dataset(name, root=tmp_path / name, download=True)
        assert "\n" not in str(err.value) and "name resolution" in str(err.value)


@pytest.mark.skipif(not (ds_mod.FMNIST_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="system Fashion-MNIST (dataset-fashion-mnist) not installed")
def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ds_mod.FMNIST_ENV)
    ds = load_dataset("fashion-mnist", root="/nonexistent", download=False)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.num_classes == 10 and ds.in_channels == 1 and ds.image_size == (28, 28)
    assert torch.equal(torch.bincount(ds.y_train, minlength=10), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(ds.y_test, minlength=10), torch.full((10,), 1000))
    assert 0 < ds.x_train.float().mean() < 255


# ---------------------------------------------------------------------------- CIFAR


def test_cifar10_roundtrip_and_channel_order(tmp_path: Path) -> None:
    x_train, y_train, x_test, y_test = write_cifar10(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.x_train.is_contiguous()
    assert np.array_equal(ds.y_train.numpy(), y_train) and np.array_equal(ds.y_test.numpy(), y_test)
    assert np.array_equal(ds.x_train.reshape(15, -1).numpy(), x_train)
    # row layout: 1024 R, 1024 G, 1024 B, each plane row-major -> pixel (row 2, col 5) of channel c
    for c in range(3):
        assert ds.x_train[7, c, 2, 5] == x_train[7, c * 1024 + 2 * 32 + 5]
        assert ds.x_test[3, c, 31, 0] == x_test[3, c * 1024 + 31 * 32]
    assert ds.classes[:2] == ["airplane", "automobile"] and ds.num_classes == 10


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    x_train = RNG.integers(0, 256, (6, 3072), dtype=np.uint8)
    x_test = RNG.integers(0, 256, (2, 3072), dtype=np.uint8)
    fine_train, fine_test = [0, 99, 5, 42, 7, 99], [99, 3]
    write_pickle(folder / "train", {b"data": x_train, b"fine_labels": fine_train, b"coarse_labels": [0] * 6})
    write_pickle(folder / "test", {b"data": x_test, b"fine_labels": fine_test, b"coarse_labels": [1] * 2})
    names = [f"class{i}".encode() for i in range(100)]
    write_pickle(folder / "meta", {b"fine_label_names": names, b"coarse_label_names": [b"c"] * 20})
    ds = load_dataset("cifar100", root=tmp_path, download=False)
    assert ds.num_classes == 100 and ds.classes[99] == "class99"
    assert ds.y_train.tolist() == fine_train and ds.y_test.tolist() == fine_test
    assert ds.x_test[1, 2, 0, 1] == x_test[1, 2048 + 1]  # blue plane, row 0, col 1


def test_cifar_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^data\.root: CIFAR-10 files missing .*data_batch_1\.\.5"):
        load_dataset("cifar10", root=tmp_path, download=False)
    with pytest.raises(DataError, match=r"^data\.root: CIFAR-100 files missing .*cifar-100-python"):
        load_dataset("cifar100", root=tmp_path, download=False)
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match=r"data\.root: corrupt CIFAR file .*data_batch_3"):
        load_dataset("cifar10", root=tmp_path, download=False)


# ---------------------------------------------------------------------------- SVHN


def test_svhn_mat_roundtrip_and_label_10(tmp_path: Path) -> None:
    import scipy.io

    x = {s: RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8) for s, n in (("train", 5), ("test", 3))}
    y = {"train": np.array([[10], [1], [9], [10], [3]], dtype=np.uint8), "test": np.array([[2], [10], [5]], np.uint8)}
    for s in ("train", "test"):
        scipy.io.savemat(tmp_path / f"{s}_32x32.mat", {"X": x[s], "y": y[s]})
    ds = load_dataset("svhn", root=tmp_path, download=False)
    assert ds.x_train.shape == (5, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_train.tolist() == [0, 1, 9, 0, 3] and ds.y_test.tolist() == [2, 0, 5]
    assert ds.classes == [str(d) for d in range(10)]
    # X[row, col, channel, n] -> x[n, channel, row, col]
    assert ds.x_train[4, 1, 3, 17] == x["train"][3, 17, 1, 4]
    assert np.array_equal(ds.x_test.numpy(), x["test"].transpose(3, 2, 0, 1))


def test_svhn_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^data\.root: SVHN files missing .*train_32x32\.mat"):
        load_dataset("svhn", root=tmp_path, download=False)


# ---------------------------------------------------------------------------- image folders


def test_imagefolder_roundtrip_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "imgs"
    spec = {"train": {"cat": 3, "dog": 2, "ant": 1}, "test": {"cat": 1, "dog": 1, "ant": 2}}
    pixels = make_png_folder(folder, spec)
    ds = load_dataset(f"imagefolder:{folder}", root=tmp_path / "data")
    assert ds.classes == ["ant", "cat", "dog"]
    assert ds.x_train.shape == (6, 3, 4, 5) and ds.x_test.shape == (4, 3, 4, 5)
    assert ds.y_train.tolist() == [0, 1, 2, 1, 2, 1] and ds.y_test.tolist() == [0, 1, 2, 0]
    assert ds.x_train.is_contiguous()
    # classes interleaved, names sorted within a class: ant/img00, cat/img00, dog/img00, cat/img01,
    # dog/img01, cat/img02; exact PNG pixels, HWC -> CHW
    expected = pixels[str(folder / "train" / "cat" / "img01.png")]
    assert np.array_equal(ds.x_train[3].permute(1, 2, 0).numpy(), expected)
    expected = pixels[str(folder / "test" / "dog" / "img00.png")]
    assert np.array_equal(ds.x_test[2].permute(1, 2, 0).numpy(), expected)
    cache = folder / ".irat-cache.pt"
    assert cache.is_file()

    # second load reads the cache: decoding would fail
    real_decode = folder_mod._decode_image
    monkeypatch.setattr(folder_mod, "_decode_image", forbid_decode)
    again = load_dataset(f"imagefolder:{folder}", root=tmp_path / "data")
    for a, b in ((again.x_train, ds.x_train), (again.y_train, ds.y_train), (again.x_test, ds.x_test)):
        assert torch.equal(a, b)
    assert again.classes == ds.classes

    # changing a file (its mtime) invalidates the cache
    changed = folder / "train" / "cat" / "img01.png"
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded although"):
        load_dataset(f"imagefolder:{folder}", root=tmp_path / "data")
    monkeypatch.setattr(folder_mod, "_decode_image", real_decode)
    before = cache.stat().st_mtime_ns
    rebuilt = load_dataset(f"imagefolder:{folder}", root=tmp_path / "data")
    assert torch.equal(rebuilt.x_train, ds.x_train) and cache.stat().st_mtime_ns != before


def test_imagefolder_relative_to_cwd_and_readonly_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    make_png_folder(folder, {"train": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}, size=(3, 3))
    monkeypatch.chdir(tmp_path)
    real_save = folder_mod.atomic_torch_save

    def save(path: Path, obj: object) -> None:  # the image folder is read-only
        if Path(path).parent == Path("ro"):
            raise PermissionError(13, "Permission denied", str(path))
        real_save(path, obj)

    monkeypatch.setattr(folder_mod, "atomic_torch_save", save)
    ds = load_dataset("imagefolder:ro", root="cache-root")
    assert ds.x_train.shape == (2, 3, 3, 3)
    assert not (folder / ".irat-cache.pt").exists()
    written = list((tmp_path / "cache-root" / ".irat-cache").glob("ro-*.pt"))
    assert len(written) == 1
    monkeypatch.setattr(folder_mod, "_decode_image", forbid_decode)
    assert torch.equal(load_dataset("imagefolder:ro", root="cache-root").x_test, ds.x_test)


def test_imagefolder_grayscale_is_one_channel(tmp_path: Path) -> None:
    pixels = make_png_folder(tmp_path, {"train": {"x": 2}, "test": {"x": 1}}, size=(6, 2), mode="L")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.x_train.shape == (2, 1, 2, 6) and ds.in_channels == 1
    assert np.array_equal(ds.x_test[0, 0].numpy(), pixels[str(tmp_path / "test" / "x" / "img00.png")])


def test_imagefolder_mixed_gray_and_rgb_is_rgb(tmp_path: Path) -> None:
    make_png_folder(tmp_path, {"train": {"x": 1}, "test": {"x": 1}}, size=(2, 2), mode="L")
    pixels = make_png_folder(tmp_path, {"train": {"y": 1}, "test": {"y": 1}}, size=(2, 2))
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.x_train.shape == (2, 3, 2, 2)
    gray = ds.x_train[0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert np.array_equal(ds.x_train[1].permute(1, 2, 0).numpy(), pixels[str(tmp_path / "train" / "y" / "img00.png")])


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^data\.name: image folder .*not found"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match=r"^data\.name: .*needs a directory"):
        load_dataset("imagefolder:")

    sizes = tmp_path / "sizes"
    make_png_folder(sizes, {"train": {"a": 2}, "test": {"a": 1, "b": 1}}, size=(4, 4))
    make_png_folder(sizes, {"train": {"b": 1}}, size=(5, 4))
    with pytest.raises(DataError, match=r"^data\.name: image .*b/img00\.png is 5x4 but .* 4x4"):
        load_dataset(f"imagefolder:{sizes}")

    classes = tmp_path / "classes"
    make_png_folder(classes, {"train": {"a": 1, "b": 1}, "test": {"a": 1, "c": 1}}, size=(2, 2))
    with pytest.raises(DataError, match=r"^data\.name: .*test classes differ.*missing in test: \['b'\].*\['c'\]"):
        load_dataset(f"imagefolder:{classes}")

    no_test = tmp_path / "no-test"
    make_png_folder(no_test, {"train": {"a": 1}}, size=(2, 2))
    with pytest.raises(DataError, match=r"^data\.name: image folder .* has no test/ directory"):
        load_dataset(f"imagefolder:{no_test}")

    corrupt = tmp_path / "corrupt"
    make_png_folder(corrupt, {"train": {"a": 2}, "test": {"a": 1}}, size=(2, 2))
    (corrupt / "train" / "a" / "img01.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"^data\.name: cannot decode image .*img01\.png"):
        load_dataset(f"imagefolder:{corrupt}")
