"""A ResNet-shaped classifier for examples/lpft.opt: ``backbone.{conv1,bn1,layer1..layer4}`` and a ``head``.

The backbone is named as torchvision's ResNet names its modules (``layer4.1.bn2``),
scaled down so that it builds and trains in a moment on a CPU.
"""

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a shortcut, as in ResNet-18."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class Backbone(nn.Module):
    """conv1, bn1 and four stages of two blocks each."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        widths = [width, 2 * width, 4 * width, 8 * width]
        cin = width
        for k, cout in enumerate(widths, start=1):
            stride = 1 if k == 1 else 2
            setattr(self, f"layer{k}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        for k in range(1, 5):
            x = getattr(self, f"layer{k}")(x)
        return x.mean(dim=(2, 3))


class Classifier(nn.Module):
    """A pretrained-style backbone and a new linear head."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.backbone = Backbone(width)
        self.head = nn.Linear(self.backbone.features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
