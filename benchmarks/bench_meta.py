"""Resolving a typical spec against a 10-billion-parameter transformer built on the meta device.

A GPT-like model (token and position embeddings, N blocks of LayerNorm +
attention + LayerNorm + MLP, a final LayerNorm, a head tied to the token
embedding) is built under ``torch.device("meta")``, so no parameter memory is
allocated, then a typical spec is resolved against it: no weight decay on
norms and biases, frozen embeddings, learning-rate groups per block range.
Printed: seconds per phase and peak RSS. Target: seconds, and < 1 GiB peak RSS.

    .venv/bin/python benchmarks/bench_meta.py [--width 5120 --layers 32 --vocab 50257]
"""

from __future__ import annotations

import time

import torch
from torch import nn

import specopt
from common import current_rss_mb, machine, parse_args, parser, peak_rss_mb, resolve_path, resolve_spec


class Block(nn.Module):
    """Pre-norm transformer block: attention and a 4x MLP, each behind a LayerNorm."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Embeddings, ``blocks.{i}``, a final LayerNorm and a head sharing the token embedding's weight."""

    def __init__(self, vocab: int, context: int, d: int, layers: int, heads: int):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def typical_spec(layers: int) -> str:
    """No decay on norms and biases, frozen embeddings, one learning-rate group per quarter of the blocks."""
    lines = ["optimizer adamw lr=3e-4 betas=(0.9, 0.95) weight_decay=0.1",
             "group no_decay: ndim<2 @*Norm* weight_decay=0",
             "freeze wte wpe"]
    quarter = max(1, layers // 4)
    for k, factor in enumerate(["x0.25", "x0.5", "x0.75", "x1.5"]):
        ids = range(k * quarter, min(layers, (k + 1) * quarter))
        if ids:
            lines.append("group blocks.{" + ",".join(map(str, ids)) + "} lr=" + factor)
    return "\n".join(lines)


def timed(label: str, fn, rows: list):
    """Call ``fn``; record its seconds and the RSS after it; return its result."""
    start = time.perf_counter()
    out = fn()
    rows.append((label, time.perf_counter() - start, current_rss_mb()))
    return out


def main(argv=None) -> int:
    """Build, resolve, and print the phases with their seconds and memory."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=5120, help="model width (5120 x 32 layers: 10.3B parameters)")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--heads", type=int, default=40)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--context", type=int, default=2048)
    args = parse_args(p, argv)
    if args.smoke:
        args.width, args.layers, args.heads, args.vocab, args.context = 64, 4, 4, 1000, 64
    print(machine())
    rows = [("imports (torch, specopt)", float("nan"), current_rss_mb())]
    spec = timed("parse the spec", lambda: specopt.parse(typical_spec(args.layers)), rows)

    def build():
        with torch.device("meta"):
            return GPT(args.vocab, args.context, args.width, args.layers, args.heads)

    model = timed("build the model on meta", build, rows)
    resolution = timed(f"resolve ({resolve_path(spec)})", lambda: resolve_spec(spec, model), rows)
    total = sum(p.numel() for p in model.parameters())
    frozen = sum(1 for a in resolution.params if a.frozen)
    print(f"model: {total:,} parameters ({total / 1e9:.2f}B) in {len(resolution.params)} tensors "
          f"(head tied to wte); {len(resolution.groups)} param groups, {frozen} tensors frozen")
    print(f"\n  {'phase':<58}  {'seconds':>8}  {'RSS after':>10}")
    for label, seconds, rss in rows:
        print(f"  {label:<58}  {'' if seconds != seconds else f'{seconds:8.3f}':>8}  {rss:>7.0f} MiB")
    peak = peak_rss_mb()
    print(f"peak RSS: {peak:.0f} MiB; target < 1024 MiB: {'meets' if peak < 1024 else 'MISSES'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
