"""Backward time of a deep network with its first half frozen by a spec, against all layers trainable.

Two copies of the same network (an MLP, or a CNN with ``--arch cnn``): one
all trainable, one compiled with ``freeze layers.{0,...,k-1}`` for the first
half of its layers. Only ``loss.backward()`` is timed; the forward pass runs
untimed just before it. With the first half frozen, autograd stops at the
first trainable layer, so the expected ratio is about 0.5x.

    .venv/bin/python benchmarks/bench_freeze.py [--arch mlp|cnn] [--depth 16 --width 1024 --batch 128]
"""

from __future__ import annotations

import torch
from torch import nn

import specopt
from common import Candidate, interleave, machine, parse_args, parser, print_table


class Deep(nn.Module):
    """``depth`` equal layers in ``layers``: linear + ReLU, or 3x3 convolution + ReLU."""

    def __init__(self, arch: str, depth: int, width: int):
        super().__init__()
        torch.manual_seed(0)
        make = (lambda: nn.Linear(width, width)) if arch == "mlp" else \
            (lambda: nn.Conv2d(width, width, 3, padding=1))
        self.layers = nn.ModuleList(make() for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


def freeze_spec(depth: int) -> str:
    """The spec that freezes the first half of the layers."""
    return "freeze layers.{" + ",".join(str(i) for i in range(depth // 2)) + "}"


def backward_candidate(name: str, model: nn.Module, x: torch.Tensor) -> Candidate:
    """A candidate timing only ``loss.backward()``; the forward pass is its untimed preparation."""
    loss = [None]

    def prepare():
        model.zero_grad(set_to_none=True)
        loss[0] = model(x).square().mean()

    return Candidate(name, lambda: loss[0].backward(), prepare)


def main(argv=None) -> int:
    """Run the comparison and print its table."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--arch", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--depth", type=int, default=16, help="layers (the first half is frozen)")
    p.add_argument("--width", type=int, default=None, help="features (mlp, default 1024) or channels (cnn, 64)")
    p.add_argument("--batch", type=int, default=None, help="batch size (mlp 128, cnn 8)")
    p.add_argument("--image", type=int, default=32, help="image side for the cnn")
    args = parse_args(p, argv)
    width = args.width or (1024 if args.arch == "mlp" else 64)
    batch = args.batch or (128 if args.arch == "mlp" else 8)
    depth, image = args.depth, args.image
    if args.smoke:
        depth, width, batch, image = 4, 16, 4, 8
    repeats = args.repeats or (3 if args.smoke else 15)
    torch.manual_seed(1)
    x = torch.randn(batch, width) if args.arch == "mlp" else torch.randn(batch, width, image, image)
    trainable, frozen = Deep(args.arch, depth, width), Deep(args.arch, depth, width)
    spec = freeze_spec(depth)
    compiled = specopt.compile(spec, frozen)
    print(machine())
    print(f"{args.arch} {depth} x {width}, "
          f"batch {batch}; spec: {spec} ({len(compiled.frozen)} tensors frozen)")
    times = interleave([backward_candidate("all trainable", trainable, x),
                        backward_candidate("first half frozen by specopt", frozen, x)], repeats)
    ratios = print_table("loss.backward()", times, "all trainable")
    print(f"expected: about 0.50x; measured {ratios['first half frozen by specopt']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
