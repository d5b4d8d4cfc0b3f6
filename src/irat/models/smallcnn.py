"""The small CNN of the TRADES work for MNIST-like data: 4 conv layers, 3 fully connected."""
from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, image_size: tuple[int, int] = (28, 28),
                 dropout: float = 0.0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        )
        h, w = image_size
        for _ in range(2):  # two (conv3, conv3, pool2) stages
            h, w = (h - 4) // 2, (w - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"smallcnn needs images of at least 16x16 (got {image_size})")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * h * w, 200), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(200, 200), nn.ReLU(inplace=True),
            nn.Linear(200, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
