"""Shared helpers for the benchmark scripts: interleaved timing, medians, tables, memory, resolution.

Every script measures its candidates side by side in one process: each
repetition runs every candidate once, in an order that rotates from one
repetition to the next, so that drift in machine load (other processes, CPU
frequency, caches) spreads over all candidates instead of favouring one. The
figure reported per candidate is the median over the repetitions.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Candidate:
    """One thing to time: ``run`` is timed; ``prepare`` (if any) runs untimed just before it."""

    name: str
    run: Callable[[], object]
    prepare: Callable[[], object] | None = None


def interleave(candidates: Sequence[Candidate], repeats: int, warmup: int = 1,
               sync: Callable[[], object] | None = None) -> dict[str, list[float]]:
    """Time every candidate ``repeats`` times in rotating order; return seconds per candidate name.

    ``warmup`` untimed rounds run first (first-call allocations, lazy imports).
    Garbage collection is paused inside each timed call, and run between calls.
    ``sync`` (see :func:`synchronizer`) waits for queued accelerator work: it
    runs before the clock starts and again before it stops, so a call is
    charged for the kernels it launched, not only for launching them.
    """
    gc.collect()  # one full collection; between calls the young generations suffice (a full one costs 100s of ms)
    times: dict[str, list[float]] = {c.name: [] for c in candidates}
    for round_ in range(warmup + repeats):
        shift = round_ % len(candidates)
        for cand in list(candidates[shift:]) + list(candidates[:shift]):
            elapsed = time_once(cand, sync)
            if round_ >= warmup:
                times[cand.name].append(elapsed)
    return times


def time_once(cand: Candidate, sync: Callable[[], object] | None = None) -> float:
    """Run ``cand.prepare`` untimed, then return the wall-clock seconds of one ``cand.run``."""
    if cand.prepare is not None:
        cand.prepare()
    if sync is not None:
        sync()
    gc.collect(1)
    gc.disable()
    try:
        start = time.perf_counter()
        cand.run()
        if sync is not None:
            sync()
        return time.perf_counter() - start
    finally:
        gc.enable()


def synchronizer(device: str) -> Callable[[], object] | None:
    """What waits for the work queued on ``device``; ``None`` on the CPU, where calls return when done."""
    import torch

    kind = torch.device(device).type
    if kind == "cpu":
        return None
    return getattr(torch, kind).synchronize


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    """The median of each candidate's timings."""
    return {name: statistics.median(ts) for name, ts in times.items()}


def spread(ts: Sequence[float]) -> float:
    """Relative spread of timings: (upper quartile - lower quartile) / median."""
    if len(ts) < 4:
        return (max(ts) - min(ts)) / statistics.median(ts)
    q1, _, q3 = statistics.quantiles(ts, n=4)
    return (q3 - q1) / statistics.median(ts)


def format_seconds(s: float) -> str:
    """Seconds in a readable unit: s, ms or µs."""
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def print_table(title: str, times: dict[str, list[float]], baseline: str,
                extra: dict[str, str] | None = None) -> dict[str, float]:
    """Print median, spread and ratio to ``baseline`` per candidate; return the ratios.

    ``extra`` adds a last column (for example a per-tensor cost or a chosen implementation).
    """
    med = medians(times)
    ratios = {name: m / med[baseline] for name, m in med.items()}
    width = max(len(n) for n in med)
    print(f"\n{title}")
    print(f"  {'candidate':<{width}}  {'median':>10}  {'spread':>6}  {'ratio':>6}" + ("  note" if extra else ""))
    for name, m in med.items():
        note = f"  {extra.get(name, '')}" if extra else ""
        cells = f"{format_seconds(m):>10}  {spread(times[name]):>6.1%}  {ratios[name]:>5.2f}x"
        print(f"  {name:<{width}}  {cells}{note}")
    print(f"  (ratio: median / median of '{baseline}'; {len(times[baseline])} interleaved repetitions)")
    return ratios


def print_fastest(ratios: dict[str, float], exclude: str = "") -> str:
    """Print and return the fastest candidate (by median), leaving out ``exclude``."""
    fastest = min((name for name in ratios if name != exclude), key=ratios.__getitem__)
    print(f"fastest{f' apart from {exclude!r}' if exclude else ''}: {fastest} ({ratios[fastest]:.2f}x)")
    return fastest


def print_target(label: str, value: float, target: float) -> None:
    """One line comparing a measured ratio with its target (at most ``target``)."""
    verdict = "meets" if value <= target else "MISSES"
    print(f"target: {label} = {value:.2f}x, {verdict} the target of <= {target:g}x")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def current_rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return peak_rss_mb()
    return pages * resource.getpagesize() / 2**20


def machine(device: str = "cpu") -> str:
    """One line describing where the figures come from: CPUs, load, torch with its threads, and the GPU."""
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    line = (f"machine: {os.cpu_count()} CPUs, load average {load}; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; Python {sys.version.split()[0]}")
    if torch.device(device).type == "cuda":
        line += f"; device {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return line


def parser(description: str, threads: bool = True, device: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the shared flags ``--smoke``, ``--repeats``, ``--threads`` and ``--device``.

    ``--threads`` comes with ``threads``; ``--device`` (``cpu``, ``cuda``, ``cuda:1``...) with ``device``.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="tiny sizes and few repetitions (for the test suite)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repetitions per candidate")
    if threads:
        p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    if device:
        p.add_argument("--device", default="cpu", help="where the model lives: cpu (default), cuda, cuda:1, ...")
    return p


def parse_args(p: argparse.ArgumentParser, argv: Sequence[str] | None):
    """Parse the command line and apply ``--threads`` to torch in this process."""
    args = p.parse_args(argv)
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)
    return args


def resolve_spec(spec, model):
    """Resolve a parsed spec against a model without building an optimizer or changing the model.

    Uses ``Spec.resolve(model)`` where the installed specopt has it; older
    versions lack it, and there the same result comes from the pipeline's
    resolve stage called directly (index the model, take the optimizer's
    constructor defaults, resolve). Both paths leave the model untouched.
    """
    if hasattr(spec, "resolve"):
        return spec.resolve(model)
    from specopt.build.assemble import constructor_defaults, optimizer_class
    from specopt.resolve.resolution import index_model, resolve

    defaults = constructor_defaults(optimizer_class(spec.plan, spec.source))
    return resolve(spec.plan, index_model(model), defaults, spec.source)


def resolve_path(spec) -> str:
    """Which resolution entry point :func:`resolve_spec` uses for this spec."""
    return "Spec.resolve" if hasattr(spec, "resolve") else "specopt.resolve.resolution.resolve (no Spec.resolve yet)"
