"""Hostile inputs: every bad config value, data set or checkpoint is refused at the edge.

Each case runs the CLI in-process and asserts: exit code 2, exactly one line on stderr beginning
`irat: error:` that names the offending field (or file), and a run directory that was not created, or,
when it existed (even with --overwrite), is byte-for-byte what it was. Nothing is downloaded: network
access goes to a dead proxy.
"""
from __future__ import annotations

import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from irat.checkpoint import load_checkpoint, save_checkpoint
from irat.cli import main

FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(not FMNIST.is_dir(), reason="needs the system Fashion-MNIST copy")

BASE = """\
method: at
epochs: 1
batch_size: 32
seed: 0
data: {{name: fashion-mnist, train_subset: 64, val_size: 0, root: {root}}}
model: {{name: smallcnn}}
attack: {{eps: 0.1, steps: 1, step_size: 0.1}}
optim: {{lr: 0.05, milestones: []}}
"""


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download attempt fails at once (a dead proxy), as on a machine without internet."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)


@pytest.fixture(scope="module")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("base")
    (d / "dataroot").mkdir()
    path = d / "base.yaml"
    path.write_text(BASE.format(root=d / "dataroot"))
    return path


def snapshot(path: Path) -> dict[str, bytes] | None:
    """Every file under `path` with its bytes (None if `path` does not exist)."""
    if not path.exists():
        return None
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def run(argv: list[str], capfd: pytest.CaptureFixture) -> tuple[int, list[str]]:
    capfd.readouterr()
    rc = main([str(a) for a in argv])
    err = capfd.readouterr().err
    return rc, err.splitlines()


def assert_refused(rc: int, err: list[str], *needles: str) -> None:
    assert rc == 2, err
    assert len(err) == 1, f"expected one line on stderr, got {err}"
    assert err[0].startswith("irat: error: "), err
    for needle in needles:
        assert needle in err[0], f"{needle!r} not in {err[0]!r}"


