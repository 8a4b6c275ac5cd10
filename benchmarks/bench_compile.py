"""Resolving a spec of N rules against a mixture-of-experts-like model with T parameter tensors.

Candidates, side by side at each model size:
  bare      list(model.named_parameters()): the floor any name-based tool pays;
  specopt   parse once, then resolve the spec against the model (no optimizer is built);
  naive     a hand-written loop: for each name, for each rule, fnmatch.

The target is specopt <= 2x bare enumeration, at every size (cost linear in T).

    .venv/bin/python benchmarks/bench_compile.py [--sizes 50000 200000] [--rules 200] [--big]
"""

from __future__ import annotations

import itertools
import operator
import re
from fnmatch import fnmatchcase

import torch
from torch import nn

import specopt
from common import (Candidate, format_seconds, interleave, machine, medians, parse_args, parser,
                    peak_rss_mb, print_table, print_target, resolve_path, resolve_spec)

EXPERTS = 64
WIDTH = 4  # tensor shapes only matter through their rank; the model lives on the meta device


class Expert(nn.Module):
    """One feed-forward expert holding its three matrices directly."""

    def __init__(self, d: int):
        super().__init__()
        self.w1, self.w2, self.w3 = (nn.Parameter(torch.empty(d, d)) for _ in range(3))


class MoE(nn.Module):
    """A router and a list of experts."""

    def __init__(self, d: int, experts: int):
        super().__init__()
        self.router = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(Expert(d) for _ in range(experts))


class Attention(nn.Module):
    """Four projections with biases."""

    def __init__(self, d: int):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))


class Block(nn.Module):
    """RMSNorm, attention, LayerNorm, mixture of experts."""

    def __init__(self, d: int, experts: int):
        super().__init__()
        self.attn_norm = nn.RMSNorm(d)
        self.attn = Attention(d)
        self.mlp_norm = nn.LayerNorm(d)
        self.moe = MoE(d, experts)


class MoEModel(nn.Module):
    """Embedding, ``layers.{i}`` blocks, final norm: 12 + 3 x experts tensors per layer."""

    def __init__(self, layers: int, experts: int, d: int = WIDTH):
        super().__init__()
        self.embed = nn.Embedding(100, d)
        self.layers = nn.ModuleList(Block(d, experts) for _ in range(layers))
        self.final_norm = nn.RMSNorm(d)


def build_model(tensors: int, experts: int = EXPERTS) -> MoEModel:
    """A meta-device model with about ``tensors`` parameter tensors."""
    with torch.device("meta"):
        return MoEModel(max(2, round((tensors - 2) / (12 + 3 * experts))), experts)


# Rule shapes seen in real specs, as (statement, selectors, options); {i} is a layer index, {j} an expert.
GLOBAL_RULES = [("group", "*norm*", "weight_decay=0"), ("group", "@*Norm*", "weight_decay=0"),
                ("group", "ndim<2", "weight_decay=0")]
TEMPLATES = [
    ("group", "layers.{i}.attn.*", "lr=x0.5"),
    ("group", "**.experts.{j}.w1", "lr=x2"),
    ("group", "layers.{i}.moe.experts.{j}.w[23]", "weight_decay=0.05"),
    ("freeze", "layers.{i}.moe.router", ""),
    ("group", "layers.{i}.*norm*", "lr=x0.9"),
    ("group", "layers.{{{i},{i2}}}.attn.{{q,k}}.weight", "lr=x0.8"),
    ("group", "^layers.{i}.** & ndim<2", "betas=(0.9, 0.95)"),
    ("group", "@*Norm* & layers.{i}.**", "lr=x0.1"),
    ("group", "layers.{i}.attn.?.weight", "eps=1e-6"),
    ("unfreeze", "layers.{i}.moe.router", ""),
]
NDIM_TESTS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def make_rules(n: int, layers: int, experts: int = EXPERTS) -> list[tuple[str, str, str]]:
    """``n`` rules: the global ones, then the templates with varying indices."""
    rules = GLOBAL_RULES[:n]
    for k in range(n - len(rules)):
        i, i2, j = (k * 37) % layers, (k * 37 + 1) % layers, (k * 11) % experts
        kind, selectors, options = TEMPLATES[k % len(TEMPLATES)]
        rules.append((kind, selectors.format(i=i, i2=i2, j=j), options))
    return rules


def spec_text(rules: list[tuple[str, str, str]]) -> str:
    """The rules as a spec for AdamW."""
    return "optimizer adamw\n" + "\n".join(" ".join(part for part in rule if part) for rule in rules)


