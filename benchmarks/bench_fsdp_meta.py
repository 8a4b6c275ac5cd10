"""Resolving a typical spec against a 10-billion-parameter GPT sharded with FSDP2, on the meta device.

The GPT of ``bench_meta.py`` is built under ``torch.device("meta")`` and
sharded with ``torch.distributed.fsdp.fully_shard`` (each block, then the
root), as rank 0 of a group of ``--world`` ranks: torch's fake process group
(``torch.testing._internal.distributed.fake_pg``) stands in for the other
ranks, so one process sees exactly the DTensor shards rank 0 would hold. The
spec is then resolved against the sharded model. Printed: seconds per phase,
peak RSS, whether the assignment equals the one on the unsharded model, and
how many gathers or collectives resolving made (``full_tensor``,
``redistribute``, ``all_gather``, ``all_reduce``, ``broadcast``). Target:
seconds, < 1 GiB peak RSS, the same assignment, no gathers.

    .venv/bin/python benchmarks/bench_fsdp_meta.py [--world 8 --width 5120 --layers 32]
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

import specopt
from bench_meta import GPT, typical_spec
from common import current_rss_mb, machine, parse_args, parser, peak_rss_mb


def _assignment(resolution) -> list:
    return [(p.info.name, p.info.shape, p.frozen, p.group) for p in resolution.params]


@contextmanager
def counting_collectives():
    """Count calls that would gather shards or communicate, while the block runs."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    calls: list[str] = []
    patched = [(DTensor, name) for name in ("full_tensor", "redistribute")]
    patched += [(dist, name) for name in ("all_gather", "all_gather_into_tensor", "all_reduce", "broadcast")]
    originals = [(owner, name, getattr(owner, name)) for owner, name in patched]

    def counted(name, original):
        def call(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)
        return call

    for owner, name, original in originals:
        setattr(owner, name, counted(name, original))
    try:
        yield calls
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


@contextmanager
def fake_group(world: int):
    """Rank 0 of ``world`` ranks in this one process (torch's fake process group)."""
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()


def timed(label: str, fn, rows: list):
    """Call ``fn``; record its seconds (or the median ``median_call`` measured) and the RSS after it."""
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    if isinstance(out, _Timed):
        out, seconds = out.result, out.seconds
    rows.append((label, seconds, current_rss_mb()))
    return out


class _Timed:
    def __init__(self, result, seconds: float):
        self.result, self.seconds = result, seconds


def median_call(fn, repeats: int) -> _Timed:
    """Call ``fn`` ``repeats`` times; its last result and the median seconds of a call."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return _Timed(out, sorted(times)[len(times) // 2])


def measure(args, spec, rows: list):
    """Build the GPT twice on meta, shard one as rank 0 of ``args.world``, resolve both; the two resolutions,
    the gathers and collectives counted while resolving the sharded one, and that model."""
    def build():
        with torch.device("meta"):
            return GPT(args.vocab, args.context, args.width, args.layers, args.heads)

    with fake_group(args.world):
        from torch.distributed.fsdp import fully_shard

        bare = build()
        model = timed("build the model on meta", build, rows)

        def shard():
            for block in model.blocks:
                fully_shard(block)
            return fully_shard(model)

        timed(f"fully_shard (rank 0 of {args.world})", shard, rows)
        spec.resolve(bare)  # once untimed: the first resolve imports the optimizer and warms caches
        plain = timed(f"resolve, unsharded model (median of {args.repeats})",
                      lambda: median_call(lambda: spec.resolve(bare), args.repeats), rows)
        with counting_collectives() as calls:
            sharded = timed(f"resolve, sharded model (median of {args.repeats})",
                            lambda: median_call(lambda: spec.resolve(model), args.repeats), rows)
        weight = model.blocks[0].mlp[0].weight
        local = tuple(weight.to_local().shape)
    return plain, sharded, calls, model, local


def main(argv=None) -> int:
    """Build on meta, shard, resolve; print the phases, memory, the comparison and the collective count."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--world", type=int, default=8, help="ranks the model is sharded over (rank 0 is measured)")
    p.add_argument("--width", type=int, default=5120, help="model width (5120 x 32 layers: 10.3B parameters)")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--heads", type=int, default=40)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--context", type=int, default=2048)
    args = parse_args(p, argv)
    args.repeats = args.repeats or 5  # resolves timed per model; the median is shown
    if args.smoke:
        args.world, args.width, args.layers, args.heads, args.vocab, args.context = 2, 64, 4, 4, 1000, 64
        args.repeats = 1
    print(machine())
    rows: list = []
    plain, sharded, calls, model, local = measure(args, specopt.parse(typical_spec(args.layers)), rows)
    weight = model.blocks[0].mlp[0].weight
    total = sum(p.numel() for p in model.parameters())
    print(f"model: {total:,} parameters ({total / 1e9:.2f}B), {type(weight).__name__} parameters: "
          f"blocks.0.mlp.0.weight is {tuple(weight.shape)} globally, {local} on rank 0; "
          f"{len(sharded.groups)} param groups")
    print(f"\n  {'phase':<44}  {'seconds':>8}  {'RSS after':>10}")
    for label, seconds, rss in rows:
        print(f"  {label:<44}  {seconds:8.3f}  {rss:>7.0f} MiB")
    same = _assignment(sharded) == _assignment(plain)
    print(f"same assignment as the unsharded model: {'yes' if same else 'NO'}")
    print(f"gathers and collectives while resolving: {len(calls)}" + (f" ({', '.join(calls[:5])})" if calls else ""))
    peak = peak_rss_mb()
    print(f"peak RSS: {peak:.0f} MiB; target < 1024 MiB: {'meets' if peak < 1024 else 'MISSES'}")
    return 0 if same and not calls else 1


if __name__ == "__main__":
    raise SystemExit(main())
