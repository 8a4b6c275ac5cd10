"""Schedules: SpecScheduler.step() against torch's own scheduler for the same schedule, and preview time.

Each pair steps the same schedule on its own optimizer of ``--groups`` param
groups with different base learning rates (SGD with momentum): torch's
scheduler (recursive or closed form, as torch runs it) against specopt's
SpecScheduler, which per call computes the phase's shape once and applies each
group's constants. A timed call is ``--steps`` consecutive ``step()`` calls.
Target: specopt / torch <= 1.0 for every schedule.

Then a preview: the values of a typical schedule (warmup 2% then constant 80%
then linear to 0) at every one of ``--preview-steps`` steps, through the array
closed forms with numpy and with torch float64. Target: under a second for
1,000,000 steps.

    .venv/bin/python benchmarks/bench_schedule.py [--groups 200 --steps 100 --preview-steps 1000000]
"""

from __future__ import annotations

import warnings

import torch
from torch.optim import lr_scheduler as L

from common import (Candidate, format_seconds, interleave, machine, medians, parse_args, parser, print_table,
                    print_target)
from specopt.catalog.schedule_curves import Curve
from specopt.runtime.scheduler import SpecScheduler
from specopt.catalog.schedule_kinds import Level, program

HORIZON = 10_000_000  # every schedule is longer than the benchmark runs, so none ends or raises


def _sequential(o):
    return L.SequentialLR(o, [L.LinearLR(o, 0.01, 1.0, 100), L.CosineAnnealingLR(o, HORIZON)], [100])


# name: (torch's scheduler for an optimizer, the same schedule as programs)
SCHEDULES = {
    "cosine": (lambda o: L.CosineAnnealingLR(o, HORIZON, eta_min=1e-6),
               [program(("cosine", HORIZON, {"to": Level(1e-6, False)}))]),
    "linear warmup then cosine": (_sequential,
                                  [program(("linear", 100, {"from": Level(0.01, True)}),
                                           ("cosine", HORIZON, {}))]),
    "step": (lambda o: L.StepLR(o, 30, 0.5),
             [program(("step", None, {"every": 30.0, "gamma": Level(0.5, True)}))]),
    "onecycle with momentum": (lambda o: L.OneCycleLR(o, [g["lr"] for g in o.param_groups], HORIZON),
                               [program(("onecycle", HORIZON, {}))]),
}


def optimizer(groups: int) -> torch.optim.Optimizer:
    """SGD with momentum over ``groups`` param groups of one small tensor each, base lrs 1e-4 .. 1e-2."""
    params = [{"params": [torch.nn.Parameter(torch.zeros(4))], "lr": 1e-4 * (1 + k * 99 / max(groups - 1, 1))}
              for k in range(groups)]
    return torch.optim.SGD(params, lr=1e-3, momentum=0.9)


def stepper(scheduler, steps: int):
    """A timed call: ``steps`` consecutive ``scheduler.step()`` calls."""
    def run():
        for _ in range(steps):
            scheduler.step()
    return run


def compare(name: str, args, repeats: int) -> float:
    """Interleave torch's scheduler and SpecScheduler on one schedule; print the table; return the ratio."""
    make_torch, programs = SCHEDULES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = make_torch(optimizer(args.groups))
    ours = SpecScheduler(optimizer(args.groups), programs)
    for scheduler in (theirs, ours):
        scheduler.optimizer.step()  # no gradients: a no-op that records the call before scheduler.step()
    candidates = [Candidate(f"torch {type(theirs).__name__}", stepper(theirs, args.steps)),
                  Candidate(f"specopt {name}", stepper(ours, args.steps))]
    times = interleave(candidates, repeats, warmup=1)
    per_step = {c.name: f"{format_seconds(medians(times)[c.name] / args.steps)} per step()" for c in candidates}
    ratios = print_table(f"{name}: {args.steps} step() calls on {args.groups} param groups", times,
                         candidates[0].name, per_step)
    return ratios[candidates[1].name]


def preview_times(count: int, repeats: int) -> dict[str, float]:
    """Median seconds for the values of a typical schedule at ``count`` steps, with numpy and torch float64."""
    import numpy as np

    warm, hold = max(count // 50, 1), (count * 8) // 10
    curve = Curve(program(("warmup", warm, {}), ("constant", hold, {}),
                          ("linear", count - warm - hold, {"to": Level(0.0, False)})))
    spaces = {"numpy": (np, lambda: np.arange(0.0, count)),
              "torch float64": (torch, lambda: torch.arange(0.0, count, dtype=torch.float64))}
    candidates = [Candidate(f"preview, {name}", lambda xp=xp, ts=ts: curve.over(ts(), xp).of(3e-4))
                  for name, (xp, ts) in spaces.items()]
    return medians(interleave(candidates, repeats, warmup=1))


def main(argv=None) -> int:
    """Run every schedule pair, then the preview."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--groups", type=int, default=200, help="param groups")
    p.add_argument("--steps", type=int, default=100, help="step() calls per timed call")
    p.add_argument("--preview-steps", type=int, default=1_000_000, help="steps of the previewed schedule")
    args = parse_args(p, argv)
    if args.smoke:
        args.groups, args.steps, args.preview_steps = 5, 5, 10_000
    repeats = args.repeats or (3 if args.smoke else 30)
    print(machine())
    worst = max(compare(name, args, repeats) for name in SCHEDULES)
    print_target("specopt step / torch step (worst schedule)", worst, 1.0)
    times = preview_times(args.preview_steps, 3 if args.smoke else 7)
    print(f"\n{args.preview_steps:,}-step preview (warmup, constant, linear to 0; median of "
          f"{3 if args.smoke else 7}):")
    for name, seconds in times.items():
        verdict = "meets" if seconds < 1.0 else "MISSES"
        print(f"  {name:<24} {format_seconds(seconds):>10}  {verdict} the target of under 1 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
