"""The small CNN of the TRADES work for MNIST-like data: 4 conv layers, 3 fully connected.

`width` is the first stage's channel count (32 in TRADES): the stages have width and 2·width
channels and the hidden fully connected layers 6.25·width units (200 at width 32), so width 16 is
the same network at half the width and about a quarter of the compute."""
from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: tuple[int, int] = (28, 28),
                 dropout: float = 0.0, width: int = 32):
        super().__init__()
        c1, c2, hidden = width, 2 * width, max(1, round(6.25 * width))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c1, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(c1, c2, 3), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c2, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        )
        h, w = image_size
        for _ in range(2):  # two (conv3, conv3, pool2) stages
            h, w = (h - 4) // 2, (w - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"smallcnn needs images of at least 16x16 (got {image_size})")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * h * w, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
