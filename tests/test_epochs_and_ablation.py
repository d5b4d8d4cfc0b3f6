"""Issue 15's training side: kept checkpoints of chosen epochs (atomic, loadable, exact on resume),
`irat eval RUN` evaluates each like a single evaluation does, and the confused-label exclusion really
removes the excluded examples from the loss."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from irat.checkpoint import load_checkpoint
from irat.cli import main
from irat.config import build_config
from irat.margins import MarginInputs, confused_label_count
from irat.weighting import reweight

SETS = ["data.train_subset=64", "data.val_size=0", "epochs=5", "batch_size=32", "attack.steps=1",
        "optim.milestones=[3]", "keep_epochs=[2]", "keep_every=4"]


def _train(out, *extra, expect=0):
    args = ["train", "--preset", "fmnist-smallcnn-clirat", *[w for s in SETS + list(extra) for w in ("--set", s)],
            "--out", str(out), "--device", "cpu", "--quiet"]
    assert main(args) == expect


def test_exactly_the_requested_epochs_are_kept_and_resume_neither_duplicates_nor_loses(tmp_path, stop_after_epoch):
    ref = tmp_path / "ref"
    _train(ref)
    kept = sorted(p.name for p in (ref / "checkpoints").glob("epoch-*.pt"))
    assert kept == ["epoch-002.pt", "epoch-004.pt"]
    for name in kept:
        ckpt = load_checkpoint(ref / "checkpoints" / name)
        assert ckpt["epoch"] == int(name[6:9])
    # a stop after epoch 3 and a resume: the same kept files, bitwise
    stop_after_epoch(3)
    out = tmp_path / "run"
    _train(out, expect=143)
    stop_after_epoch(None)
    assert sorted(p.name for p in (out / "checkpoints").glob("epoch-*.pt")) == ["epoch-002.pt"]
    assert main(["train", "--out", str(out), "--resume", "--device", "cpu", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").glob("epoch-*.pt")) == kept
    for name in kept:
        a, b = load_checkpoint(out / "checkpoints" / name), load_checkpoint(ref / "checkpoints" / name)
        assert a["model_sha256"] == b["model_sha256"]


def test_a_kill_during_a_kept_write_leaves_every_earlier_kept_file_loadable(tmp_path, monkeypatch):
    import irat.training.trainer as trainer_mod

    real = trainer_mod.save_checkpoint

    def dies_on_epoch_4(path, payload):
        if path.name == "epoch-004.pt":
            raise KeyboardInterrupt  # the process dies inside the write
        return real(path, payload)

    monkeypatch.setattr(trainer_mod, "save_checkpoint", dies_on_epoch_4)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        from irat.training import Trainer
        Trainer(build_config("fmnist-smallcnn-clirat", None, SETS), out, progress=False).run()
    assert load_checkpoint(out / "checkpoints" / "epoch-002.pt")["epoch"] == 2
    assert not (out / "checkpoints" / "epoch-004.pt").exists()
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 3  # epoch 4 will be redone on resume


def test_evaluating_a_run_directory_equals_evaluating_each_checkpoint(tmp_path):
    run = tmp_path / "run"
    _train(run)
    assert main(["eval", str(run), "--attacks", "nat,pgd20", "--n-examples", "24", "--device", "cpu",
                 "--quiet"]) == 0
    for epoch in (2, 4):
        ckpt = run / "checkpoints" / f"epoch-{epoch:03d}.pt"
        together = json.loads((run / "checkpoints" / f"epoch-{epoch:03d}.eval.json").read_text())
        alone = tmp_path / f"alone-{epoch}.json"
        assert main(["eval", str(ckpt), "--attacks", "nat,pgd20", "--n-examples", "24", "--device", "cpu",
                     "--quiet", "--out", str(alone)]) == 0
        alone = json.loads(alone.read_text())
        assert together["accuracy"] == alone["accuracy"] and together["checkpoint"]["epoch"] == epoch
    assert main(["eval", str(run), "--out", str(tmp_path / "x.json"), "--device", "cpu"]) == 2
    assert main(["eval", str(tmp_path), "--device", "cpu"]) == 2  # no kept checkpoints there


def test_excluded_examples_leave_the_loss_with_zero_gradient():
    # four examples, y = 0, K = 4: correct; one confused label; two; three
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.3, 0.5, 0.1, 0.1], [0.2, 0.35, 0.35, 0.1],
                          [0.1, 0.3, 0.3, 0.3]])
    y = torch.zeros(4, dtype=torch.long)
    assert confused_label_count(probs, y).tolist() == [0, 1, 2, 3]
    logits = probs.log().clone().requires_grad_(True)
    inputs = MarginInputs(labels=y, probs_adv=probs)
    for exclude, dropped in (("none", []), ("single", [1]), ("multiple", [2, 3])):
        for method in ("at", "clirat"):  # with and without reweighting
            r = build_config("fmnist-smallcnn-at", None, [f"method={method}", f"reweight.exclude={exclude}"]).reweight
            omega, _, _, drop = reweight(r, inputs, 10, active=True, global_size=4)
            assert drop.nonzero().flatten().tolist() == dropped
            assert omega.sum().item() == pytest.approx(4.0)  # the others share Σω = M
            loss = (omega * F.cross_entropy(logits, y, reduction="none")).sum()
            (grad,) = torch.autograd.grad(loss, logits)
            for i in range(4):
                assert (grad[i].abs().sum() == 0) == (i in dropped), (exclude, method, i)
            omega_burn_in, *_ = reweight(r, inputs, 10, active=False, global_size=4)
            assert torch.equal(omega_burn_in, torch.ones(4))  # nothing excluded before the burn-in ends


def test_the_epoch_statistics_count_the_excluded_examples(tmp_path):
    out = tmp_path / "run"
    _train(out, "reweight.exclude=multiple", "reweight.from_epoch=2", "keep_epochs=[]", "keep_every=0")
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["excluded"] == 0  # burn-in
    assert all(0 <= m["excluded"] <= m["confused"]["several"] for m in lines)
    assert all(m["excluded"] == m["confused"]["several"] for m in lines[1:])


def test_mail_table_1_is_one_sweep_over_objective_and_margin(tmp_path, capsys):
    """LPS against PM_nat against PM_adv under AT, TRADES and MART: each margin brings the weighting it needs."""
    from irat.sweep import SweepSpec, validate_spec

    spec = SweepSpec(out=tmp_path / "t1", methods=["custom"], seeds=[0], preset="fmnist-smallcnn-at",
                     grid=[("objective", ["at", "trades", "mart"]), ("reweight.margin", ["lps", "pm_nat", "pm_adv"])])
    validate_spec(spec)
    cells = spec.cells()
    assert len(cells) == 9
    configs = [build_config(spec.preset, None, c.overrides(spec.sets)) for c in cells]  # what each cell trains
    got = {(c.objective, c.reweight.margin): c.reweight.weighting for c in configs}
    assert got == {(o, m): ("gair" if m == "lps" else "sigmoid") for o in ("at", "trades", "mart")
                   for m in ("lps", "pm_nat", "pm_adv")}
