"""The model of the seed article: a VGG-style network whose parameters are named
``cnn.VGG_16.convolution1_1.weight`` and so on, plus a small classifier head."""

import torch
from torch import nn


class VGG16Stem(nn.Module):
    """The first two VGG-16 blocks, named as the article prints them."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.convolution1_1 = nn.Conv2d(3, width, 3, padding=1)
        self.convolution1_2 = nn.Conv2d(width, width, 3, padding=1)
        self.convolution2_1 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.convolution2_2 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.convolution1_2(torch.relu(self.convolution1_1(x))))
        x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.convolution2_2(torch.relu(self.convolution2_1(x))))
        return nn.functional.max_pool2d(x, 2)


class Backbone(nn.Module):
    """Holds the stem under the name ``VGG_16``."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.VGG_16 = VGG16Stem(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.VGG_16(x)


class Network(nn.Module):
    """The article's ``Network``: ``cnn.VGG_16.*`` convolutions and a linear classifier."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.cnn = Backbone(width)
        self.classifier = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.cnn(x).mean(dim=(2, 3))
        return self.classifier(features)
