"""Model registry: `create_model(name, num_classes, in_channels, **kwargs)`; inputs always in [0, 1]."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .resnet import preact_resnet18, resnet18
from .smallcnn import SmallCNN
from .wrn import WideResNet
from ..errors import ConfigError

@dataclass(frozen=True)
class ArchSpec:
    """An architecture: `build(num_classes, in_channels, image_size, **keys)` and the model keys it uses
    (any other `model.*` key set to a non-default value is refused, never silently dropped)."""

    build: Callable[..., nn.Module]
    keys: frozenset[str]
    doc: str


def _wrn(default_depth: int, default_width: int) -> ArchSpec:
    return ArchSpec(lambda num_classes, in_channels, image_size, depth=None, width=None: WideResNet(
        depth or default_depth, width or default_width, num_classes, in_channels), frozenset({"depth", "width"}),
        f"Wide ResNet, depth {default_depth}, widen factor {default_width} (model.depth, model.width)")


MODELS: dict[str, ArchSpec] = {
    "smallcnn": ArchSpec(lambda num_classes, in_channels, image_size, dropout=0.0, width=None: SmallCNN(
        num_classes, in_channels, image_size, dropout, width or 32), frozenset({"width", "dropout"}),
        "TRADES' small CNN (model.width: first-stage channels, 32; model.dropout)"),
    "resnet18": ArchSpec(lambda num_classes, in_channels, image_size, width=None: resnet18(
        num_classes, in_channels, width or 64), frozenset({"width"}), "ResNet-18 (model.width: base width, 64)"),
    "preact_resnet18": ArchSpec(lambda num_classes, in_channels, image_size, width=None: preact_resnet18(
        num_classes, in_channels, width or 64), frozenset({"width"}),
        "PreAct-ResNet-18 (model.width: base width, 64)"),
    "wrn-34-10": _wrn(34, 10),
    "wrn-32-10": _wrn(32, 10),
    "wrn": _wrn(28, 10),
}

# a key at one of these values is "not set" (dropout 0 is what every architecture without dropout does)
_UNSET: dict[str, tuple] = {"depth": (None,), "width": (None,), "dropout": (0, 0.0, None)}


def architecture_keys(name: str, **keys) -> dict:
    """The model keys that are set, checked against what `name` uses: ConfigError naming the first
    key the architecture would ignore."""
    spec = MODELS[name]
    given = {k: v for k, v in keys.items() if v not in _UNSET.get(k, (None,))}
    for key in sorted(set(given) - spec.keys):
        uses = ", ".join(f"model.{k}" for k in sorted(spec.keys)) or "no model keys"
        raise ConfigError(f"model.{key}", f"unset ({name} does not use it; it takes {uses})", given[key])
    return given


class Normalize(nn.Module):
    """(x − mean) / std per channel, so the wrapped network takes [0, 1] inputs."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class HeadFP32(nn.Linear):
    """The classifier's last layer, run outside autocast: under bf16 autocast the logits, and so the
    margins and weights read from them, keep fp32 precision (SPEC §1). Same parameters as nn.Linear."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return F.linear(x.float(), self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


class Classifier(nn.Module):
    """A network with optional normalization in front; `net` holds the architecture, whose last
    nn.Linear becomes a HeadFP32 (the state dict is unchanged)."""

    def __init__(self, net: nn.Module, normalize: Normalize | None = None):
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.net = net
        heads = [m for m in net.modules() if type(m) is nn.Linear]
        if heads:
            heads[-1].__class__ = HeadFP32

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))


def create_model(name: str, num_classes: int, in_channels: int = 3, image_size: tuple[int, int] = (32, 32),
                 normalize: bool = False, mean: list[float] | None = None, std: list[float] | None = None,
                 **kwargs) -> Classifier:
    """Build a registered architecture. With `normalize`, mean/std (default 0.5) live in the model."""
    if name not in MODELS:
        raise ConfigError("model.name", f"one of: {', '.join(sorted(MODELS))}", name)
    net = MODELS[name].build(num_classes, in_channels, image_size, **architecture_keys(name, **kwargs))
    norm = None
    if normalize:
        norm = Normalize(mean or [0.5] * in_channels, std or [0.5] * in_channels)
    return Classifier(net, norm)


def model_from_config(cfg, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> Classifier:
    m = cfg.model
    return create_model(m.name, num_classes, in_channels, image_size, normalize=m.normalize, mean=m.mean,
                        std=m.std, depth=m.depth, width=m.width, dropout=m.dropout)


__all__ = ["MODELS", "ArchSpec", "architecture_keys", "Classifier", "HeadFP32", "Normalize", "create_model", "model_from_config"]
