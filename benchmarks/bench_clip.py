"""A full training step with gradient clipping: hand-written clip_grad_norm_ against specopt's clip hook.

Each candidate runs forward, backward, clip and step on its own copy of the
same MLP, with the same AdamW implementation pinned on both sides (``--impl``):
  hand-written  torch.nn.utils.clip_grad_norm_(params, max) then optimizer.step();
  specopt       ``optimizer adamw <impl>; clip l2 <max>``: optimizer.step() clips first.
Two regimes: the total gradient norm above the max (clipping scales the
gradients) and below it (no scaling is needed). Target: specopt / hand <= 1.02.

    .venv/bin/python benchmarks/bench_clip.py [--width 1024 --depth 4 --batch 64] [--impl fused]
                                              [--device cuda]
"""

from __future__ import annotations

import torch
from torch import nn

import specopt
from common import Candidate, interleave, machine, parse_args, parser, print_table, print_target, synchronizer

IMPL_FLAGS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "single": {"foreach": False}}
REGIMES = {"norm above max (clipping scales)": 1e-4, "norm below max (no scaling)": 1e6}


def mlp(width: int, depth: int, device: str = "cpu") -> nn.Module:
    """``depth`` linear layers of ``width`` with ReLU between them, seeded so copies are identical."""
    torch.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).to(device)


def spec_flags(impl: str) -> str:
    """The optimizer options that pin ``impl`` in spec syntax."""
    return " ".join(f"{k}={str(v).lower()}" for k, v in IMPL_FLAGS[impl].items())


def hand_step(model: nn.Module, impl: str, max_norm: float, x, y):
    """A training step written by hand; returns it and a function reading the last norm."""
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, **IMPL_FLAGS[impl])
    norm = [None]

    def step():
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        norm[0] = nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
    return step, lambda: norm[0]


def specopt_step(model: nn.Module, impl: str, max_norm: float, x, y):
    """The same training step with the optimizer and clip hook compiled from a spec."""
    compiled = specopt.compile(f"optimizer adamw {spec_flags(impl)}; clip l2 {max_norm:g}", model)
    optimizer = compiled.optimizer

    def step():
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return step, lambda: compiled.clipper.last_norm


def regime(label: str, max_norm: float, args, repeats: int) -> float:
    """Interleave both steps at one max norm; print the table; return specopt's ratio."""
    torch.manual_seed(1)
    x, y = (torch.randn(args.batch, args.width).to(args.device) for _ in range(2))
    hand, hand_norm = hand_step(mlp(args.width, args.depth, args.device), args.impl, max_norm, x, y)
    spec, spec_norm = specopt_step(mlp(args.width, args.depth, args.device), args.impl, max_norm, x, y)
    times = interleave([Candidate("hand-written clip_grad_norm_ + step", hand),
                        Candidate("specopt clip hook + step", spec)], repeats, warmup=2,
                       sync=synchronizer(args.device))
    norms = {"hand-written clip_grad_norm_ + step": f"last norm {float(hand_norm()):.3g}",
             "specopt clip hook + step": f"last norm {float(spec_norm()):.3g}"}
    ratios = print_table(f"{label}: max {max_norm:g}", times, "hand-written clip_grad_norm_ + step", norms)
    return ratios["specopt clip hook + step"]


def main(argv=None) -> int:
    """Run both regimes."""
    p = parser(__doc__.splitlines()[0], device=True)
    p.add_argument("--width", type=int, default=1024, help="MLP width")
    p.add_argument("--depth", type=int, default=4, help="MLP linear layers")
    p.add_argument("--batch", type=int, default=64, help="batch size")
    p.add_argument("--impl", choices=sorted(IMPL_FLAGS), default="fused",
                   help="the AdamW implementation pinned on both sides")
    args = parse_args(p, argv)
    if args.smoke:
        args.width, args.depth, args.batch = 32, 2, 4
    repeats = args.repeats or (3 if args.smoke else 30)
    params = sum(p.numel() for p in mlp(args.width, args.depth).parameters())
    print(machine(args.device))
    print(f"MLP {args.depth} x {args.width} on {args.device} "
          f"({params / 1e6:.1f}M parameters), batch {args.batch}, AdamW {args.impl} on both sides")
    worst = max(regime(label, max_norm, args, repeats) for label, max_norm in REGIMES.items())
    print_target("specopt / hand-written full step (worst regime)", worst, 1.02)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
