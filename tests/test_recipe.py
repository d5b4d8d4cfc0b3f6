"""The modern recipe's schedule and start: the LR at chosen epochs equals the formula, ε rises linearly
over the warm-up, and a run stuck at the constant classifier is flagged."""
from __future__ import annotations

import json
import math

import pytest

from irat.cli import main
from irat.config import build_config
from irat.errors import ConfigError
from irat.training import Trainer
from irat.training import stuck_at_constant


def _lrs(tmp_path, *overrides: str) -> list[float]:
    out = tmp_path / "run"
    assert main(["train", "--preset", "fmnist-smallcnn-at", "--set", "data.train_subset=32", "--set", "data.val_size=0",
                 "--set", "batch_size=32", "--set", "attack.steps=1", "--set", "optim.lr=0.1",
                 *[w for o in overrides for w in ("--set", o)], "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    return [json.loads(s)["lr"] for s in (out / "metrics.jsonl").read_text().splitlines()]


def test_cosine_and_onecycle_learning_rates_follow_the_formula(tmp_path):
    lrs = _lrs(tmp_path / "cos", "epochs=4", "optim.schedule=cosine")
    assert lrs == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * (e - 1) / 4)) for e in (1, 2, 3, 4)], rel=1e-12)
    # onecycle over 5 epochs with the peak at 40 %: P = 2; up 1/2, 2/2, then down (5 − e + 1)/(5 − 2 + 1)
    lrs = _lrs(tmp_path / "one", "epochs=5", "optim.schedule=onecycle")
    assert lrs == pytest.approx([0.05, 0.1, 0.075, 0.05, 0.025], rel=1e-12)
    # the step schedule is unchanged: ÷10 after epoch 2
    assert _lrs(tmp_path / "step", "epochs=3", "optim.milestones=[2]") == pytest.approx([0.1, 0.1, 0.01])


def test_schedule_keys_of_another_schedule_are_refused():
    with pytest.raises(ConfigError, match="optim.onecycle_peak"):
        build_config("fmnist-smallcnn-at", None, ["optim.onecycle_peak=0.3"])
    with pytest.raises(ConfigError, match="optim.lr_gamma"):
        build_config("fmnist-smallcnn-at", None, ["optim.schedule=cosine", "optim.lr_gamma=0.5"])
    with pytest.raises(ConfigError, match="optim.schedule"):
        build_config("fmnist-smallcnn-at", None, ["optim.schedule=linear"])


def test_eps_warmup_scales_the_training_attack_per_epoch(tmp_path, monkeypatch):
    cfg = build_config("fmnist-smallcnn-at", None, ["attack.eps_warmup=4", "epochs=6"])
    assert [cfg.attack_radius(e)[0] for e in range(1, 7)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    assert [cfg.attack_radius(e)[1] for e in (1, 4)] == pytest.approx([0.025 / 4, 0.025])
    # the radius the trainer hands to PGD in each epoch
    import irat.training.trainer as trainer_mod

    seen = []
    real = trainer_mod.pgd
    monkeypatch.setattr(trainer_mod, "pgd", lambda model, x, y, eps, steps, alpha, **kw: (
        seen.append((eps, alpha)), real(model, x, y, eps, steps, alpha, **kw))[1])
    cfg = build_config("fmnist-smallcnn-at", None, ["attack.eps_warmup=2", "epochs=3", "data.train_subset=32",
                                                    "data.val_size=0", "batch_size=32", "attack.steps=1"])
    run = Trainer(cfg, tmp_path / "run", progress=False).run()
    assert [v for pair in seen for v in pair] == pytest.approx([0.05, 0.0125, 0.1, 0.025, 0.1, 0.025])
    assert [m["attack_eps"] for m in run.metrics] == pytest.approx([0.05, 0.1, 0.1])


def test_a_run_stuck_at_the_constant_classifier_is_flagged(tmp_path, capfd):
    assert stuck_at_constant(10.4, math.log(10) * 1.01, 10) and not stuck_at_constant(10.4, 1.2, 10)
    assert not stuck_at_constant(35.0, math.log(10), 10)
    out = tmp_path / "stuck"  # an LR of 1e-9 keeps the initial, near-uniform network
    assert main(["train", "--preset", "fmnist-smallcnn-at", "--set", "data.train_subset=256", "--set", "epochs=2",
                 "--set", "data.val_size=0", "--set", "attack.steps=1", "--set", "optim.lr=1e-9",
                 "--out", str(out), "--device", "cpu"]) == 0
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert "stuck" not in lines[0] and lines[1].get("stuck") is True  # flagged once both first epochs are stuck
    assert capfd.readouterr().err.count("stayed at the constant classifier") == 1
    out = tmp_path / "fine"
    assert main(["train", "--preset", "fmnist-smallcnn-at", "--set", "data.train_subset=512", "--set", "epochs=2",
                 "--set", "data.val_size=0", "--set", "attack.eps=0", "--out", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    assert not any("stuck" in json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines())
