"""Margins (SPEC §1) and weights (SPEC §2): hand-computed values from the papers and invariants."""
import math

import pytest
import torch

from irat.margins import cl_pm, confused_label_count, lps, pm_adv, pm_dif, pm_nat
from irat.weighting import gair_weights, normalize, reweighting_active, sigmoid_weights


def P(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_clirat_figure2_example():
    # true label i (index 0), p_i = 0.3, p_j = 0.5, p_k = 0.4 (unnormalised as in the figure)
    probs, y = P([0.3, 0.5, 0.4]), torch.tensor([0])
    assert pm_adv(probs, y).item() == pytest.approx(-0.2)
    assert cl_pm(probs, y).item() == pytest.approx(-0.3)
    # pentagon A: a single confused label gives the same value as PM
    a = P([0.3, 0.5, 0.2])
    assert cl_pm(a, y).item() == pytest.approx(-0.2) == pm_adv(a, y).item()


@pytest.mark.parametrize("p_y,p_j,expected", [(0.5, 0.5, 0.0), (0.6, 0.4, 0.2), (0.4, 0.6, -0.2)])
def test_mail_figure3_cases(p_y, p_j, expected):
    probs, y = P([p_y, p_j]), torch.tensor([0])
    assert pm_nat(probs, y).item() == pytest.approx(expected)
    assert pm_adv(probs, y).item() == pytest.approx(expected)


def test_margin_sign_is_the_papers_not_the_reference_codes():
    # the reference MAIL code returns max_{j≠y} p_j − p_y; ours is larger for safer examples
    probs = P([0.9, 0.05, 0.05], [0.1, 0.8, 0.1])
    m = pm_adv(probs, torch.tensor([0, 0]))
    assert m[0] > 0 > m[1]


def test_pm_dif():
    nat, at_lps = P([0.7, 0.3], [0.9, 0.1]), P([0.45, 0.55], [0.9, 0.1])
    assert torch.allclose(pm_dif(nat, at_lps, torch.tensor([0, 0])), torch.tensor([0.25, 0.0]))


def _random_probs(n, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(n, k, generator=g), 1), torch.randint(0, k, (n,), generator=g)


@pytest.mark.parametrize("k", [2, 3, 10, 100])
def test_cl_pm_bounded_by_pm_with_equality_for_at_most_one_confused_label(k):
    probs, y = _random_probs(4000, k)
    cl, pm = cl_pm(probs, y), pm_adv(probs, y)
    assert (cl <= pm + 1e-6).all()
    n_conf = confused_label_count(probs, y)
    eq = n_conf <= 1
    assert torch.allclose(cl[eq], pm[eq], atol=1e-6)
    if k > 2:
        assert (cl[n_conf >= 2] < pm[n_conf >= 2]).all()
    assert (cl >= -(k - 1) - 1e-6).all() and (pm.abs() <= 1 + 1e-6).all()


def test_ties_are_not_confused_labels():
    probs, y = P([0.4, 0.4, 0.2]), torch.tensor([0])
    assert confused_label_count(probs, y).item() == 0
    assert cl_pm(probs, y).item() == pytest.approx(0.0)


def test_margins_carry_no_gradient_and_keep_device_and_shape():
    logits = torch.randn(8, 5, requires_grad=True)
    probs, y = torch.softmax(logits, 1), torch.randint(0, 5, (8,))
    for m in (pm_adv(probs, y), cl_pm(probs, y), pm_nat(probs, y), pm_dif(probs, probs, y)):
        assert m.shape == (8,) and not m.requires_grad and m.device == probs.device


def test_lps_modes():
    kappa, first = torch.tensor([10, 3, 0]), torch.tensor([10, 2, 0])
    assert lps(kappa, first, "count").tolist() == [10, 3, 0]
    assert lps(kappa, first, "first").tolist() == [10, 2, 0]


# ---- weights ----------------------------------------------------------------------------------

def test_sigmoid_weights_formula_and_monotonicity():
    m = torch.linspace(-1, 1, 201)
    w = sigmoid_weights(m, gamma=10.0, beta=-0.5)
    assert torch.allclose(w, 1 / (1 + torch.exp(10.0 * (m + 0.5))))
    assert (w[1:] <= w[:-1]).all(), "weights must be non-increasing in the margin"
    assert sigmoid_weights(torch.tensor([-0.5]), 10.0, -0.5).item() == pytest.approx(0.5)
    assert torch.allclose(sigmoid_weights(m, 0.0, 0.3), torch.full_like(m, 0.5))


def test_gair_weights_at_kappa_0_half_and_T():
    T = 10
    k = torch.tensor([0, 5, 10])
    tanh = gair_weights(k, T, lam=-1.0, kind="tanh")
    expected = [(1 + math.tanh(-1 + 5)) / 2, (1 + math.tanh(-1)) / 2, (1 + math.tanh(-1 - 5)) / 2]
    assert tanh.tolist() == pytest.approx(expected, abs=1e-6)
    sig = gair_weights(k, T, lam=-1.0, kind="sigmoid")
    assert sig.tolist() == pytest.approx([1 / (1 + math.exp(-4)), 1 / (1 + math.exp(1)), 1 / (1 + math.exp(6))], abs=1e-6)
    disc = gair_weights(k, T, kind="discrete")
    assert disc.tolist() == pytest.approx([11 / 11, 6 / 11, 1 / 11])
    assert (tanh[1:] < tanh[:-1]).all()


def test_batch_normalization_sums_to_M_and_constant_scales():
    w = torch.rand(128) + 0.01
    omega = normalize(w, "batch")
    assert omega.sum().item() == pytest.approx(128.0, rel=1e-5)
    assert omega.mean().item() == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(normalize(w, "constant", c=3.0), 3 * w)


def test_global_normalization_under_a_mocked_two_rank_world():
    # each rank normalises with the all-reduced Σw and the global batch size
    w = torch.rand(256) + 0.01
    shards = w.chunk(2)
    global_sum = sum(s.sum() for s in shards)
    omegas = [normalize(s, "batch", global_sum=global_sum, global_count=256) for s in shards]
    assert sum(o.sum() for o in omegas).item() == pytest.approx(256.0, rel=1e-5)
    assert torch.allclose(torch.cat(omegas), normalize(w, "batch"), rtol=1e-5)


def test_weights_carry_no_gradient():
    m = torch.randn(16, requires_grad=True)
    assert not normalize(sigmoid_weights(m, 10, -0.5), "batch").requires_grad


def test_burn_in():
    assert not reweighting_active(75, 76) and reweighting_active(76, 76)


def test_reference_equivalence_constant_norm():
    """With norm=constant, c=3 and the reference sign convention, MAIL weights equal
    3·sigmoid(slope·(−PM + bias)): the reference code's margin is −PM = max_{j≠y} p_j − p_y."""
    probs, y = _random_probs(512, 10, seed=3)
    p_y = probs.gather(1, y[:, None]).squeeze(1)
    others = probs.clone()
    others[torch.arange(512), y] = -1.0
    reference_margin = others.max(1).values - p_y  # the reference code's (negative) PM
    for slope, bias in [(10.0, -0.5), (2.0, 0.0)]:
        ref = 3 * torch.sigmoid(slope * (reference_margin + bias))
        ours = normalize(sigmoid_weights(pm_adv(probs, y), gamma=slope, beta=bias), "constant", 3.0)
        assert torch.allclose(ours, ref, atol=1e-6)
