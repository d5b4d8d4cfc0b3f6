"""A new margin (with a range of its own) or a new objective is one function plus one registry line:
nothing else in irat changes. Each test registers a toy one and trains with it through the CLI."""
from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from irat.cli import main
from irat.config import build_config
from irat.margins import MARGINS, MarginSpec, pm_adv
from irat.objectives import OBJECTIVES, ObjectiveSpec

TINY = ["--set", "data.train_subset=64", "--set", "data.val_size=0", "--set", "epochs=1", "--set", "batch_size=32",
        "--set", "attack.steps=1", "--set", "reweight.from_epoch=1", "--set", "optim.milestones=[]"]


def test_a_margin_with_its_own_range_is_one_registry_line(tmp_path, monkeypatch):
    # the toy: PM_adv rescaled to [0, 1]
    monkeypatch.setitem(MARGINS, "pm_half", MarginSpec(lambda m: (pm_adv(m.probs_adv, m.labels) + 1) / 2,
                                                      frozenset({"probs_adv"}), "(PM_adv + 1) / 2",
                                                      range=lambda steps: (0.0, 1.0)))
    out = tmp_path / "run"
    assert main(["train", "--preset", "fmnist-smallcnn-at", *TINY, "--set", "method=custom",
                 "--set", "reweight.margin=pm_half", "--set", "reweight.weighting=sigmoid",
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    line = json.loads((out / "metrics.jsonl").read_text())
    assert line["reweight_active"] and line["margin"]["name"] == "pm_half"
    assert line["margin"]["hist_range"] == [0.0, 1.0] and sum(line["margin"]["hist"]) == 64
    assert 0.0 <= line["margin"]["q05"] <= line["margin"]["q95"] <= 1.0


def test_an_objective_is_one_registry_line(tmp_path, monkeypatch):
    # the toy: weighted CE on x̃ plus an unweighted λ·CE on x (its trade-off default 0.5; AWP applies)
    def toy(logits_nat, logits_adv, labels, tradeoff):
        return (F.cross_entropy(logits_adv.float(), labels, reduction="none"),
                tradeoff * F.cross_entropy(logits_nat.float(), labels, reduction="none"))

    monkeypatch.setitem(OBJECTIVES, "ce-mix", ObjectiveSpec(toy, True, "ce", "uniform", "CE(x̃) + λ CE(x)",
                                                            tradeoff=0.5, awp=True))
    assert build_config("fmnist-smallcnn-at", None, ["method=custom", "objective=ce-mix"]).tradeoff == 0.5
    out = tmp_path / "run"
    assert main(["train", "--preset", "fmnist-smallcnn-at", *TINY, "--set", "method=custom",
                 "--set", "objective=ce-mix", "--set", "reweight.margin=cl_pm", "--set", "reweight.weighting=sigmoid",
                 "--set", "awp.enabled=true", "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    line = json.loads((out / "metrics.jsonl").read_text())
    assert line["reweight_active"] and torch.isfinite(torch.tensor(line["loss"]))
    # an objective that does not declare AWP is refused with it, by the same registry
    monkeypatch.setitem(OBJECTIVES, "ce-mix", ObjectiveSpec(toy, True, "ce", "uniform", "no AWP", tradeoff=0.5))
    assert main(["train", "--preset", "fmnist-smallcnn-at", *TINY, "--set", "method=custom",
                 "--set", "objective=ce-mix", "--set", "awp.enabled=true", "--out", str(tmp_path / "x"),
                 "--device", "cpu"]) == 2
