"""optimizer.step() for AdamW: torch's implementations side by side with the specopt-compiled optimizer.

Table 1, a 20M-parameter MLP (configurable): torch's default (no flags; the
single-tensor loop on CPU, foreach on CUDA), fused=True, foreach=True,
foreach=False (single-tensor), and ``optimizer adamw`` compiled by specopt.
Target: the specopt step <= 0.6x torch's default.

Table 2, many small tensors (default 2,000 of 1,000 elements), fused: one param
group for all of them against one param group per parameter, the layout that
hand-written per-parameter set-up code tends to produce.

    .venv/bin/python benchmarks/bench_step.py [--width 2048 --depth 5] [--tensors 2000 --numel 1000]
                                              [--device cuda]
"""

from __future__ import annotations

import torch
from torch import nn

import specopt
from common import (Candidate, interleave, machine, parse_args, parser, print_fastest, print_table,
                    print_target, synchronizer)


def mlp(width: int, depth: int, device: str = "cpu") -> nn.Module:
    """``depth`` square linear layers of ``width`` on ``device``, with random gradients in place."""
    torch.manual_seed(0)
    model = nn.Sequential(*(nn.Linear(width, width, device=device) for _ in range(depth)))
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def implementation(compiled) -> str:
    """What specopt says it chose for the step, or ``n/a`` where the compiled object does not say."""
    value = getattr(compiled, "implementation", None)
    if value is None:
        return "n/a (this specopt does not expose compiled.implementation)"
    return str(getattr(value, "name", value))  # an object with a short .name, or the short string itself


def step_table(width: int, depth: int, repeats: int, device: str) -> None:
    """Time AdamW.step() of every implementation on one shared set of parameters and gradients."""
    model = mlp(width, depth, device)
    params = list(model.parameters())
    count = sum(p.numel() for p in params)
    compiled = specopt.compile("optimizer adamw", model)
    optimizers = {
        "torch default (no flags)": torch.optim.AdamW(params),
        "torch fused=True": torch.optim.AdamW(params, fused=True),
        "torch foreach=True": torch.optim.AdamW(params, foreach=True),
        "torch foreach=False": torch.optim.AdamW(params, foreach=False),
        "specopt optimizer adamw": compiled.optimizer,
    }
    times = interleave([Candidate(name, opt.step) for name, opt in optimizers.items()], repeats,
                       sync=synchronizer(device))
    chosen = implementation(compiled)
    ratios = print_table(f"AdamW.step() on {device}, MLP {depth} x Linear({width}, {width}): "
                         f"{count / 1e6:.1f}M parameters in {len(params)} tensors", times,
                         "torch default (no flags)", {"specopt optimizer adamw": f"implementation: {chosen}"})
    print_fastest(ratios, exclude="specopt optimizer adamw")
    print_target("specopt step / torch default", ratios["specopt optimizer adamw"], 0.6)


def groups_table(tensors: int, numel: int, repeats: int, device: str) -> None:
    """Time a fused AdamW step over many small tensors: one group against one group per parameter."""
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(numel, device=device)) for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    one = torch.optim.AdamW(params, fused=True)
    per_param = torch.optim.AdamW([{"params": [p]} for p in params], fused=True)
    times = interleave([Candidate("one group", one.step), Candidate("one group per parameter", per_param.step)],
                       repeats, sync=synchronizer(device))
    print_table(f"fused AdamW.step() on {device}, {tensors:,} tensors of {numel:,} elements", times, "one group")


def main(argv=None) -> int:
    """Run both tables."""
    p = parser(__doc__.splitlines()[0], device=True)
    p.add_argument("--width", type=int, default=2048, help="MLP width (2048 x 5 layers: 21M parameters)")
    p.add_argument("--depth", type=int, default=5, help="MLP layers")
    p.add_argument("--tensors", type=int, default=2000, help="small tensors in table 2")
    p.add_argument("--numel", type=int, default=1000, help="elements per small tensor")
    args = parse_args(p, argv)
    if args.smoke:
        args.width, args.depth, args.tensors, args.numel = 64, 2, 50, 100
    repeats = args.repeats or (3 if args.smoke else 20)
    print(machine(args.device))
    step_table(args.width, args.depth, repeats, args.device)
    groups_table(args.tensors, args.numel, repeats, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
