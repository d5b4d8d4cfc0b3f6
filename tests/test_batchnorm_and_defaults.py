"""What the training step reads on a BatchNorm network, and the defaults checked against the reference code.

- Margins read in eval mode (PM_nat for AT, PM_dif, margin_source=eval) come from the model the attack
  saw, before the training forward updates BatchNorm's running statistics: with ε = 0, PM_dif is
  exactly 0 for AT and TRADES on a ResNet.
- Under bf16 autocast only the attack runs in bf16: the training forward and every margin input are
  fp32, and the classifier head returns fp32 logits.
- CL-PM lies in (−1, 1], and the logged histogram uses that range.
- FAT's τ schedule and AWP's warm-up follow the reference code.
"""
from __future__ import annotations

import copy
import json

import pytest
import torch

from irat.config import build_config
from irat.data.loader import epoch_batches
from irat.margins import MARGINS, cl_pm, pm_adv, pm_nat
from irat.training import EpochStats, Trainer, awp_active, fat_tau


def _trainer(tmp_path, cifar_root, *overrides: str) -> Trainer:
    cfg = build_config("cifar10-resnet18-at", None, [
        "data.name=cifar10", f"data.root={cifar_root}", "model.width=8", "batch_size=32", "data.val_size=0",
        "epochs=2", "reweight.from_epoch=1", "device=cpu", "attack.steps=3", *overrides])
    return Trainer(cfg, tmp_path / "run", progress=False)


def _batch(tr: Trainer):
    cfg = tr.cfg
    return next(iter(epoch_batches(tr.splits.x_train, tr.splits.y_train, batch_size=cfg.batch_size, seed=cfg.seed,
                                   epoch=1, device=tr.device, augment=tr.augment,
                                   noise_kind=cfg.training_attack.start, channels_last=tr.channels_last)))


def _step(tr: Trainer, batch) -> EpochStats:
    stats = EpochStats(tr.device, capacity=batch.x.shape[0])
    tr.step(batch.x, batch.y, batch.noise, batch.global_size, 1, stats)
    return stats


def _stir_batchnorm(tr: Trainer, batch) -> None:
    """Training-mode forwards move the running statistics away from their (0, 1) start."""
    tr.model.train()
    with torch.no_grad():
        for _ in range(3):
            tr.model(batch.x * 0.5 + 0.3)


@pytest.mark.parametrize("objective", ["at", "trades", "mart"])
def test_pm_dif_is_exactly_zero_without_attack_on_a_resnet(tmp_path, cifar_root, objective):
    tr = _trainer(tmp_path, cifar_root, "method=custom", f"objective={objective}", "reweight.margin=pm_dif",
                  "reweight.weighting=sigmoid", "attack.eps=0")
    batch = _batch(tr)
    _stir_batchnorm(tr, batch)
    stats = _step(tr, batch)
    assert stats.margins.numel() == 32
    assert torch.equal(stats.margins, torch.zeros(32)), stats.margins.abs().max()


@pytest.mark.parametrize("overrides,margin_fn", [
    (["reweight.margin=pm_nat"], pm_nat),  # AT makes no natural forward: PM_nat is read in eval mode
    (["reweight.margin=pm_adv", "reweight.margin_source=eval", "attack.eps=0"], pm_adv),
])
def test_eval_mode_margins_come_from_the_model_before_the_training_forward(tmp_path, cifar_root, overrides,
                                                                           margin_fn):
    tr = _trainer(tmp_path, cifar_root, "method=custom", "objective=at", "reweight.weighting=sigmoid", *overrides)
    batch = _batch(tr)
    _stir_batchnorm(tr, batch)
    before = copy.deepcopy(tr.model).eval()
    with torch.no_grad():
        want = margin_fn(torch.softmax(before(batch.x).float(), dim=1), batch.y)
    stats = _step(tr, batch)
    with torch.no_grad():  # the training forward did move BatchNorm: reading after it would differ
        after = margin_fn(torch.softmax(tr.model.eval()(batch.x).float(), dim=1), batch.y)
    assert not torch.allclose(after, want, atol=1e-4)
    assert torch.allclose(stats.margins, want, atol=1e-6, rtol=0)


