"""Helpers for the training-loop tests: a small model with norm layers, deterministic data, comparisons."""

from __future__ import annotations

import torch
from torch import nn


class Net(nn.Module):
    """A backbone of two blocks (Linear + BatchNorm1d) and a head: ``backbone.block1.*``, ``head.*``."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.backbone = nn.Sequential()
        self.backbone.add_module("block0", nn.Sequential(nn.Linear(4, width), nn.BatchNorm1d(width), nn.ReLU()))
        self.backbone.add_module("block1", nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()))
        self.head = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def make_net(seed: int = 0) -> Net:
    """The same :class:`Net` for the same seed."""
    torch.manual_seed(seed)
    return Net()


def batch(k: int, size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Micro-batch number ``k``: the same inputs and targets whenever asked for."""
    g = torch.Generator().manual_seed(1000 + k)
    return torch.randn(size, 4, generator=g), torch.randint(0, 3, (size,), generator=g)


def loss_of(model: nn.Module, k: int, poison: set[int] = frozenset()) -> torch.Tensor:
    """The loss of micro-batch ``k``; for ``k`` in ``poison`` it is inf, as an fp16 overflow would make it."""
    x, y = batch(k)
    loss = nn.functional.cross_entropy(model(x), y)
    return loss * float("inf") if k in poison else loss


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, detached and cloned."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict, exact: bool = True) -> None:
    """Two ``params_of`` results are equal: bit for bit, or within float tolerance."""
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], msg=key)
