"""An example of your own model for prunebench: a file with a factory that takes ``num_classes``.

    prunebench prune --model examples/models/small_cnn.py:small_cnn --input-size 32 --explain
    prunebench run reports/plans/user-factory.toml --out runs/user-factory

prunebench imports this file (running its code, as any import does) and calls ``small_cnn(num_classes=N)``. The prunable
layers are found automatically (every coupled group but the classifier); the residual add ties ``stem`` and ``block.conv2``
into one group.
"""

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels * 2)
        self.conv2 = nn.Conv2d(channels * 2, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class SmallCNN(nn.Module):
    """stem 32 → residual block (64 inner) → stride-2 conv 64 → residual block (128 inner) → pool → linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        self.block1 = Block(32)
        self.down = nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True))
        self.block2 = Block(64)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.down(self.block1(self.stem(x))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def small_cnn(num_classes: int) -> nn.Module:
    """a small residual CNN (examples/models/small_cnn.py)"""
    return SmallCNN(num_classes)
