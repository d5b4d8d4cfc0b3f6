"""End-to-end: the CLI trains every method; AT's robustness clearly beats natural training;
MAIL-AT's weights focus on examples misclassified under attack."""
import json

import pytest
import torch

import irat
from irat.cli import main
from irat.evaluation import quick_accuracy
from irat.data.datasets import load_dataset
from irat.methods import METHODS

TINY = ["data.train_subset=256", "data.val_size=64", "batch_size=64", "epochs=1", "attack.steps=2",
        "reweight.from_epoch=1", "optim.milestones=[]", "--quiet"]


def _train(tmp_path, name, sets, extra=()):
    out = tmp_path / name
    rc = main(["train", "--preset", "fmnist-smallcnn-at", "--out", str(out), "--device", "cpu", "--set", *sets,
               *extra])
    return rc, out


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_one_epoch_through_the_cli(tmp_path, method):
    sets = [f"method={method}"] + [s for s in TINY if s != "--quiet"]
    rc, out = _train(tmp_path, method, sets, ["--quiet"])
    assert rc == 0
    (line,) = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss", "train_acc"):
        assert torch.isfinite(torch.tensor(line[key]))
    w = line["weights"]
    assert all(torch.isfinite(torch.tensor(float(w[k]))) for k in ("mean", "std", "min", "max", "ess"))
    reweighted = METHODS[method]["reweight"]["margin"] != "none"
    assert line["reweight_active"] == reweighted
    if reweighted:
        assert w["std"] > 0 and w["mean"] == pytest.approx(1.0, abs=1e-4)  # batch normalization: mean ω = 1
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "epoch", "config"} <= set(ckpt)
    assert ckpt["config"]["method"] == method


@pytest.fixture(scope="module")
def at_and_natural(tmp_path_factory):
    """The same schedule twice: PGD-10 AT and natural training (attack.eps=0)."""
    root = tmp_path_factory.mktemp("e2e")
    # PGD-3 training (α = 0.05) keeps the run short; both models are evaluated with PGD-20
    common = ["data.train_subset=3000", "data.val_size=200", "epochs=3", "optim.milestones=[3]", "optim.lr=0.05",
              "batch_size=64", "attack.steps=3", "attack.step_size=0.05"]
    runs = {}
    for name, extra in (("at", []), ("natural", ["attack.eps=0"])):
        out = root / name
        rc = main(["train", "--preset", "fmnist-smallcnn-at", "--out", str(out), "--device", "cpu", "--quiet",
                   "--set", *common, *extra])
        assert rc == 0
        runs[name] = out
    return runs


def test_at_beats_natural_training_under_pgd20(at_and_natural, tmp_path):
    acc = {}
    for name, out in at_and_natural.items():
        report = tmp_path / f"{name}.json"
        rc = main(["eval", str(out / "checkpoints" / "last.pt"), "--attacks", "nat,pgd20", "--n-examples", "500",
                   "--eps", "0.1", "--device", "cpu", "--out", str(report)])
        assert rc == 0
        acc[name] = json.loads(report.read_text())["accuracy"]
    assert acc["natural"]["nat"] > 60  # natural training learned something
    assert acc["at"]["pgd20"] > acc["natural"]["pgd20"] + 15, acc


def test_load_model_and_python_api(at_and_natural):
    model = irat.load_model(at_and_natural["at"] / "checkpoints" / "last.pt")
    assert not model.training
    ds = load_dataset("fashion-mnist")
    acc = quick_accuracy(model, ds.x_test[:200], ds.y_test[:200], 0.1, ["nat"])
    assert acc["nat"] > 50


def test_mail_at_weights_focus_on_misclassified_examples(tmp_path):
    cfg = irat.build_config("fmnist-smallcnn-mail-at", overrides=[
        "data.train_subset=1024", "data.val_size=0", "epochs=2", "optim.milestones=[1]", "reweight.from_epoch=2",
        "attack.steps=5", "attack.step_size=0.04"])
    run = irat.train(cfg, tmp_path / "mail", progress=False, device="cpu")
    before, after = run.metrics
    assert not before["reweight_active"] and before["weights"]["std"] == 0
    assert after["reweight_active"]
    w = after["weights"]
    # sigmoid(−γ(PM_adv − β)) is decreasing in the margin and misclassified examples have PM_adv < 0:
    # after burn-in they must carry clearly more weight (a sign error in the margin would invert this)
    assert w["std"] > 0.02
    assert w["mean_misclassified"] > 1.1 * w["mean_correct"], w
