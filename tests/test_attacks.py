"""PGD invariants: the ε-ball and [0, 1] box, κ / first-misclassified step on a hand-built model,
FAT's early stop, mode restoration, and input-only gradients."""
import pytest
import torch
from torch import nn

from irat.attacks.pgd import attack_loss, pgd
from irat.models import create_model


class Threshold(nn.Module):
    """logits = [10·(0.535 − mean(x)), 0]: class 0 iff mean(x) < 0.535; records the mode it ran in."""

    def __init__(self):
        super().__init__()
        self.seen_training: list[bool] = []
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        self.seen_training.append(self.training)
        s = 10 * (0.535 - x.flatten(1).mean(1)) + 0 * self.dummy
        return torch.stack([s, torch.zeros_like(s)], 1)


X0 = torch.tensor([0.5, 0.45, 0.6, 0.3]).view(4, 1, 1, 1)
Y0 = torch.zeros(4, dtype=torch.long)


def test_kappa_and_first_wrong_on_a_known_path():
    # PGD climbs +α per step from x0 (no random start): x^(t) = x0 + t·α until the ε-ball stops it
    res = pgd(Threshold(), X0, Y0, eps=0.1, steps=10, step_size=0.01, start="none")
    # x0=0.5: iterates 0.50…0.53 correct, 0.54 wrong → κ=4, first=4
    # x0=0.45: 0.45…0.53 correct (t=0..8), t=9 wrong → κ=9, first=9
    # x0=0.6: wrong from the start → κ=0, first=0;  x0=0.3: never reaches 0.535 → κ=10, first=T=10
    assert res.kappa.tolist() == [4, 9, 0, 10]
    assert res.first_wrong.tolist() == [4, 9, 0, 10]


def test_lps_iterate_and_its_probabilities():
    res = pgd(Threshold(), X0, Y0, eps=0.1, steps=10, step_size=0.01, start="none", keep_lps_iterate=True)
    assert res.x_at_first_wrong.flatten().tolist() == pytest.approx([0.54, 0.54, 0.6, 0.4], abs=1e-5)
    p0 = res.probs_at_first_wrong[:, 0]
    assert (p0[:3] < 0.5).all() and p0[3] > 0.5  # misclassified iterates; the last never was


@pytest.mark.parametrize("tau,expected_final,expected_steps", [(0, 0.54, 4), (1, 0.55, 5), (2, 0.56, 6)])
def test_fat_early_stop(tau, expected_final, expected_steps):
    res = pgd(Threshold(), X0[:1], Y0[:1], eps=0.1, steps=10, step_size=0.01, start="none", tau=tau)
    assert res.x_adv.item() == pytest.approx(expected_final, abs=1e-5)
    assert res.steps_taken.item() == expected_steps


def test_mode_is_eval_inside_and_restored():
    m = Threshold()
    m.train()
    pgd(m, X0, Y0, eps=0.1, steps=3, step_size=0.01)
    assert m.seen_training and not any(m.seen_training)
    assert m.training
    m.eval()
    pgd(m, X0, Y0, eps=0.1, steps=3, step_size=0.01)
    assert not m.training


@pytest.mark.parametrize("loss,start", [("ce", "uniform"), ("kl", "normal"), ("cw", "uniform"), ("ce", "none")])
def test_eps_ball_and_box_on_a_random_network(loss, start):
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, 1, (28, 28))
    x = torch.rand(16, 1, 28, 28)
    x[:4] = 0.0  # at the box's edges
    x[4:8] = 1.0
    y = torch.randint(0, 10, (16,))
    eps = 0.1
    target = torch.softmax(model(x), 1).detach() if loss == "kl" else None
    res = pgd(model, x, y, eps, steps=5, step_size=0.05, loss=loss, start=start, target_probs=target)
    d = (res.x_adv - x).abs().max().item()
    assert d <= eps + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert d > 0.5 * eps  # it moved
    assert all(p.grad is None for p in model.parameters()), "attack steps must not touch weight gradients"


def test_per_sample_eps_tensor():
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, 1, (28, 28))
    x, y = torch.rand(6, 1, 28, 28) * 0.5 + 0.25, torch.randint(0, 10, (6,))
    eps = torch.tensor([0.0, 0.01, 0.02, 0.05, 0.1, 0.2])
    res = pgd(model, x, y, eps, steps=5, step_size=eps / 4)
    per = (res.x_adv - x).flatten(1).abs().max(1).values
    assert (per <= eps + 1e-6).all()
    assert per[0] == 0


def test_attack_increases_loss():
    torch.manual_seed(1)
    model = create_model("smallcnn", 10, 1, (28, 28)).eval()
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    res = pgd(model, x, y, 0.1, steps=10, step_size=0.025)
    with torch.no_grad():
        assert attack_loss(model(res.x_adv), y, "ce").mean() > attack_loss(model(x), y, "ce").mean()


def test_cw_loss_is_clamped_margin():
    # −max(z_y − max_{j≠y} z_j, −κ): the clamp stops the push once misclassified by more than κ
    logits = torch.tensor([[100.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 60.0, 0.0]])
    y = torch.tensor([0, 0, 0])
    assert attack_loss(logits, y, "cw", cw_kappa=50.0).tolist() == pytest.approx([-100.0, 1.0, 50.0])
