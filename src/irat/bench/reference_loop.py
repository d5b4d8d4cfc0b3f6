"""A plain adversarial-training loop in the style of the papers' public scripts — the baseline of `irat bench --reference`.

What makes it "reference style" (taken from the MAIL / GAIRAT / TRADES training scripts):

- a `torch.utils.data.DataLoader` over a Dataset that turns each image into a PIL image and applies a
  per-image torchvision transform (`transforms.ToTensor()`), like `torchvision.datasets.FashionMNIST`;
- float32, NCHW, no autocast, no channels_last, no compile;
- AT / MAIL-AT: PGD in eval mode whose every step calls `model.zero_grad()` and `loss.backward()` on an
  input that requires grad, so it computes the gradients of all parameters as well as the input's
  (the MAIL and GAIRAT `pgd` functions);
- TRADES / MAIL-TRADES: the TRADES attack recomputes `model(x_natural)` inside every PGD step (with
  autograd recording), and the loss computes `model(x_natural)` twice (TRADES `trades_loss`);
- the margin for MAIL is read from a softmax of the training logits; weights normalized over the batch.

It uses irat's model registry only to build the *same* architecture, and nothing else from irat.
Run it alone (one epoch, prints images/s): `python benchmarks/reference_loop.py --method at`.
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

METHODS = ("at", "mail-at", "trades", "mail-trades")


class ImageDataset(Dataset):
    """uint8 [N, C, H, W] images served one at a time as PIL images through a torchvision transform."""

    def __init__(self, x_u8: torch.Tensor, y: torch.Tensor, transform):
        self.x = x_u8.cpu().numpy()
        self.y = y.cpu().tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = self.x[i]
        img = Image.fromarray(img[0], mode="L") if img.shape[0] == 1 else Image.fromarray(img.transpose(1, 2, 0))
        return self.transform(img), self.y[i]


def make_loader(x_u8: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0, num_workers: int = 0,
                augment: bool = False) -> DataLoader:
    tf = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ImageDataset(x_u8, y, transforms.Compose(tf + [transforms.ToTensor()])),
                      batch_size=batch_size, shuffle=True, num_workers=num_workers, generator=g)


def pgd_reference(model, data, target, epsilon, step_size, num_steps, rand_init=True):
    """The MAIL/GAIRAT `pgd`: eval mode, model.zero_grad() + loss.backward() on every step."""
    model.eval()
    if rand_init:
        x_adv = data.detach() + torch.empty_like(data).uniform_(-epsilon, epsilon)
    else:
        x_adv = data.detach()
    x_adv = torch.clamp(x_adv, 0.0, 1.0)
    for _ in range(num_steps):
        x_adv.requires_grad_()
        output = model(x_adv)
        model.zero_grad()
        with torch.enable_grad():
            loss_adv = nn.CrossEntropyLoss(reduction="mean")(output, target)
        loss_adv.backward()
        eta = step_size * x_adv.grad.sign()
        x_adv = x_adv.detach() + eta
        x_adv = torch.min(torch.max(x_adv, data - epsilon), data + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    return x_adv


def trades_attack_reference(model, x_natural, epsilon, step_size, perturb_steps):
    """The TRADES attack: KL(p(x) ‖ p(x̃)) with model(x_natural) recomputed in every step."""
    criterion_kl = nn.KLDivLoss(reduction="sum")
    model.eval()
    x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape, device=x_natural.device).detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = criterion_kl(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x_natural), dim=1))
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    return x_adv.detach()


def _mail_weights(logits, target, gamma, beta):
    """PM_adv from the training logits; ω = M · sigmoid(−γ(PM − β)) / Σ sigmoid(…)."""
    probs = F.softmax(logits, dim=1)
    true = probs.gather(1, target[:, None]).squeeze(1)
    other = probs.clone()
    other.scatter_(1, target[:, None], -1.0)
    pm = true - other.max(dim=1).values
    w = torch.sigmoid(-gamma * (pm - beta)).detach()
    return w * (len(w) / w.sum())


def train_epoch(model, loader, optimizer, device, *, method="at", epsilon=0.1, step_size=0.025, num_steps=10,
                beta_trades=6.0, gamma=10.0, beta=-0.5):
    """One epoch of the reference loop; returns the number of images seen."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    seen = 0
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        if method in ("at", "mail-at"):
            x_adv = pgd_reference(model, data, target, epsilon, step_size, num_steps)
            model.train()
            optimizer.zero_grad()
            logits = model(x_adv)
            if method == "mail-at":
                loss = (nn.CrossEntropyLoss(reduction="none")(logits, target) *
                        _mail_weights(logits, target, gamma, beta)).mean()
            else:
                loss = nn.CrossEntropyLoss(reduction="mean")(logits, target)
        else:
            x_adv = trades_attack_reference(model, data, epsilon, step_size, num_steps)
            model.train()
            optimizer.zero_grad()
            logits = model(data)
            loss_natural = F.cross_entropy(logits, target)
            logits_adv = model(x_adv)
            kl = nn.KLDivLoss(reduction="none")(F.log_softmax(logits_adv, dim=1), F.softmax(model(data), dim=1))
            if method == "mail-trades":
                w = _mail_weights(logits_adv, target, gamma, beta)
                loss_robust = (kl.sum(dim=1) * w).mean()
            else:
                loss_robust = (1.0 / len(data)) * kl.sum()
            loss = loss_natural + beta_trades * loss_robust
        loss.backward()
        optimizer.step()
        seen += len(data)
    return seen