def train_args(config: Path, out: Path, *overrides: str, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["train", "--config", config, "--out", out, "--device", "cpu", "--quiet", *extra]
    return args + (["--set", *overrides] if overrides else [])


def write_png_folder(root: Path, classes: dict[str, list[tuple[int, int]]], n_test: int = 1) -> Path:
    """An image folder root/{train,test}/<class>/<i>.png of grayscale images of the given (W, H) sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls, sizes in classes.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i, (w, h) in enumerate(sizes if split == "train" else sizes[:n_test]):
                Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L").save(d / f"{i}.png")
    return root


def write_idx_set(directory: Path, n: int = 40, label_max: int = 9, truncate: bool = False) -> Path:
    """Fashion-MNIST idx files (uncompressed) with labels up to `label_max`; `truncate` cuts the images."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes()
        y = np.resize(np.arange(label_max + 1, dtype=np.uint8), n).tobytes()
        images = struct.pack(">4i", 2051, n, 28, 28) + (x[: len(x) // 2] if truncate else x)
        (directory / f"{prefix}-images-idx3-ubyte").write_bytes(images)
        (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">2i", 2049, n) + y)
    return directory


class Evil:
    """Unpickling this creates `marker` (what a code-carrying checkpoint could do instead)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ---------------------------------------------------------------------------------------------- config


CONFIG_CASES = [
    # (id, --set overrides, what the message must name)
    ("eps-negative", ["attack.eps=-0.1"], "attack.eps"),
    ("eps-nan", ["attack.eps=nan"], "attack.eps"),
    ("steps-zero", ["attack.steps=0"], "attack.steps"),
    ("steps-float", ["attack.steps=2.5"], "attack.steps"),
    ("step-size-zero", ["attack.step_size=0"], "attack.step_size"),
    ("gamma-negative", ["method=mail-at", "reweight.gamma=-1"], "reweight.gamma"),
    ("from-epoch-beyond-run", ["method=mail-at", "reweight.from_epoch=5"], "reweight.from_epoch"),
    ("from-epoch-zero", ["method=mail-at", "reweight.from_epoch=0"], "reweight.from_epoch"),
    ("lr-nan", ["optim.lr=nan"], "optim.lr"),
    ("lr-inf", ["optim.lr=inf"], "optim.lr"),
    ("lr-negative", ["optim.lr=-0.1"], "optim.lr"),
    ("lr-string", ["optim.lr=fast"], "optim.lr"),
    ("weight-decay-negative", ["optim.weight_decay=-1e-4"], "optim.weight_decay"),
    ("momentum-above-one", ["optim.momentum=1.5"], "optim.momentum"),
    ("milestones-decreasing", ["optim.milestones=[5, 2]"], "optim.milestones"),
    ("lr-gamma-zero", ["optim.lr_gamma=0"], "optim.lr_gamma"),
    ("batch-size-zero", ["batch_size=0"], "batch_size"),
    ("batch-size-bool", ["batch_size=true"], "batch_size"),
    ("epochs-string", ["epochs=three"], "epochs"),
    ("epochs-zero", ["epochs=0"], "epochs"),
    ("seed-negative", ["seed=-1"], "seed"),
    ("tradeoff-negative", ["method=trades", "tradeoff=-1"], "tradeoff"),
    ("checkpoint-every-negative", ["checkpoint_every_steps=-1"], "checkpoint_every_steps"),
    ("dropout-one", ["model.dropout=1.0"], "model.dropout"),
    ("device-unknown", ["device=tpu"], "device"),
    ("unknown-key", ["attack.epsilon=0.1"], "attack.epsilon"),
    ("unknown-top-level-key", ["learning_rate=0.1"], "learning_rate"),
    ("section-given-a-value", ["attack=5"], "attack"),
    ("set-without-equals", ["epochs"], "--set"),
    ("unknown-method", ["method=mail-xyz"], "method"),
    ("unknown-margin", ["method=custom", "reweight.margin=pm_bogus", "reweight.weighting=sigmoid"],
     "reweight.margin"),
    ("unknown-weighting", ["method=custom", "reweight.margin=pm_adv", "reweight.weighting=cosine"],
     "reweight.weighting"),
    ("unknown-attack-start", ["attack.start=zeros"], "attack.start"),
    ("awp-on-mart", ["method=mart", "awp.enabled=true"], "awp.enabled"),
    ("unknown-model", ["model.name=vgg99"], "model.name"),
    ("unknown-data-set", ["data.name=mnist-9"], "data.name"),
    ("train-subset-zero", ["data.train_subset=0"], "data.train_subset"),
    ("val-size-negative", ["data.val_size=-1"], "data.val_size"),
    # these pass the config check and fail on the data
    ("imagefolder-missing", ["data.name=imagefolder:/nonexistent/irat-images"], "data.name"),
    ("cifar10-empty-root-offline", ["data.name=cifar10", "data.root={empty}"], "data.root"),
    ("val-size-above-data", ["data.val_size=60000"], "data.val_size"),
    ("train-subset-above-data", ["data.train_subset=100000"], "data.train_subset"),
]


@needs_fmnist
@pytest.mark.parametrize("overrides,field", [pytest.param(o, f, id=i) for i, o, f in CONFIG_CASES])
def test_bad_config_value_is_refused_before_anything_is_written(
        overrides: list[str], field: str, base_config: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty-root"
    empty.mkdir()
    overrides = [o.format(empty=empty) for o in overrides]
    # 1. the run directory does not exist: it must not be created
    out = tmp_path / "run"
    rc, err = run(train_args(base_config, out, *overrides), capfd)
    assert_refused(rc, err, field)
    assert not out.exists()
    # 2. it exists and --overwrite is given: the bad input must still leave it untouched
    out.mkdir()
    (out / "sentinel.txt").write_text("keep me\n")
    before = snapshot(out)
    rc, err = run(train_args(base_config, out, *overrides, extra=("--overwrite",)), capfd)
    assert_refused(rc, err, field)
    assert snapshot(out) == before
    if "data.root" in field:
        assert list(empty.iterdir()) == []  # the failed download left nothing behind


@pytest.mark.parametrize("argv,field", [
    pytest.param(["--preset", "no-such-preset"], "--preset", id="unknown-preset"),
    pytest.param(["--config", "/nonexistent/irat.yaml"], "--config", id="missing-config-file"),
    pytest.param(["--config", "{bad_yaml}"], "--config", id="invalid-yaml"),
    pytest.param(["--config", "{list_yaml}"], "--config", id="config-not-a-mapping"),
    pytest.param(["--config", "{base}", "--preset", "fmnist-quickstart"], "--preset/--config", id="preset-and-config"),
    pytest.param(["--config", "{base}", "--epochs", "3"], "--epochs", id="unknown-flag"),
    pytest.param(["--resume"], "--resume", id="resume-without-a-run"),
])
def test_bad_command_line_is_refused(argv: list[str], field: str, base_config: Path, tmp_path: Path,
                                     capfd: pytest.CaptureFixture) -> None:
    (tmp_path / "bad.yaml").write_text("epochs: [1\n")
    (tmp_path / "list.yaml").write_text("- epochs\n- 3\n")
    argv = [a.format(bad_yaml=tmp_path / "bad.yaml", list_yaml=tmp_path / "list.yaml", base=base_config)
            for a in argv]
    out = tmp_path / "run"
    rc, err = run(["train", *argv, "--out", out, "--device", "cpu", "--quiet"], capfd)
    assert_refused(rc, err, field)
    assert not out.exists()


@pytest.mark.parametrize("argv,field", [
    pytest.param(["eval", "x.pt", "--limit", "aa=0"], "--limit", id="limit-zero"),
    pytest.param(["eval", "x.pt", "--limit", "aa"], "--limit", id="limit-without-count"),
    pytest.param(["eval", "x.pt", "--limit", "square=100"], "--limit", id="limit-unknown-attack"),
    pytest.param(["eval", "x.pt", "--limit", "aa=10", "--limit", "aa=20"], "--limit", id="limit-twice"),
    pytest.param(["sweep", "--preset", "fmnist-smallcnn-at", "--methods", "at", "--out", "{out}",
                  "--eval-limit", "aa=2000"], "--eval-limit", id="sweep-limit-without-eval"),
    pytest.param(["sweep", "--preset", "fmnist-smallcnn-at", "--methods", "at", "--out", "{out}",
                  "--eval", "nat,pgd20", "--eval-limit", "aa=2000"], "--eval-limit", id="sweep-limit-not-evaluated"),
])
def test_bad_example_limit_is_refused(argv: list[str], field: str, tmp_path: Path,
                                      capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "sweep"
    rc, err = run([a.format(out=out) for a in argv], capfd)
    assert_refused(rc, err, field)
    assert not out.exists()


@needs_fmnist
def test_existing_run_directory_is_not_overwritten(base_config: Path, tmp_path: Path,
                                                   capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "sentinel.txt").write_text("keep me\n")
    before = snapshot(out)
    rc, err = run(train_args(base_config, out), capfd)
    assert_refused(rc, err, "--out", str(out), "--overwrite")
    assert snapshot(out) == before


# ---------------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("kind,needles", [
    pytest.param("labels-out-of-range", ("data.name", "[0, 10)"), id="labels-out-of-range"),
    pytest.param("truncated-idx", ("data.root", "corrupt idx file"), id="truncated-idx"),
    pytest.param("images-too-small", ("model.name", "data.name", "16x16"), id="images-2x2-too-small"),
    pytest.param("mixed-sizes", ("data.name", "all images must share one size"), id="images-mixed-sizes"),
])
def test_bad_data_is_refused(kind: str, needles: tuple[str, ...], base_config: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    overrides: list[str] = ["data.train_subset=null"]
    if kind in ("labels-out-of-range", "truncated-idx"):
        fmnist = write_idx_set(tmp_path / "fm", label_max=12 if kind == "labels-out-of-range" else 9,
                               truncate=kind == "truncated-idx")
        monkeypatch.setenv("IRAT_FMNIST_DIR", str(fmnist))
    elif kind == "images-too-small":
        folder = write_png_folder(tmp_path / "imgs", {"a": [(2, 2)] * 4, "b": [(2, 2)] * 4})
        overrides.append(f"data.name=imagefolder:{folder}")
    else:
        folder = write_png_folder(tmp_path / "imgs", {"a": [(16, 16)] * 3, "b": [(16, 16), (20, 16), (16, 16)]})
        overrides.append(f"data.name=imagefolder:{folder}")
    out = tmp_path / "run"
    rc, err = run(train_args(base_config, out, *overrides), capfd)
    assert_refused(rc, err, *needles)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, base_config: Path) -> Path:
    if not FMNIST.is_dir():
        pytest.skip("needs the system Fashion-MNIST copy")
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main([str(a) for a in train_args(base_config, out)]) == 0
    return out


def _corrupt(kind: str, path: Path, marker: Path) -> None:
    good = path.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind.startswith("malicious-pickle"):  # a plain pickle, protocol 2 or the newest
        with open(path, "wb") as f:
            pickle.dump({"model": Evil(marker), "config": {}}, f, protocol=2 if kind.endswith("v2") else None)
    elif kind == "malicious-torch-save":
        torch.save({"model": {}, "config": {"x": Evil(marker)}}, path)
    elif kind == "not-a-checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind in ("wrong-head", "hash-mismatch"):
        ckpt = torch.load(path, weights_only=True)
        head = [k for k in ckpt["model"] if k.endswith("weight")][-1]
        if kind == "wrong-head":  # a 5-class head in a 10-class checkpoint, with a consistent hash
            ckpt["model"][head] = torch.zeros(5, ckpt["model"][head].shape[1])
            ckpt["model"][head.replace("weight", "bias")] = torch.zeros(5)
            save_checkpoint(path, {k: v for k, v in ckpt.items() if k not in ("format", "irat_version")})
        else:  # one flipped weight, the recorded hash kept
            ckpt["model"][head].view(-1)[0] += 1.0
            torch.save(ckpt, path)
    else:
        raise AssertionError(kind)


CHECKPOINT_CASES = [
    ("empty", "file is empty"),
    ("truncated", "corrupt or truncated"),
    ("garbage", "corrupt"),
    ("malicious-pickle", "refused"),
    ("malicious-pickle-v2", "refused"),
    ("malicious-torch-save", "refused"),
    ("not-a-checkpoint", "not an irat checkpoint"),
    ("wrong-head", "shape"),
    ("hash-mismatch", "content hash mismatch"),
]


@pytest.mark.parametrize("command", ["eval", "resume"])
@pytest.mark.parametrize("kind,needle", [pytest.param(k, n, id=k) for k, n in CHECKPOINT_CASES])
def test_bad_checkpoint_is_refused(kind: str, needle: str, command: str, trained_run: Path, tmp_path: Path,
                                   capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    last = out / "checkpoints" / "last.pt"
    marker = tmp_path / "PWNED"
    _corrupt(kind, last, marker)
    before = snapshot(out)
    argv = ["eval", last, "--device", "cpu"] if command == "eval" else ["train", "--resume", "--out", out, "--quiet"]
    rc, err = run(argv, capfd)
    assert_refused(rc, err, f"checkpoint {last}", needle)
    assert not marker.exists(), "the checkpoint's pickled code ran"
    assert snapshot(out) == before


def test_the_good_checkpoint_records_version_config_and_hash(trained_run: Path) -> None:
    from irat import __version__
    from irat.checkpoint import state_hash

    ckpt = load_checkpoint(trained_run / "checkpoints" / "last.pt")
    assert ckpt["irat_version"] == __version__
    assert ckpt["config"]["attack"]["eps"] == 0.1
    assert ckpt["model_sha256"] == state_hash(ckpt["model"])


def test_resume_with_a_different_number_of_classes_names_the_mismatch(
        base_config: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    folder = write_png_folder(tmp_path / "imgs", {c: [(16, 16)] * 4 for c in "ab"})
    out = tmp_path / "run"
    rc, err = run(train_args(base_config, out, f"data.name=imagefolder:{folder}", "data.train_subset=null",
                             "batch_size=4"), capfd)
    assert rc == 0, err
    write_png_folder(folder, {"c": [(16, 16)] * 4})  # the data set now has 3 classes
    before = snapshot(out)
    rc, err = run(["train", "--resume", "--out", out, "--quiet"], capfd)
    assert_refused(rc, err, "data.name", "classes 3", "classes 2")
    assert snapshot(out) == before
    # evaluating the checkpoint on the changed data set is refused the same way, before any attack
    rc, err = run(["eval", out / "checkpoints" / "last.pt", "--attacks", "nat", "--quiet"], capfd)
    assert_refused(rc, err, "data.name", "classes 3", "classes 2")
    assert snapshot(out) == before


# ---------------------------------------------------------------------------------------------- numerics


@needs_fmnist
def test_diverging_learning_rate_stops_with_epoch_step_and_keeps_the_last_good_checkpoint(
        base_config: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    rc, err = run(train_args(base_config, out, "optim.lr=1e30", "checkpoint_every_steps=1"), capfd)
    assert_refused(rc, err, "training diverged", "epoch 1, step", "optim.lr")
    last = out / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last)  # loadable, and holds only finite weights
    assert ckpt["step_in_epoch"] >= 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert str(last) in err[0]


@needs_fmnist
def test_run_directory_below_a_file_is_refused(base_config: Path, tmp_path: Path,
                                               capfd: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    rc, err = run(train_args(base_config, blocker / "run"), capfd)
    assert_refused(rc, err, "--out", str(blocker / "run"))
    assert blocker.read_text() == "not a directory\n"


def test_an_internal_error_is_still_one_line(monkeypatch: pytest.MonkeyPatch, base_config: Path, tmp_path: Path,
                                             capfd: pytest.CaptureFixture) -> None:
    import irat.cli.train

    def broken(*args, **kwargs):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(irat.cli.train, "train", broken)
    monkeypatch.delenv("IRAT_DEBUG", raising=False)
    rc, err = run(train_args(base_config, tmp_path / "run"), capfd)
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("irat: error: internal error (RuntimeError: something unexpected)")
    assert "IRAT_DEBUG=1" in err[0]
