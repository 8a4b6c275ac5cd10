"""Several optimizers in one spec: the combined step against the same optimizers stepped by hand.

A Llama-shaped decoder (examples/recipe_models.py) trained by the Muon + AdamW
hybrid: ``optimizer adamw ...; optimizer muon for ndim==2 & !embed* & !lm_head``.
specopt's ``compiled.optimizer.step()`` steps both through one combined
optimizer; the hand-written loop builds the same two optimizers over the same
tensors and steps one after the other. Target: <= 1.02x.

    .venv/bin/python benchmarks/bench_optimizers.py [--layers 8 --dim 256]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import specopt
from common import Candidate, interleave, machine, parse_args, parser, print_table, print_target

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from recipe_models import LlamaForCausalLM  # noqa: E402

SPEC = """optimizer adamw lr=3e-4 betas=(0.9, 0.95) weight_decay=0.1
optimizer muon for ndim==2 & !embed* & !lm_head lr=0.02"""


def model(layers: int, dim: int) -> torch.nn.Module:
    """The decoder, with random gradients in place so every step has work to do."""
    torch.manual_seed(0)
    m = LlamaForCausalLM(layers=layers, dim=dim, heads=4, vocab=512)
    for p in m.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return m


def by_hand(compiled, m: torch.nn.Module) -> list[torch.optim.Optimizer]:
    """The same two optimizers, built by hand over the tensors specopt gave each, with the same implementation."""
    params = dict(m.named_parameters())
    adamw, muon = compiled.optimizers
    fused = adamw.defaults.get("fused")
    return [torch.optim.AdamW([p for g in adamw.param_groups for p in g["params"]], lr=3e-4, betas=(0.9, 0.95),
                              weight_decay=0.1, fused=fused),
            torch.optim.Muon([params[n] for g in muon.param_groups for n in g["param_names"]], lr=0.02)]


def main(argv=None) -> int:
    """Time one step of the combined optimizer and of the two hand-built ones."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=8, help="decoder layers")
    p.add_argument("--dim", type=int, default=256, help="model width")
    args = parse_args(p, argv)
    if args.smoke:
        args.layers, args.dim = 2, 32
    repeats = args.repeats or (3 if args.smoke else 40)
    print(machine("cpu"))
    m = model(args.layers, args.dim)
    compiled = specopt.compile(SPEC, m)
    hand = by_hand(compiled, m)

    def hand_step():
        for optimizer in hand:
            optimizer.step()

    count = sum(p.numel() for p in m.parameters())
    times = interleave([Candidate("two optimizers stepped by hand", hand_step),
                        Candidate("specopt combined step", compiled.optimizer.step)], repeats)
    ratios = print_table(f"Muon + AdamW step, Llama-shaped decoder of {count / 1e6:.1f}M parameters", times,
                         "two optimizers stepped by hand")
    print_target("combined step / hand", ratios["specopt combined step"], 1.02)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
