"""AWP does what Wu et al. (2020) define, and nothing else: the proxy's ascent direction scaled to
γ·‖w‖ per conv/linear weight, a higher loss at the perturbed weights, the perturbation removed after
the optimizer step, and with γ = 0 training identical to plain AT."""
import pytest
import torch
import torch.nn.functional as F

import irat
from irat.awp import AWP
from irat.data.datasets import load_dataset
from irat.models import create_model


@pytest.fixture(scope="module")
def batch():
    ds = load_dataset("fashion-mnist")
    x = ds.x_train[:128].float().div(255)
    return (x.unsqueeze(1) if x.dim() == 3 else x), ds.y_train[:128].long()


@pytest.mark.parametrize("gamma", [0.01, 0.002])
def test_perturbation_is_an_ascent_of_relative_size_gamma_per_layer_and_is_undone(batch, gamma):
    torch.manual_seed(0)
    model = create_model("smallcnn", num_classes=10, in_channels=1, image_size=(28, 28), width=8).eval()
    x, y = batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    awp = AWP(model, gamma)

    def loss(m):
        return F.cross_entropy(m(x), y)

    diff = awp.compute(loss)
    weights = {n: p for n, p in model.named_parameters() if n.endswith("weight")}
    assert set(diff) == set(weights)  # conv and linear weights; never the biases
    for n, w in weights.items():
        assert float(diff[n].norm() / w.detach().norm()) == pytest.approx(gamma, rel=1e-4)
    with torch.no_grad():
        clean = float(loss(model))
        awp.apply(diff, +1.0)
        perturbed = float(loss(model))
        awp.apply(diff, -1.0)
    assert perturbed > clean  # the worst-case direction raises the loss
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=1e-6)


def test_awp_with_gamma_zero_trains_exactly_like_at(tmp_path):
    sets = ["model.width=8", "data.train_subset=256", "data.val_size=64", "batch_size=64", "epochs=1",
            "attack.steps=2", "optim.milestones=[]", "seed=3"]
    models = {}
    for name, extra in (("at", ["method=at"]), ("awp0", ["method=awp-at", "awp.gamma=0"]),
                        ("awp", ["method=awp-at", "awp.gamma=0.01"])):
        cfg = irat.build_config("fmnist-smallcnn-at", overrides=sets + extra)
        models[name] = irat.load_model(irat.train(cfg, tmp_path / name, progress=False).checkpoint).state_dict()
    for k, v in models["at"].items():
        assert torch.equal(v, models["awp0"][k]), k
    # and γ > 0 does change the update
    assert any(not torch.equal(v, models["awp"][k]) for k, v in models["at"].items())
