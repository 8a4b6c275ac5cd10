"""Resolving layer-wise lr decay: one ``layers`` statement against the same groups written out by hand.

On the mixture-of-experts model of bench_compile.py (96 layers, 128 experts:
about 38,000 parameter tensors), candidates side by side:
  bare      list(model.named_parameters()): the floor any name-based tool pays;
  by hand   resolve a spec with one ``group layers.N lr=xF`` per layer and the factors computed by hand;
  layers    resolve ``layers embed then layers.* decay=D``, which gives every tensor the same lr.

Both specs also have the usual no-decay group. The script checks that the two
resolutions agree, tensor by tensor, before timing them. The target is
layers <= 1.5x by hand.

    .venv/bin/python benchmarks/bench_layers.py [--layers 96] [--experts 128] [--repeats 15]
"""

from __future__ import annotations

import torch

import specopt
from bench_compile import MoEModel
from common import Candidate, interleave, machine, parse_args, parser, peak_rss_mb, print_table, print_target

HEAD = "optimizer adamw lr=1e-3 weight_decay=0.05\ngroup no_decay: ndim<2 weight_decay=0\n"


def layers_spec(decay: float) -> str:
    """The layer-wise decay as one statement: the embedding at depth 0, layer i at depth i + 1, the final norm on top."""
    return HEAD + f"layers embed then layers.* decay={decay:g}\n"


def hand_spec(layers: int, decay: float) -> str:
    """The same decay as one group per layer, each with its factor computed by hand (the top layer keeps x1)."""
    top = layers + 1
    lines = [f"group embed lr=x{decay ** top!r}"]
    lines += [f"group layers.{i} lr=x{decay ** (top - i - 1)!r}" for i in range(layers)]
    return HEAD + "\n".join(lines) + "\n"


def check_agree(a, b) -> int:
    """Raise unless two resolutions give every tensor the same settings and frozen state; return the group count."""
    for p, q in zip(a.params, b.params, strict=True):
        if p.info.name != q.info.name or p.frozen != q.frozen or \
                {k: s.value for k, s in p.settings.items()} != {k: s.value for k, s in q.settings.items()}:
            raise AssertionError(f"the specs disagree on {p.info.name}")
    if [g.settings for g in a.groups] != [g.settings for g in b.groups]:
        raise AssertionError("the specs form different param groups")
    return len(a.groups)


def main(argv=None) -> int:
    """Run the benchmark; print the table and the target line."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=96, help="transformer layers")
    p.add_argument("--experts", type=int, default=128, help="experts per layer (3 tensors each)")
    p.add_argument("--decay", type=float, default=0.9, help="the layer decay")
    args = parse_args(p, argv)
    layers, experts = (6, 8) if args.smoke else (args.layers, args.experts)
    repeats = args.repeats or (2 if args.smoke else 15)
    with torch.device("meta"):
        model = MoEModel(layers, experts)
    count = sum(1 for _ in model.parameters())
    by_layers, by_hand = specopt.parse(layers_spec(args.decay)), specopt.parse(hand_spec(layers, args.decay))
    groups = check_agree(by_layers.resolve(model), by_hand.resolve(model))
    print(machine())
    print(f"{layers} layers, {count:,} tensors; both specs agree on every tensor ({groups} param groups); "
          f"the hand-written spec has {layers + 1} layer groups")
    times = interleave([Candidate("bare named_parameters()", lambda: list(model.named_parameters())),
                        Candidate("by hand: one group per layer", lambda: by_hand.resolve(model)),
                        Candidate("layers statement", lambda: by_layers.resolve(model))], repeats)
    ratios = print_table(f"resolve, {count:,} tensors", times, "by hand: one group per layer")
    print_target("layers statement / by hand", ratios["layers statement"], 1.5)
    print(f"peak RSS: {peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
