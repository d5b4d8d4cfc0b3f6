"""The robustness evaluation can be trusted: orderings that must hold, the official AutoAttack with the
settings we claim, sanity flags that fire on masked gradients (and not on a normal model), the MAIL
paper's protocol, the CLI contract, export, and best.pt chosen on validation data.

One tiny adversarially trained model (Fashion-MNIST, 1,000 training images, 3 epochs) serves the module;
the official AutoAttack (thousands of sequential steps whatever the batch) runs on a linear model.
Torch runs single-threaded here: on a shared 2-core machine OpenMP threads make small batches far slower.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import irat
from irat.checkpoint import load_checkpoint
from irat.cli import main
from irat.data.datasets import load_dataset
from irat.errors import IratError
from irat.evaluation import ATTACKS, PROTOCOLS, resolve_protocol

EPS = 0.1


# ---------------------------------------------------------------------------------------------- fixtures


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny AT run (PGD-3) with a validation split of 100; its last model in eval mode."""
    from irat import train

    out = tmp_path_factory.mktemp("evaluate") / "run"
    cfg = irat.build_config("fmnist-smallcnn-at", overrides=[
        "data.train_subset=1000", "data.val_size=100", "epochs=3", "batch_size=25", "attack.steps=3",
        "attack.step_size=0.04", "optim.lr=0.02", "optim.weight_decay=5e-4", "optim.milestones=[10]", "seed=0"])
    result = train(cfg, out, progress=False)
    model = irat.load_model(result.checkpoint)
    return {"dir": out, "cfg": cfg, "last": result.checkpoint, "best": result.best_checkpoint, "model": model}


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fashion-mnist")


@pytest.fixture(scope="module")
def normal_eval(run: dict[str, Any], fmnist) -> irat.evaluation.EvalResult:
    return irat.evaluate(run["model"], fmnist, ["nat", "pgd20", "pgd100", "cw"], eps=EPS, n_examples=80,
                         sanity_examples=40)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("irat: error:"), err
    return err[0]


# ---------------------------------------------------------------------------------------------- orderings


def test_accuracy_ordering_and_per_example_worst_case(normal_eval) -> None:
    acc = normal_eval.accuracy
    n = normal_eval.report["data"]["n_examples"]
    tol = 100.0 * 1 / n  # one example of noise between PGD-20 and PGD-100 (different random starts)
    assert acc["nat"] >= acc["pgd20"] >= acc["pgd100"] - tol
    assert acc["pgd100"] >= acc["worst"]
    for a in ("nat", "pgd20", "pgd100", "cw"):
        assert acc["worst"] <= acc[a]
    # the worst case is per example: robust iff no attack broke it
    ex = normal_eval.examples
    robust = sum(b is None for b in ex["broken_by"])
    assert acc["worst"] == pytest.approx(100.0 * robust / n)
    assert sum(b == "nat" for b in ex["broken_by"]) == round(n * (100 - acc["nat"]) / 100)
    for i, b in enumerate(ex["broken_by"]):
        if b is None:
            assert all(ex["robust"][a][i] == 1 for a in ex["order"])
        else:  # the first attack in run order that broke it, and none before it did
            k = ex["order"].index(b)
            assert ex["robust"][b][i] == 0
            assert all(ex["robust"][a][i] != 0 for a in ex["order"][:k])
    # every attack parameter is in the report
    assert normal_eval.report["attacks"]["pgd20"]["step_size"] == pytest.approx(EPS / 4)
    assert normal_eval.report["attacks"]["cw"]["kappa"] == 50.0
    assert normal_eval.report["attacks"]["cw"]["steps"] == 30


def test_eps_zero_gives_natural_accuracy(run: dict[str, Any], fmnist, normal_eval) -> None:
    res = irat.evaluate(run["model"], fmnist, ["nat", "fgsm", "pgd20", "cw"], eps=0.0, n_examples=30,
                        sanity_examples=10)
    acc = res.accuracy
    assert acc["fgsm"] == acc["pgd20"] == acc["cw"] == acc["worst"] == acc["nat"]
    f = normal_eval.flags["eps_zero"]
    assert not f["flag"] and f["pgd_eps0_accuracy"] == f["nat_accuracy"]


