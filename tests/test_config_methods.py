"""Configuration layering, presets and the methods registry."""
import pytest
import torch

import irat
from irat.config import build_config, parse_overrides
from irat.presets import preset_names
from irat.errors import ConfigError
from irat.methods import METHODS
from irat.models import MODELS, create_model

PAPER_METHODS = ["at", "trades", "mart", "fat", "awp-at", "awp-trades", "gairat", "gair-trades", "gair-mart",
                 "mail-at", "mail-trades", "mail-mart", "clirat", "clir-trades", "clir-mart"]


def test_every_spec_method_is_registered():
    assert set(PAPER_METHODS) <= set(METHODS)


@pytest.mark.parametrize("family", ["cifar10-resnet18", "cifar10-wrn32-10", "fmnist-smallcnn"])
def test_presets_cover_every_row_of_both_papers_tables(family):
    names = set(preset_names())
    for m in PAPER_METHODS:
        assert f"{family}-{m}" in names
    assert {"fmnist-quickstart", "fmnist-smallcnn-at", "cifar10-resnet18-at", "cifar10-wrn32-10-at"} <= names


def test_papers_hyperparameters():
    c = build_config("cifar10-resnet18-mail-at")
    assert (c.objective, c.reweight.margin, c.reweight.weighting, c.reweight.gamma, c.reweight.beta) == \
        ("at", "pm_adv", "sigmoid", 10.0, -0.5)
    assert (c.optim.lr, c.optim.weight_decay, c.epochs, c.optim.milestones) == (0.01, 3.5e-3, 120, [75, 90])
    assert c.attack.eps == pytest.approx(8 / 255) and c.attack.step_size == pytest.approx(2 / 255)
    assert c.burn_in_end == 76  # the epoch after the first LR decay (SPEC §2)
    c = build_config("cifar10-wrn32-10-mail-trades")
    assert (c.objective, c.tradeoff, c.reweight.gamma, c.reweight.beta) == ("trades", 5.0, 2.0, 0.0)
    assert (c.optim.lr, c.optim.weight_decay, c.model.name) == (0.1, 7e-4, "wrn-32-10")
    c = build_config("cifar10-resnet18-clir-mart")
    assert (c.objective, c.tradeoff, c.reweight.margin) == ("mart", 6.0, "cl_pm")
    c = build_config("cifar10-resnet18-gairat")
    assert (c.reweight.margin, c.reweight.weighting, c.reweight.lam, c.reweight.lps_mode) == ("lps", "gair", -1.0, "count")
    assert build_config("cifar10-resnet18-awp-trades").awp.gamma == 0.005
    assert build_config("cifar10-resnet18-awp-at").awp.gamma == 0.01
    f = build_config("fmnist-smallcnn-mail-at")
    assert f.burn_in_end == f.optim.milestones[0] + 1 and f.attack.eps == 0.1 and f.attack.step_size == 0.025


def test_method_override_brings_its_defaults_and_explicit_set_wins():
    c = build_config("fmnist-smallcnn-at", overrides=["method=mail-trades"])
    assert (c.method, c.objective, c.tradeoff, c.reweight.gamma) == ("mail-trades", "trades", 5.0, 2.0)
    c = build_config("fmnist-smallcnn-mail-at", overrides=["method=clirat", "reweight.gamma=3", "tradeoff=1"])
    assert (c.reweight.margin, c.reweight.gamma, c.tradeoff) == ("cl_pm", 3.0, 1.0)


def test_any_other_combination():
    c = build_config("fmnist-smallcnn-at", overrides=[
        "method=custom", "objective=mart", "reweight.margin=pm_nat", "reweight.weighting=sigmoid",
        "reweight.gamma=4", "reweight.beta=0.1", "reweight.norm=constant", "reweight.from_epoch=3"])
    assert (c.objective, c.reweight.margin, c.reweight.norm, c.burn_in_end) == ("mart", "pm_nat", "constant", 3)


