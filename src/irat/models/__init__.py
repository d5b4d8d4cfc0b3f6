"""Model registry: `create_model(name, num_classes, in_channels, **kwargs)`; inputs always in [0, 1]."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .resnet import preact_resnet18, resnet18
from .smallcnn import SmallCNN
from .wrn import WideResNet

MODELS: dict[str, Callable[..., nn.Module]] = {
    "smallcnn": lambda num_classes, in_channels, image_size, dropout=0.0, width=None, **_: SmallCNN(
        num_classes, in_channels, image_size, dropout, width or 32),
    "resnet18": lambda num_classes, in_channels, **_: resnet18(num_classes, in_channels),
    "preact_resnet18": lambda num_classes, in_channels, **_: preact_resnet18(num_classes, in_channels),
    "wrn-34-10": lambda num_classes, in_channels, depth=None, width=None, **_: WideResNet(
        depth or 34, width or 10, num_classes, in_channels),
    "wrn-32-10": lambda num_classes, in_channels, depth=None, width=None, **_: WideResNet(
        depth or 32, width or 10, num_classes, in_channels),
    "wrn": lambda num_classes, in_channels, depth=None, width=None, **_: WideResNet(
        depth or 28, width or 10, num_classes, in_channels),
}


class Normalize(nn.Module):
    """(x − mean) / std per channel, so the wrapped network takes [0, 1] inputs."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """A network with optional normalization in front; `net` holds the architecture."""

    def __init__(self, net: nn.Module, normalize: Normalize | None = None):
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))


def create_model(name: str, num_classes: int, in_channels: int = 3, image_size: tuple[int, int] = (32, 32),
                 normalize: bool = False, mean: list[float] | None = None, std: list[float] | None = None,
                 **kwargs) -> Classifier:
    """Build a registered architecture. With `normalize`, mean/std (default 0.5) live in the model."""
    if name not in MODELS:
        from ..errors import ConfigError
        raise ConfigError("model.name", f"one of: {', '.join(sorted(MODELS))}", name)
    net = MODELS[name](num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
    norm = None
    if normalize:
        norm = Normalize(mean or [0.5] * in_channels, std or [0.5] * in_channels)
    return Classifier(net, norm)


def model_from_config(cfg, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> Classifier:
    m = cfg.model
    return create_model(m.name, num_classes, in_channels, image_size, normalize=m.normalize, mean=m.mean,
                        std=m.std, depth=m.depth, width=m.width, dropout=m.dropout)


__all__ = ["MODELS", "Classifier", "Normalize", "create_model", "model_from_config"]