def test_bf16_autocast_covers_only_the_attack(tmp_path, cifar_root, monkeypatch):
    """fast.amp on CPU: every forward the attack makes runs under bf16 autocast; the training forward and
    every eval-mode forward that feeds a margin run in fp32, so margins and weights do not move with the
    precision (SPEC §1). The head returns fp32 logits even under autocast."""
    tr = _trainer(tmp_path, cifar_root, "method=custom", "objective=trades", "reweight.margin=pm_dif",
                  "reweight.weighting=sigmoid", "fast.amp=true")
    assert tr.amp
    seen: list[tuple[bool, bool, bool, torch.dtype]] = []

    def hook(module, inputs, output):
        seen.append((module.training, torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"), output.dtype))

    tr.model.register_forward_hook(hook)
    stats = _step(tr, _batch(tr))
    attack = [s for s in seen if not s[0] and s[1]]  # eval mode with gradients: the PGD iterations
    train = [s for s in seen if s[0]]
    margin_reads = [s for s in seen if not s[0] and not s[1]]
    assert len(attack) == 3 and all(s[2] for s in attack)
    assert len(train) == 2 and not any(s[2] for s in train)  # TRADES: natural and adversarial forwards
    assert len(margin_reads) >= 2 and not any(s[2] for s in margin_reads)  # p(x) and p(x + δ^(t_i)), fp32
    assert all(s[3] == torch.float32 for s in seen)  # fp32 logits from the head, under autocast too
    assert torch.isfinite(stats.weights).all()

    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert tr.model(torch.rand(2, 3, 32, 32)).dtype == torch.float32


def test_bf16_training_step_is_opt_in(tmp_path, cifar_root):
    tr = _trainer(tmp_path, cifar_root, "method=mail-at", "fast.amp=true", "fast.amp_train=true")
    flags = []
    tr.model.register_forward_hook(lambda m, i, o: flags.append((m.training, torch.is_autocast_enabled("cpu"))))
    _step(tr, _batch(tr))
    assert [a for t, a in flags if t] == [True]


def test_cl_pm_lies_in_minus_one_to_one():
    g = torch.Generator().manual_seed(0)
    for k in (2, 10, 100):
        logits = torch.randn(4000, k, generator=g) * torch.rand(4000, 1, generator=g) * 8
        probs = logits.softmax(1)
        y = torch.randint(0, k, (4000,), generator=g)
        m = cl_pm(probs, y)
        assert (m >= -1 - 1e-6).all() and (m <= 1).all()  # > −1 exactly; float32 sums round
        assert (m <= pm_adv(probs, y) + 1e-7).all()
    # the extreme: p_y → 0 with every other label confused, the sum tends to −1 (never −(K−1))
    probs = torch.tensor([[1e-6] + [(1 - 1e-6) / 9] * 9])
    assert -1 < float(cl_pm(probs, torch.tensor([0]))) < -0.99
    assert MARGINS["cl_pm"].range(10) == (-1.0, 1.0)
    assert MARGINS["lps"].range(10) == (0.0, 10.0)


def test_clirat_logs_its_margin_histogram_over_minus_one_to_one(tmp_path, cifar_root):
    from irat.cli import main

    out = tmp_path / "run"
    assert main(["train", "--preset", "cifar10-resnet18-clirat", "--set", "data.name=cifar10",
                 "--set", f"data.root={cifar_root}", "--set", "model.width=4", "--set", "epochs=1",
                 "--set", "reweight.from_epoch=1", "--set", "batch_size=50", "--set", "attack.steps=1", "--set", "data.val_size=0",
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert line["margin"]["name"] == "cl_pm" and line["margin"]["hist_range"] == [-1.0, 1.0]
    assert sum(line["margin"]["hist"]) == 200


def test_fat_tau_follows_the_reference_schedule():
    cfg = build_config("cifar10-resnet18-fat")
    assert cfg.epochs == 120
    assert [fat_tau(cfg, e) for e in (1, 50, 51, 90, 91, 120)] == [0, 0, 1, 1, 2, 2]
    short = build_config("cifar10-resnet18-fat", None, ["epochs=12", "optim.milestones=[8]"])
    assert [fat_tau(short, e) for e in range(1, 13)] == [0] * 5 + [1] * 4 + [2] * 3  # 50/120 and 90/120 of 12
    assert fat_tau(build_config("cifar10-resnet18-at"), 100) is None


def test_awp_warmup_follows_the_reference_code():
    at = build_config("cifar10-resnet18-awp-at")
    trades = build_config("cifar10-resnet18-awp-trades")
    assert awp_active(at, 1)  # AT-AWP reference: perturbs from the first epoch
    assert [awp_active(trades, e) for e in (1, 9, 10, 11)] == [False, False, True, True]  # TRADES-AWP: epoch 10
    assert not awp_active(build_config("cifar10-resnet18-at"), 50)


def test_autoattack_on_fewer_than_four_classes_is_refused_in_one_line():
    from irat.errors import IratError
    from irat.evaluation import ATTACKS

    with pytest.raises(IratError, match=r"apgd-t need at least 4 classes.*has 3.*apgd-ce"):
        ATTACKS["aa"].params(8 / 255, None, 3)
    assert ATTACKS["apgd-ce"].params(8 / 255, None, 2)["implementation"].startswith("pyautoattack")
    assert ATTACKS["aa"].params(8 / 255, None, 4)["apgd_t"]["n_target_classes"] == 3


def test_image_folder_order_interleaves_the_classes(image_folder):
    from irat.data.datasets import load_dataset

    ds = load_dataset(f"imagefolder:{image_folder}", str(image_folder.parent))
    assert ds.y_test[:8].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]  # the first N test examples cover every class
    assert sorted(ds.y_test.tolist()) == [c for c in range(4) for _ in range(6)]
