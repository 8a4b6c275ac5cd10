"""Is specopt's automatic implementation the fastest? Every builtin optimizer, per dtype, on one device.

For each optimizer and dtype, one table times ``optimizer.step()`` of torch's
single-tensor loop (foreach=False), foreach=True, fused=True where torch has a
fused kernel for that optimizer on that device, and the optimizer specopt
compiles from ``optimizer <name>`` with no implementation flag. A last table
lists, per case, the fastest torch implementation, specopt's choice, and the
ratio of specopt's step to the fastest one. Target: specopt within 1.1x of the
fastest in every case (its choice is one of the candidates, so the ratio
measures whether the rule it follows picks the winner on this device).

    .venv/bin/python benchmarks/bench_impl.py [--tensors 100 --numel 100000] [--device cuda]
                                              [--optimizers adam,sgd] [--dtypes float32,bfloat16]
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

import specopt
from common import Candidate, interleave, machine, parse_args, parser, print_table, print_target, synchronizer

# Builtins with both single-tensor and foreach paths, with the options that make
# their step do its usual work (SGD without momentum skips its state).
OPTIMIZERS = {"sgd": {"momentum": 0.9}, "adam": {}, "adamw": {}, "adagrad": {}, "rmsprop": {},
              "adamax": {}, "nadam": {}, "radam": {}}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SPECOPT = "specopt (no flag)"


class Flat(nn.Module):
    """``tensors`` one-dimensional parameters of ``numel`` elements, with gradients in place."""

    def __init__(self, tensors: int, numel: int, dtype: torch.dtype, device: str):
        super().__init__()
        gen = torch.Generator(device=device).manual_seed(0)
        self.weights = nn.ParameterList(
            torch.randn(numel, generator=gen, device=device).to(dtype) for _ in range(tensors))
        for p in self.weights:
            p.grad = (torch.randn(numel, generator=gen, device=device) * 1e-3).to(dtype)


@dataclass(frozen=True)
class Outcome:
    """One case's result: the fastest torch implementation, specopt's choice and its ratio to the fastest."""

    case: str
    fastest: str
    chosen: str
    ratio: float


def spec(name: str) -> str:
    """The spec statement for optimizer ``name`` with the benchmark's options."""
    return " ".join([f"optimizer {name}", *(f"{k}={v}" for k, v in OPTIMIZERS[name].items())])


def torch_optimizers(cls: type, name: str, model: nn.Module) -> dict[str, torch.optim.Optimizer]:
    """torch's implementations of ``cls`` that construct and step on these parameters."""
    takes_fused = "fused" in inspect.signature(cls).parameters
    found = {}
    for label, flags in (("single-tensor", {"foreach": False}), ("foreach", {"foreach": True}),
                         ("fused", {"fused": True})):
        if "fused" in flags and not takes_fused:
            continue
        try:
            optimizer = cls(model.parameters(), **OPTIMIZERS[name], **flags)
            optimizer.step()  # some unsupported combinations raise only here
        except (RuntimeError, ValueError) as error:
            print(f"  ({name} {label}: not available here: {str(error).splitlines()[0]})")
            continue
        found[label] = optimizer
    return found


def case(name: str, dtype: str, args, repeats: int) -> Outcome:
    """Time every implementation of one optimizer on one dtype; print its table."""
    model = Flat(args.tensors, args.numel, DTYPES[dtype], args.device)
    compiled = specopt.compile(spec(name), model)
    candidates = torch_optimizers(type(compiled.optimizer), name, model)
    chosen = compiled.implementation.name
    steps = [Candidate(label, opt.step) for label, opt in candidates.items()]
    steps.append(Candidate(SPECOPT, compiled.optimizer.step))
    times = interleave(steps, repeats, sync=synchronizer(args.device))
    label = f"{name} {dtype}"
    ratios = print_table(f"{label} on {args.device}: {args.tensors:,} tensors of {args.numel:,}", times,
                         next(iter(candidates)), {SPECOPT: f"implementation: {chosen}"})
    fastest = min(candidates, key=ratios.__getitem__)
    return Outcome(label, fastest, chosen, ratios[SPECOPT] / ratios[fastest])


def summary(outcomes: list[Outcome]) -> None:
    """Print one row per case and the target line for the worst one."""
    width = max(len(o.case) for o in outcomes)
    print("\nspecopt's choice against the fastest torch implementation")
    print(f"  {'case':<{width}}  {'fastest':<13}  {'specopt':<13}  specopt / fastest")
    for o in outcomes:
        print(f"  {o.case:<{width}}  {o.fastest:<13}  {o.chosen:<13}  {o.ratio:.2f}x")
    print_target("specopt / fastest (worst case)", max(o.ratio for o in outcomes), 1.1)


def main(argv=None) -> int:
    """Run every optimizer and dtype asked for, then the summary."""
    p = parser(__doc__.splitlines()[0], device=True)
    p.add_argument("--tensors", type=int, default=100, help="parameter tensors")
    p.add_argument("--numel", type=int, default=100_000, help="elements per tensor")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS), help="comma-separated spec names")
    p.add_argument("--dtypes", default="float32,bfloat16", help=f"comma-separated, of {', '.join(DTYPES)}")
    args = parse_args(p, argv)
    if args.smoke:
        args.tensors, args.numel, args.optimizers = 4, 100, "adamw,rmsprop"
    repeats = args.repeats or (3 if args.smoke else 15)
    print(machine(args.device))
    outcomes = [case(name, dtype, args, repeats)
                for name in args.optimizers.split(",") for dtype in args.dtypes.split(",")]
    summary(outcomes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