def test_mail_table1_grid_cells_take_each_objectives_mail_sigmoid():
    """A custom method's sigmoid weighting takes MAIL §4.1's γ, β of its objective (10, −0.5 for AT; 2, 0
    for TRADES and MART) unless set; LPS takes GAIRAT's weighting; an explicit value wins."""
    got = {}
    for objective in ("at", "trades", "mart"):
        for margin in ("lps", "pm_nat", "pm_adv"):
            r = build_config("fmnist-smallcnn-at", overrides=[
                "method=custom", f"objective={objective}", f"reweight.margin={margin}"]).reweight
            got[objective, margin] = (r.weighting, r.gamma, r.beta) if r.weighting == "sigmoid" else r.weighting
    assert got == {("at", "lps"): "gair", ("at", "pm_nat"): ("sigmoid", 10.0, -0.5),
                   ("at", "pm_adv"): ("sigmoid", 10.0, -0.5),
                   ("trades", "lps"): "gair", ("trades", "pm_nat"): ("sigmoid", 2.0, 0.0),
                   ("trades", "pm_adv"): ("sigmoid", 2.0, 0.0), ("mart", "lps"): "gair",
                   ("mart", "pm_nat"): ("sigmoid", 2.0, 0.0), ("mart", "pm_adv"): ("sigmoid", 2.0, 0.0)}
    r = build_config("fmnist-smallcnn-at", overrides=[
        "method=custom", "objective=trades", "reweight.margin=pm_adv", "reweight.gamma=3"]).reweight
    assert (r.gamma, r.beta) == (3.0, 0.0)
    for name in ("mail-at", "mail-trades", "clir-mart"):  # the named methods keep their own
        r = build_config(f"fmnist-smallcnn-{name}").reweight
        assert (r.gamma, r.beta) == (METHODS[name]["reweight"]["gamma"], METHODS[name]["reweight"]["beta"])


def test_dotted_overrides_from_the_cli_contract():
    c = build_config("fmnist-smallcnn-at", overrides=[
        "epochs=2", "seed=3", "batch_size=64", "data.name=fashion-mnist", "data.train_subset=100",
        "data.val_size=10", "model.name=smallcnn", "optim.lr=0.1", "attack.eps=0", "attack.steps=3",
        "attack.step_size=0.01"])
    assert (c.epochs, c.seed, c.batch_size, c.data.train_subset, c.data.val_size, c.optim.lr, c.attack.eps,
            c.attack.steps, c.attack.step_size) == (2, 3, 64, 100, 10, 0.1, 0, 3, 0.01)
    assert parse_overrides(["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}


@pytest.mark.parametrize("override,field", [
    ("attack.eps=-0.1", "attack.eps"), ("method=nope", "method"), ("reweight.margin=bogus", "reweight.margin"),
    ("model.name=vgg", "model.name"), ("reweight.gamma=-1", "reweight.gamma"), ("nonsense=1", "nonsense"),
    ("reweight.from_epoch=99", "reweight.from_epoch"), ("optim.lr=nan", "optim.lr"),
])
def test_validation_names_the_field(override, field):
    with pytest.raises(ConfigError) as e:
        build_config("fmnist-smallcnn-at", overrides=[override])
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_take_01_inputs_and_give_k_logits(name):
    if name.startswith("wrn"):  # a thin, shallow WRN keeps the test fast
        m = create_model(name, 7, 3, (32, 32), depth=10, width=1)
    else:
        m = create_model(name, 7, 3 if name != "smallcnn" else 1, (32, 32) if name != "smallcnn" else (28, 28))
    x = torch.rand(2, 3 if name != "smallcnn" else 1, *((32, 32) if name != "smallcnn" else (28, 28)))
    assert m(x).shape == (2, 7)


def test_wrn_depth_and_width():
    from irat.models.wrn import WideBlock
    m = create_model("wrn-34-10", 10, 3)
    assert sum(isinstance(b, WideBlock) for b in m.modules()) == (34 - 4) // 2
    assert m.net.fc.in_features == 640
    # ⌊(32 − 4) / 6⌋ = 4 blocks per stage, as in the reference implementations
    assert sum(isinstance(b, WideBlock) for b in create_model("wrn-32-10", 10, 3).modules()) == 12


def test_normalization_lives_inside_the_model():
    m = create_model("smallcnn", 10, 1, (28, 28), normalize=True, mean=[0.5], std=[0.25])
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(m(x), m.net((x - 0.5) / 0.25))


def test_api_exports():
    assert callable(irat.train) and callable(irat.load_model) and callable(irat.build_config)