def test_train_mode_is_refused(run: dict[str, Any], fmnist) -> None:
    model = run["model"]
    model.train()
    try:
        with pytest.raises(IratError, match="train mode"):
            irat.evaluate(model, fmnist, ["nat"], eps=EPS, n_examples=4)
    finally:
        model.eval()


def test_inputs_outside_unit_box_are_flagged(run: dict[str, Any], fmnist) -> None:
    x = fmnist.x_test[:16].float() / 255.0 * 2.0 - 0.5  # e.g. forgot that normalization lives in the model
    res = irat.evaluate(run["model"], (x, fmnist.y_test[:16]), ["nat"], eps=EPS, sanity_examples=8)
    f = res.flags["input_range"]
    assert f["flag"] and f["min"] < 0 and f["max"] > 1
    assert res.flags["any"]


# ---------------------------------------------------------------------------------------------- AutoAttack


def test_autoattack_adapter_passes_explicit_settings(run: dict[str, Any], fmnist,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pyautoattack

    calls: list[dict[str, Any]] = []
    real = pyautoattack.AutoAttack

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, model: nn.Module, **kwargs: Any) -> None:
            calls.append(dict(kwargs))
            super().__init__(model, **kwargs)

        def run_standard_evaluation(self, x, y, **kwargs):  # record what would run; attack nothing
            calls[-1]["run"] = {"attacks": list(self.attacks_to_run), "apgd_iter": self.apgd.n_iter,
                                "apgd_restarts": self.apgd.n_restarts, "verbose": self.verbose,
                                "training": self.model.training}
            return x.clone(), y.clone()

    monkeypatch.setattr(pyautoattack, "AutoAttack", Spy)
    res = irat.evaluate(run["model"], fmnist, ["nat", "apgd-ce", "aa"], eps=0.07, n_examples=16, seed=3,
                        sanity_examples=4, cascade=False)
    by_version = {c["version"]: c for c in calls if "run" in c}  # (the report also builds one to read settings)
    aa, apgd = by_version["standard"], by_version["custom"]
    for c in (aa, apgd):
        assert c["eps"] == 0.07 and c["norm"] == "Linf" and c["seed"] == 3 and str(c["device"]) == "cpu"
        assert c["run"]["training"] is False and c["run"]["verbose"] is False
    assert "attacks" not in aa and aa["run"]["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert apgd["attacks"] == ["apgd-ce"] and apgd["run"]["attacks"] == ["apgd-ce"]
    assert apgd["run"]["apgd_iter"] == 100 and apgd["run"]["apgd_restarts"] == 1
    assert res.report["attacks"]["aa"]["version"] == "standard"
    assert res.report["attacks"]["apgd-ce"]["n_iter"] == 100 and res.report["attacks"]["apgd-ce"]["n_restarts"] == 1
    assert res.report["attacks"]["aa"]["square"]["n_queries"] == 5000
    assert res.report["attacks"]["aa"]["apgd_t"]["n_target_classes"] == 9


def test_autoattack_is_at_least_as_strong_as_apgd_ce(fmnist, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    x, y = fmnist.x_train[:3000].float() / 255.0, fmnist.y_train[:3000].long()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):  # ~80% test accuracy
        idx = torch.randint(0, x.shape[0], (128,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    res = irat.evaluate(model.eval(), fmnist, ["nat", "apgd-ce", "aa"], eps=0.02, n_examples=16, cascade=False,
                        sanity_examples=4)
    acc = res.accuracy
    assert acc["aa"] <= acc["apgd-ce"] <= acc["nat"] and acc["apgd-ce"] > 0
    assert acc["worst"] <= acc["aa"]
    assert res.report["cascade"]["attacks"] == []
    assert not res.flags["perturbation_bound"]["flag"]  # AutoAttack stayed in the ε-ball and the box
    out = capsys.readouterr()
    assert "apgd" not in out.out.lower() and "robust accuracy" not in out.err.lower()  # silenced


def test_cascade_runs_expensive_attacks_only_on_unbroken_examples(run: dict[str, Any], fmnist,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import irat.attacks.autoattack as aa_mod

    seen: list[int] = []

    def fake_autoattack(model, x, y, eps, **kwargs):  # the cascade bookkeeping, not AutoAttack, is tested
        seen.append(int(x.shape[0]))
        return x.clone()

    monkeypatch.setattr(aa_mod, "autoattack", fake_autoattack)
    res = irat.evaluate(run["model"], fmnist, ["nat", "pgd20", "apgd-ce", "aa"], eps=EPS, n_examples=40,
                        sanity_examples=4)
    r = res.report
    robust_after_pgd = round(r["accuracy"]["pgd20"] * 40 / 100)
    assert r["cascade"]["attacks"] == ["apgd-ce", "aa"]
    assert r["cascade"]["n_attacked"] == {"apgd-ce": robust_after_pgd, "aa": robust_after_pgd}
    assert sum(seen) == 2 * robust_after_pgd
    standalone = irat.evaluate(run["model"], fmnist, ["nat", "apgd-ce"], eps=EPS, n_examples=40,
                               sanity_examples=4, cascade=False)
    assert standalone.report["attacks"]["apgd-ce"]["n_attacked"] == round(standalone.accuracy["nat"] * 40 / 100)
    assert standalone.report["cascade"]["attacks"] == []


# ---------------------------------------------------------------------------------------------- sanity flags


class Saturated(nn.Module):
    """Logits ×10⁴: the softmax saturates, so CE input gradients are exactly zero on confident inputs."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * 1e4


class Quantized(nn.Module):
    """round(4x)/4 in front: a non-differentiable input quantization, zero input gradient everywhere."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 4) / 4)


def test_masked_gradients_are_flagged_and_a_normal_model_is_not(run: dict[str, Any], fmnist, normal_eval) -> None:
    # 200 examples: the noise margin (binomial) shrinks below the PGD-to-CW gap of this tiny model
    sat = irat.evaluate(Saturated(run["model"]).eval(), fmnist, ["nat", "pgd20", "cw"], eps=EPS, n_examples=200,
                        sanity_examples=40)
    f = sat.flags
    assert f["zero_gradients"]["flag"] and f["zero_gradients"]["share"] > 20
    # CE-PGD is blind, the CW margin is not: PGD far above the worst case
    gm = f["gradient_masking"]
    assert gm["flag"] and gm["gap"] > max(gm["threshold"], gm["noise_margin"]), (gm, sat.report["accuracy"])
    assert "possible gradient masking" in sat.markdown()

    quant = irat.evaluate(Quantized(run["model"]).eval(), fmnist, ["nat", "pgd20"], eps=EPS, n_examples=40,
                          sanity_examples=40)
    assert quant.flags["zero_gradients"]["flag"] and quant.flags["zero_gradients"]["share"] == 100.0

    g = normal_eval.flags
    for name in ("train_mode", "input_range", "eps_zero", "more_steps_stronger", "gradient_masking",
                 "zero_gradients", "perturbation_bound"):
        assert not g[name]["flag"], (name, g[name])
    assert g["gradient_masking"]["checked"] and g["more_steps_stronger"]["checked"]
    assert not g["any"]


# ---------------------------------------------------------------------------------------------- protocol


def test_mail_paper_protocol_sets_exactly_its_parameters(run: dict[str, Any], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    p = resolve_protocol("mail-paper")
    assert p is PROTOCOLS["mail-paper"] and p.eps == 0.031 and dict(p.limits) == {"aa": 1000}
    assert ATTACKS["pgd20"].params(p.eps, p.overrides["pgd20"])["step_size"] == 0.003
    assert ATTACKS["pgd100"].params(p.eps, p.overrides["pgd100"])["step_size"] == 0.003
    cw = ATTACKS["cw"].params(p.eps, p.overrides["cw"])
    assert cw["steps"] == 20 and cw["step_size"] == 0.003 and cw["kappa"] == 50.0
    assert ATTACKS["pgd20"].params(0.1)["step_size"] == pytest.approx(0.025)  # the default is untouched

    out = tmp_path / "mail.json"
    assert main(["eval", str(run["last"]), "--protocol", "mail-paper", "--attacks", "nat,pgd20,pgd100,cw",
                 "--n-examples", "4", "--sanity-examples", "4", "--quiet", "--out", str(out)]) == 0
    ev = json.loads(out.read_text())
    assert ev["eps"] == 0.031 and ev["protocol"]["name"] == "mail-paper"
    assert ev["attacks"]["pgd20"]["step_size"] == 0.003 and ev["attacks"]["pgd20"]["step_rule"] == "absolute"
    assert ev["attacks"]["pgd100"]["step_size"] == 0.003 and ev["attacks"]["pgd100"]["steps"] == 100
    assert ev["attacks"]["cw"]["steps"] == 20 and ev["attacks"]["cw"]["step_size"] == 0.003
    assert ev["protocol"]["limits"] == {"aa": 1000}

    # AutoAttack on the first 1,000 examples only, the other attacks on all of them (AutoAttack stubbed)
    import irat.attacks.autoattack as aa_mod

    got: dict[str, Any] = {"n": 0}

    def fake_autoattack(model, x, y, eps, **kwargs):
        got["n"] += int(x.shape[0])
        got.update(eps=eps, version=kwargs["version"])
        return x.clone()

    monkeypatch.setattr(aa_mod, "autoattack", fake_autoattack)
    out2 = tmp_path / "mail_aa.json"
    assert main(["eval", str(run["last"]), "--protocol", "mail-paper", "--attacks", "nat,aa", "--n-examples",
                 "1100", "--sanity-examples", "4", "--quiet", "--out", str(out2)]) == 0
    ev = json.loads(out2.read_text())
    assert ev["attacks"]["aa"]["n_examples"] == 1000 and ev["attacks"]["nat"]["n_examples"] == 1100
    assert ev["attacks"]["aa"]["eps"] == 0.031 and ev["attacks"]["aa"]["version"] == "standard"
    assert got["eps"] == 0.031 and got["version"] == "standard"
    assert got["n"] == ev["attacks"]["aa"]["n_attacked"] <= 1000
    assert ev["worst"]["common_subset"]["n_examples"] == 1000
    examples = json.loads(out2.with_name("mail_aa_examples.json").read_text())
    assert all(r is None for r in examples["robust"]["aa"][1000:])


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_eval_writes_reports_and_prints_the_table(run: dict[str, Any], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "eval.json"
    code = main(["eval", str(run["last"]), "--attacks", "nat,fgsm", "--n-examples", "50", "--sanity-examples",
                 "10", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| attack | accuracy (%)" in printed and "| fgsm |" in printed and "**worst**" in printed
    ev = json.loads(out.read_text())
    assert set(ev["accuracy"]) == {"nat", "fgsm", "worst"}
    assert ev["checkpoint"]["sha256"] and ev["checkpoint"]["epoch"] == 3
    assert ev["data"] == {**ev["data"], "name": "fashion-mnist", "split": "test", "n_examples": 50}
    assert ev["protocol"]["name"] == "default" and ev["eps"] == EPS
    assert set(ev["flags"]) >= {"train_mode", "input_range", "eps_zero", "more_steps_stronger", "gradient_masking",
                                "zero_gradients", "any"}
    assert (out.parent / "eval.md").read_text().startswith("# Robustness evaluation")
    examples = json.loads((out.parent / "eval_examples.json").read_text())
    assert len(examples["broken_by"]) == 50 and set(examples["broken_by"]) <= {None, "nat", "fgsm"}


@pytest.mark.parametrize("args, field", [
    (["--attacks", "nat,bogus"], "--attacks"),
    (["--attacks", "pgd20,"], None),  # a trailing comma is fine: checked below
    (["--eps", "-0.1"], "--eps"),
    (["--eps", "nan"], "--eps"),
    (["--n-examples", "0"], "--n-examples"),
    (["--protocol", "madry"], "--protocol"),
])
def test_cli_eval_bad_options_exit_2_naming_the_field(run: dict[str, Any], tmp_path: Path, args: list[str],
                                                      field: str | None, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "eval.json"
    if field is None:  # valid: parse only, do not run
        from irat.evaluation import parse_attacks
        assert parse_attacks("pgd20,") == ["pgd20"] and parse_attacks("all") == list(ATTACKS)
        return
    assert main(["eval", str(run["last"]), *args, "--out", str(out)]) == 2
    assert field in _one_line_error(capsys)
    assert not out.exists()


def test_cli_eval_bad_checkpoint_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "run" / "checkpoints" / "last.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["eval", str(bad)]) == 2
    assert "checkpoint" in _one_line_error(capsys)
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in _one_line_error(capsys)
    assert not (tmp_path / "run" / "eval.json").exists()


# ---------------------------------------------------------------------------------------------- export


def test_export_round_trip_and_model_card(run: dict[str, Any], fmnist, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # an eval.json for this checkpoint in the run directory fills the card
    assert main(["eval", str(run["last"]), "--attacks", "nat", "--n-examples", "30", "--sanity-examples", "4",
                 "--quiet"]) == 0
    ev = json.loads((run["dir"] / "eval.json").read_text())
    out = tmp_path / "model.pt"
    assert main(["export", str(run["last"]), "--out", str(out)]) == 0
    x = fmnist.x_test[:7].float() / 255.0
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    with torch.no_grad():
        assert torch.allclose(program(x), irat.load_model(run["last"])(x), atol=1e-5)
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["dataset"] == "fashion-mnist" and card["threat_model"] == "Linf" and card["eps"] == "0.1"
    assert card["clean_acc"] == f"{ev['accuracy']['nat']:.2f}" and card["autoattack_acc"] is None
    assert card["architecture"] == "SmallCNN" and card["irat"]["checkpoint_sha256"] == ev["checkpoint"]["sha256"]
    # plain torch, no irat import
    code = ("import sys, torch; m = torch.export.load(sys.argv[1]).module(); y = m(torch.rand(2, 1, 28, 28)); "
            "assert y.shape == (2, 10) and 'irat' not in sys.modules; print('ok')")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model.pt2")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    # an eval.json of another checkpoint does not fill the card
    other = tmp_path / "other_eval.json"
    other.write_text(json.dumps({**ev, "checkpoint": {**ev["checkpoint"], "sha256": "0" * 64}}))
    assert main(["export", str(run["last"]), "--out", str(tmp_path / "m2.pt"), "--eval", str(other)]) == 0
    card2 = json.loads((tmp_path / "m2.json").read_text())
    assert card2["clean_acc"] is None and "another checkpoint" in card2["footnote"]
    capsys.readouterr()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    assert main(["export", str(bad), "--out", str(tmp_path / "x.pt")]) == 2
    assert "checkpoint" in _one_line_error(capsys)
    assert main(["export", str(tmp_path / "nope.pt")]) == 2
    assert "not found" in _one_line_error(capsys)
    assert not (tmp_path / "x.pt2").exists()


# ---------------------------------------------------------------------------------------------- validation


def test_best_checkpoint_is_chosen_on_validation_not_test(run: dict[str, Any]) -> None:
    metrics = [json.loads(line) for line in (run["dir"] / "metrics.jsonl").read_text().splitlines()]
    vals = [(m["val"]["pgd20"], m["epoch"]) for m in metrics if "val" in m]
    assert len(vals) == 3
    top = max(v for v, _ in vals)
    best_epoch = min(e for v, e in vals if v == top)  # the first epoch reaching the maximum
    best = load_checkpoint(run["dir"] / "checkpoints" / "best.pt")
    assert best["epoch"] == best_epoch and best["best"]["val_pgd20"] == top

    # the logged number is reproduced on the held-out validation split (part of the training set)
    from irat.data.loader import load_splits
    from irat.evaluation import quick_accuracy

    cfg = run["cfg"]
    splits = load_splits(cfg, torch.device("cpu"))
    assert splits.x_val.shape[0] == 100
    model = irat.load_model(run["dir"] / "checkpoints" / "best.pt").to(memory_format=torch.channels_last)
    acc = quick_accuracy(model, splits.x_val, splits.y_val, cfg.attack.eps, ["nat", "pgd20"],
                         batch_size=max(cfg.batch_size, 256), seed=cfg.seed + best_epoch, channels_last=True)
    assert acc["pgd20"] == pytest.approx(top, abs=100.0 / 100)  # one example: channels-last numerics


# ---------------------------------------------------------------------------------------------- reuse


def test_adding_an_attack_reuses_the_stored_ones_and_matches_a_fresh_evaluation(
        run: dict[str, Any], fmnist, normal_eval, monkeypatch: pytest.MonkeyPatch) -> None:
    from irat.evaluation import AttackSpec

    calls: list[str] = []
    real_run = AttackSpec.run

    def counting(self, *a, **kw):
        calls.append(self.name)
        return real_run(self, *a, **kw)

    monkeypatch.setattr(AttackSpec, "run", counting)
    names = ["nat", "pgd20", "pgd100", "cw", "apgd-ce"]
    kw = dict(eps=EPS, n_examples=80, sanity_examples=40)
    added = irat.evaluate(run["model"], fmnist, names, reuse=normal_eval, **kw)
    assert added.report["reused"]["attacks"] == ["nat", "pgd20", "pgd100", "cw"]
    # only APGD-CE ran, plus the ε = 0 sanity check's one PGD-20 batch
    assert set(calls) == {"apgd-ce", "pgd20"} and calls.count("pgd20") == 1
    for a in ("nat", "pgd20", "pgd100", "cw"):
        assert added.examples["robust"][a] == normal_eval.examples["robust"][a]
    calls.clear()
    fresh = irat.evaluate(run["model"], fmnist, names, **kw)
    assert calls.count("pgd100") == 1 and fresh.report["reused"]["attacks"] == []
    assert fresh.examples["robust"] == added.examples["robust"]
    assert fresh.accuracy == added.accuracy
    assert fresh.report["cascade"]["n_attacked"] == added.report["cascade"]["n_attacked"]

    # other settings: nothing is taken over
    for other in (dict(kw, eps=EPS / 2), dict(kw, n_examples=60), dict(kw, seed=1), dict(kw, limits={"pgd20": 40})):
        res = irat.evaluate(run["model"], fmnist, ["nat", "pgd20"], reuse=normal_eval, **other)
        assert res.report["reused"]["attacks"] == ([] if "limits" not in other else ["nat"])


def test_checkpoint_reuse_needs_the_same_weights(run: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    kw = dict(n_examples=40, sanity_examples=20, device="cpu", out=out, reuse=True)
    first = irat.evaluate_checkpoint(run["last"], attacks=["nat", "pgd20"], **kw)
    assert first.report["reused"]["attacks"] == []
    # the same weights in another file (other metadata): the stored attacks are kept
    ckpt = torch.load(run["last"], weights_only=False)
    ckpt["metrics"] = {"note": "a copy"}
    copy = tmp_path / "copy.pt"
    torch.save(ckpt, copy)
    again = irat.evaluate_checkpoint(copy, attacks=["nat", "pgd20", "cw"], **kw)
    assert again.report["reused"]["attacks"] == ["nat", "pgd20"]
    assert again.report["checkpoint"]["path"] == str(copy)
    # other weights (one weight moved by 1e-3): nothing is kept
    from irat.checkpoint import state_hash

    name = next(k for k in ckpt["model"] if k.endswith("weight"))
    ckpt["model"][name] = ckpt["model"][name].clone()
    ckpt["model"][name].view(-1)[0] += 1e-3
    ckpt["model_sha256"] = state_hash(ckpt["model"])
    moved = tmp_path / "moved.pt"
    torch.save(ckpt, moved)
    other = irat.evaluate_checkpoint(moved, attacks=["nat", "pgd20", "cw"], **kw)
    assert other.report["reused"]["attacks"] == []


def test_channels_last_evaluation_gives_the_same_results_and_restores_the_layout(run: dict[str, Any], fmnist,
                                                                                  normal_eval) -> None:
    model = run["model"]
    # (a 1-channel kernel is contiguous in both layouts, so only the multi-channel ones tell them apart)
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1]
    assert convs and all(p.is_contiguous() for p in convs)
    seen: list[bool] = []  # per forward: were the weights channels-last?

    def evaluate_watching(**kw: Any) -> irat.evaluation.EvalResult:
        hook = model.register_forward_pre_hook(lambda m, _: seen.append(all(
            p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)))
        try:
            return irat.evaluate(model, fmnist, eps=EPS, n_examples=80, sanity_examples=40, **kw)
        finally:
            hook.remove()

    plain = evaluate_watching(attacks=["nat", "pgd20", "pgd100", "cw"], channels_last=False)
    assert seen and not any(seen)
    seen.clear()
    cl = normal_eval  # the default: channels-last weights during the evaluation
    again = evaluate_watching(attacks=["nat", "pgd20"])
    assert seen and all(seen)
    assert cl.report["channels_last"] is True and plain.report["channels_last"] is False
    # same per-example outcomes (the layout changes float rounding only) and the caller's layout is back
    assert plain.examples["robust"] == cl.examples["robust"]
    assert again.examples["robust"]["pgd20"] == cl.examples["robust"]["pgd20"]
    assert all(p.is_contiguous() for p in convs)
