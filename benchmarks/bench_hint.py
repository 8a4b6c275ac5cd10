"""The "closest real names" hint of E301, for selectors that select nothing, against T parameter tensors.

When a selector selects nothing, specopt compares it with the real names of
the model (runs of as many segments as the selector has) and names the closest.
Candidates, side by side on the mixture-of-experts model of bench_compile.py:
  bare        list(model.named_parameters()): the floor any name-based tool pays;
  hint: SEL   the hint for ``freeze SEL`` (a fresh model index each time, as in a real resolve):
              typos in plain names, globs whose literal part is compared with every run of
              characters, a misspelt single segment, an anchored selector that matches below the root;
  resolve     the whole failing ``spec.resolve(model)`` of the first selector, up to the E301 it raises.

The target is every hint <= 5x bare enumeration.

    .venv/bin/python benchmarks/bench_hint.py [--tensors 50000] [--repeats 5]
"""

from __future__ import annotations

import specopt
from bench_compile import build_model
from common import Candidate, interleave, machine, parse_args, parser, peak_rss_mb, print_table, print_target

SELECTORS = ["layers.7.moe.expert.3.w1", "layers.*.moe.experts.*.w4", "layers.3.atn.q", "attn_nrom*",
             "expertz", "^experts.1.w1"]


def hint_of(selector: str):
    """A function computing the E301 hint for ``freeze SELECTOR`` against a model."""
    from specopt.resolve.match import _nothing_hint
    from specopt.resolve.resolution import index_model

    atom = specopt.parse(f"freeze {selector}").plan.statements[0].selectors[0].atoms[0]
    return lambda model: _nothing_hint(atom, index_model(model))


def failing_resolve(selector: str):
    """A function resolving ``freeze SELECTOR`` against a model and returning the E301 diagnostic."""
    spec = specopt.parse(f"freeze {selector}")

    def run(model):
        try:
            spec.resolve(model)
        except specopt.SpecError as exc:
            return exc.diagnostics[0]
        raise AssertionError(f"{selector!r} selects something")
    return run


def main(argv=None) -> int:
    """Run the benchmark; print the hints, the table and the target line."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--tensors", type=int, default=50_000, help="parameter tensors T")
    p.add_argument("--selectors", nargs="+", default=SELECTORS, help="selectors that select nothing")
    args = parse_args(p, argv)
    tensors = 1_500 if args.smoke else args.tensors
    repeats = args.repeats or (2 if args.smoke else 5)
    model = build_model(tensors)
    count = sum(1 for _ in model.parameters())
    hints = {sel: hint_of(sel) for sel in args.selectors}
    print(machine())
    print(f"{count:,} tensors; the hints:")
    for sel, hint in hints.items():
        print(f"  {sel:<28} {hint(model)}")  # also warms up the imports and caches
    candidates = [Candidate("bare named_parameters()", lambda: list(model.named_parameters()))]
    candidates += [Candidate(f"hint: {sel}", lambda h=h: h(model)) for sel, h in hints.items()]
    first = args.selectors[0]
    candidates.append(Candidate(f"resolve + E301: {first}", lambda r=failing_resolve(first): r(model)))
    times = interleave(candidates, repeats, warmup=0)
    ratios = print_table(f"{count:,} tensors", times, "bare named_parameters()")
    worst = max(r for name, r in ratios.items() if name.startswith("hint: "))
    print_target("slowest hint / bare enumeration", worst, 5.0)
    print(f"peak RSS: {peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
