"""Parsing and compiling specs of N ``freeze/unfreeze ... at`` statements: the cost per statement as N grows.

A spec freezes ``body`` and then alternately unfreezes and freezes it again
at steps 1, 2, ..., N, against a two-layer model. Candidates, at each N:
  parse N     ``specopt.language.parse`` of the spec text;
  compile N   ``spec.compile(model)`` of the parsed spec (a fresh model each time: the
              timeline of every parameter, the events, the optimizer).

Each size is timed side by side with the others, and the figure compared is
the cost per statement: with work linear in N it stays flat, so the target is
the per-statement cost at the largest N <= 2x that at the smallest (it was
about N / N_smallest with the quadratic timeline: 3,200 statements took 4.5 s,
6,000 did not finish in 90 s).

    .venv/bin/python benchmarks/bench_timeline.py [--sizes 1000 4000 16000] [--repeats 3]
"""

from __future__ import annotations

import torch
from torch import nn

import specopt
from common import Candidate, format_seconds, interleave, machine, medians, parse_args, parser, print_target


def spec_text(n: int) -> str:
    """``freeze body`` and then ``n`` statements switching it at steps 1..n, alternately on and off."""
    lines = ["optimizer sgd lr=0.1", "freeze body"]
    lines += [f"{'unfreeze' if i % 2 == 0 else 'freeze'} body at step {i + 1}" for i in range(n)]
    return "\n".join(lines) + "\n"


def build_model() -> nn.Module:
    """A head and a body of one linear layer each."""
    model = nn.Module()
    model.head, model.body = nn.Linear(4, 4), nn.Linear(4, 4)
    return model


def main(argv=None) -> int:
    """Run the benchmark; print the per-statement table and the target line."""
    p = parser(__doc__.splitlines()[0], threads=False)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 4_000, 16_000],
                   help="numbers of timed statements (16,000 is about 450 KB of spec)")
    args = parse_args(p, argv)
    sizes = sorted([50, 200] if args.smoke else args.sizes)
    repeats = args.repeats or (1 if args.smoke else 3)
    print(machine())
    texts = {n: spec_text(n) for n in sizes}
    specs = {n: specopt.parse(text) for n, text in texts.items()}
    specs[sizes[0]].compile(build_model())  # warm up: torch's optimizer imports on first use
    candidates = []
    for n in sizes:
        candidates.append(Candidate(f"parse {n}", lambda t=texts[n]: specopt.parse(t)))
        candidates.append(Candidate(f"compile {n}", lambda s=specs[n]: s.compile(build_model())))
    med = medians(interleave(candidates, repeats, warmup=0))
    print(f"\n{'statements':>10}  {'parse':>10}  {'per statement':>13}  {'compile':>10}  {'per statement':>13}")
    for n in sizes:
        parse, compile_ = med[f"parse {n}"], med[f"compile {n}"]
        print(f"{n:>10,}  {format_seconds(parse):>10}  {format_seconds(parse / n):>13}  "
              f"{format_seconds(compile_):>10}  {format_seconds(compile_ / n):>13}")
    small, large = sizes[0], sizes[-1]
    print(f"(medians of {repeats} interleaved repetitions)")
    for stage in ("parse", "compile"):
        growth = (med[f"{stage} {large}"] / large) / (med[f"{stage} {small}"] / small)
        print_target(f"{stage} per statement, {large:,} / {small:,} statements", growth, 2.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