def naive_rules(rules: list[tuple[str, str, str]]) -> list:
    """Each rule's selectors as one test ``(name, owner class, ndim) -> bool`` built on fnmatch."""
    tests = []
    for _, sel, _ in rules:
        terms = [[_naive_atom(a) for a in term.split("&")] for term in re.sub(r"\s*&\s*", "&", sel).split()]
        tests.append(terms[0][0] if len(terms) == 1 and len(terms[0]) == 1 else _union(terms))
    return tests


def _union(terms):
    return lambda n, o, d: any(all(atom(n, o, d) for atom in term) for term in terms)


def _naive_atom(atom: str):
    if atom.startswith("ndim"):
        op, value = re.fullmatch(r"ndim(\W+)(\d+)", atom).groups()
        test, limit = NDIM_TESTS[op], int(value)
        return lambda n, o, d: test(d, limit)
    if atom.startswith("@"):
        return lambda n, o, d, p=atom[1:]: fnmatchcase(o, p)
    # Hand-written loops match full names from the root, so only a glob's own leading * floats it.
    patterns = _expand(atom.lstrip("^").replace("**", "*") + "*")
    if len(patterns) == 1:
        return lambda n, o, d, p=patterns[0]: fnmatchcase(n, p)
    return lambda n, o, d: any(fnmatchcase(n, p) for p in patterns)


def _expand(pattern: str) -> list[str]:
    """fnmatch has no {a,b}: expand alternatives into separate patterns."""
    parts = re.split(r"\{([^{}]*)\}", pattern)
    choices = [[p] if k % 2 == 0 else p.split(",") for k, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def naive_resolve(model: nn.Module, tests) -> dict[str, list[int]]:
    """For each parameter, for each rule, fnmatch: the indices of the rules that select it."""
    classes = {path: type(m).__name__ for path, m in model.named_modules()}
    out = {}
    for name, tensor in model.named_parameters():
        owner, ndim = classes[name.rpartition(".")[0]], tensor.dim()
        out[name] = [r for r, test in enumerate(tests) if test(name, owner, ndim)]
    return out


def measure(tensors: int, n_rules: int, repeats: int, with_naive: bool) -> dict[str, float]:
    """Interleave the candidates on one model size; print its table; return the medians."""
    model = build_model(tensors)
    count = sum(1 for _ in model.parameters())
    rules = make_rules(n_rules, len(model.layers))
    spec = specopt.parse(spec_text(rules))
    candidates = [Candidate("bare named_parameters()", lambda: list(model.named_parameters())),
                  Candidate("specopt resolve", lambda: resolve_spec(spec, model))]
    if with_naive:
        compiled = naive_rules(rules)
        candidates.append(Candidate("naive fnmatch loop", lambda: naive_resolve(model, compiled)))
    times = interleave(candidates, repeats, warmup=0)  # each run is long; main() warmed up the imports
    # Later runs may profit from caches filled by the first, so the first (cold) run is shown as well.
    notes = {name: f"{m / count * 1e6:.2f} µs/tensor; first run {format_seconds(times[name][0])}"
             for name, m in medians(times).items()}
    print_table(f"{count:,} tensors, {len(rules)} rules", times, "bare named_parameters()", notes)
    return {**medians(times), "tensors": count}


def main(argv=None) -> int:
    """Run the benchmark; print one table per size and the per-size ratios."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000], help="parameter tensors T")
    p.add_argument("--big", action="store_true", help="also 1,000,000 tensors")
    p.add_argument("--rules", type=int, default=200, help="spec rules N")
    p.add_argument("--naive-max", type=int, default=50_000,
                   help="time the naive loop only up to this many tensors (it is slow)")
    args = parse_args(p, argv)
    sizes = [600, 1_500] if args.smoke else args.sizes + ([1_000_000] if args.big else [])
    rules = 20 if args.smoke else args.rules
    repeats = args.repeats or (2 if args.smoke else 3)
    warm = specopt.parse(spec_text(make_rules(len(GLOBAL_RULES), 2)))
    resolve_spec(warm, build_model(100))  # first-use imports and caches stay out of the timings
    print(machine())
    print(f"resolution entry point: {resolve_path(warm)}")
    results = [measure(t, rules, repeats, t <= args.naive_max) for t in sizes]
    print("\nper-size ratios to bare enumeration (linear cost keeps them flat):")
    print(f"  {'tensors':>10}  {'specopt':>8}  {'naive':>8}")
    for r in results:
        naive = r.get("naive fnmatch loop")
        naive_text = f"{naive / r['bare named_parameters()']:7.2f}x" if naive else "  (skip)"
        print(f"  {r['tensors']:>10,}  {r['specopt resolve'] / r['bare named_parameters()']:7.2f}x  {naive_text}")
    worst = max(r["specopt resolve"] / r["bare named_parameters()"] for r in results)
    print_target("specopt resolve / bare enumeration (worst size)", worst, 2.0)
    print(f"peak RSS: {peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
