"""A new evaluation attack is one function plus one registry line.

The toy: FGSM from a uniform random start (Wong, Rice & Kolter 2020),
x̃ = Proj_{B_ε(x) ∩ [0,1]}(x₀ + α sign ∇_x CE(f(x₀), y)), x₀ = x + U(−ε, ε), α = 1.25ε, defined here
and registered with `monkeypatch.setitem(ATTACKS, ...)`: `irat.evaluate` then runs it by name,
reports its parameters, keeps it in the ε-ball and the [0, 1] box, and counts it in the worst case.
The model is linear with labels it classifies correctly by construction (natural accuracy 100%).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import irat
from irat.evaluation import ATTACKS, AttackSpec, parse_attacks

EPS = 0.1


def fgsm_rs(model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator | None, *,
            rel_step: float) -> Tensor:
    """FGSM with a uniform random start; the start is drawn from the evaluation's generator."""
    start = torch.rand(x.shape, generator=generator, device=x.device).mul_(2).sub_(1)
    x0 = (x + eps * start).clamp(0.0, 1.0)
    with torch.enable_grad():
        x0.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x0), y), x0)
    x_adv = torch.minimum(torch.maximum(x0 + rel_step * eps * grad.sign(), x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv.detach()


@pytest.fixture
def fgsm_rs_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ATTACKS, "fgsm-rs", AttackSpec("fgsm-rs", fgsm_rs, {"rel_step": 1.25},
                                                       doc="FGSM from a uniform random start, α = 1.25ε"))


@pytest.fixture
def linear_task() -> tuple[nn.Module, Tensor, Tensor]:
    """48 random 1×8×8 images in [0, 1], labelled by the linear model itself (3 classes)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x = torch.rand(48, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    return model, x, y


def test_a_new_attack_is_one_function_and_one_registry_entry(fgsm_rs_registered, linear_task) -> None:
    model, x, y = linear_task
    assert parse_attacks("nat,fgsm-rs") == ["nat", "fgsm-rs"]  # the CLI's names come from the registry
    res = irat.evaluate(model, (x, y), ["nat", "fgsm-rs"], eps=EPS, sanity_examples=16)
    r = res.report
    assert r["order"] == ["nat", "fgsm-rs"] and r["worst"]["over"] == ["nat", "fgsm-rs"]
    entry = r["attacks"]["fgsm-rs"]
    assert entry["eps"] == EPS and entry["rel_step"] == 1.25 and entry["mode"] == "standalone"
    assert entry["doc"].startswith("FGSM from a uniform random start")
    # it attacks: below natural accuracy (100% by construction), and the worst case is its accuracy
    acc = res.accuracy
    assert acc["nat"] == 100.0 and acc["fgsm-rs"] < acc["nat"] and acc["worst"] == acc["fgsm-rs"]
    # the ε-ball and the [0, 1] box, as the evaluation measured them
    bound = res.flags["perturbation_bound"]
    assert not bound["flag"] and 0.0 < bound["max_linf"]["fgsm-rs"] <= EPS + 1e-6
    assert 0.0 <= bound["adv_min"] and bound["adv_max"] <= 1.0
    assert not res.flags["input_range"]["flag"]
    # the Markdown table describes it from its parameters
    row = next(line for line in res.markdown().splitlines() if line.startswith("| fgsm-rs |"))
    assert "ε=0.1, rel_step=1.25" in row
    # seeded: the random start comes from the evaluation's generator
    again = irat.evaluate(model, (x, y), ["nat", "fgsm-rs"], eps=EPS, sanity_examples=16)
    assert again.examples["robust"] == res.examples["robust"]


def test_a_new_expensive_attack_joins_the_cascade(monkeypatch: pytest.MonkeyPatch, linear_task) -> None:
    model, x, y = linear_task
    seen: list[int] = []

    def counted(model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator | None,
                **params: float) -> Tensor:
        seen.append(int(x.shape[0]))
        return fgsm_rs(model, x, y, eps, generator, **params)

    monkeypatch.setitem(ATTACKS, "fgsm-rs", AttackSpec("fgsm-rs", counted, {"rel_step": 1.25}, expensive=True))
    res = irat.evaluate(model, (x, y), ["fgsm-rs", "fgsm"], eps=EPS, sanity_examples=16)
    assert res.report["order"] == ["nat", "fgsm", "fgsm-rs"]  # expensive attacks run last
    assert res.report["cascade"]["attacks"] == ["fgsm-rs"]
    robust_after_fgsm = res.report["attacks"]["fgsm"]["robust"]
    assert sum(seen) == res.report["attacks"]["fgsm-rs"]["n_attacked"] == robust_after_fgsm
    assert res.accuracy["fgsm-rs"] <= res.accuracy["fgsm"] <= res.accuracy["nat"]
