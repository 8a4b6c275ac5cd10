"""Property tests: generated module trees and specs, checked against an independent reference.

* the glob matcher (``NamePattern``, class globs) agrees with the regex-based
  reference in ``reference_matcher.py`` on generated names and patterns;
* resolving a whole generated spec against a generated model agrees with a
  straightforward reference: which statements select which tensors, which
  selectors must be reported as selecting nothing (E301 / E302), and the
  key-by-key cascade of freeze / unfreeze / group;
* the assignment is a partition (each trainable tensor in exactly one param
  group, frozen ones in none, tied tensors once), realised with the fewest
  groups, both in the resolution and in the torch optimizer ``compile`` builds;
* the result does not depend on the order of ``named_parameters()``.

Example counts scale with the hypothesis profile from ``conftest.py``:
``SPECOPT_HYPOTHESIS_PROFILE=long`` runs about 30 times more.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, replace

import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

import reference_matcher as ref
import specopt
from specopt.build.assemble import constructor_defaults, optimizer_class
from specopt.diagnostics import SpecError
from specopt.resolve.resolution import index_model, resolve
from specopt.plan.selectors import NamePattern, class_glob, selector_problems

_BASE_EXAMPLES = 60  # the max_examples of the default ("ci") profile


def _settings(n: int) -> settings:
    """``n`` examples under the default profile, scaled up under a longer one."""
    scaled = max(1, n * settings.default.max_examples // _BASE_EXAMPLES)
    return settings(max_examples=scaled, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- generated module trees -------------------------------------------------------------------

class Plain(nn.Module):
    """A container without parameters of its own class."""


class Block(nn.Module):
    """A container class that ``@Block`` selects."""


class SubBlock(Block):
    """A subclass: ``@Block`` selects it through its base class."""


class RMSNorm(nn.Module):
    """Shares its ``__name__`` with ``torch.nn.RMSNorm``."""


CONTAINERS = {"Plain": Plain, "Block": Block, "SubBlock": SubBlock, "RMSNorm": RMSNorm,
              "ModuleList": nn.ModuleList}
LEAVES = {
    "Linear": lambda: nn.Linear(2, 3),
    "LayerNorm": lambda: nn.LayerNorm(3),
    "Embedding": lambda: nn.Embedding(4, 2),
    "TorchRMSNorm": lambda: nn.RMSNorm(2),
}
SEGMENTS = ("a", "b", "ab", "conv1", "x0", "layers", "norm", "Norm", "LN")
PARAM_NAMES = ("weight", "bias", "w", "scale", "a", "x0")
TIE_NAMES = ("tied", "w2", "shared", "scale")
ENTRY_NAMES = tuple(dict.fromkeys(SEGMENTS + PARAM_NAMES))


@dataclass(frozen=True)
class ModelCase:
    """A module tree as plain data, replayable into fresh ``nn.Module`` instances.

    ``tree`` is ``(class, entries)``; an entry is ``(name, "param", shape, requires_grad)`` or
    ``(name, "module", tree)``. ``ties`` register an existing parameter under one more name
    ``(param name, module path, new name)``; ``shares`` register an existing leaf module under
    one more path ``(module path, parent path, new name)``.
    """

    tree: tuple
    ties: tuple = ()
    shares: tuple = ()

    def build(self, shuffle_seed: int | None = None) -> nn.Module:
        """A fresh model; with a seed, every module's parameters and children are re-ordered."""
        model = _build(self.tree)
        for src, dst, new in self.ties:
            model.get_submodule(dst).register_parameter(new, model.get_parameter(src))
        for src, dst, new in self.shares:
            model.get_submodule(dst).add_module(new, model.get_submodule(src))
        if shuffle_seed is not None:
            _shuffle(model, random.Random(shuffle_seed))
        return model


def _build(tree) -> nn.Module:
    cls, entries = tree
    if cls in LEAVES:
        return LEAVES[cls]()
    module = CONTAINERS[cls]()
    for entry in entries:
        if entry[1] == "param":
            name, _, shape, requires_grad = entry
            module.register_parameter(name, nn.Parameter(torch.zeros(shape), requires_grad=requires_grad))
        else:
            module.add_module(entry[0], _build(entry[2]))
    return module


def _shuffle(model: nn.Module, rng: random.Random) -> None:
    """Re-order each module's own parameters and children (so ``named_parameters()`` order changes)."""
    for module in model.modules():
        for table in (module._parameters, module._modules):
            items = list(table.items())
            rng.shuffle(items)
            table.clear()
            table.update(items)


shapes = st.lists(st.integers(1, 2), min_size=1, max_size=3).map(tuple)
trainable = st.integers(0, 6).map(lambda k: k != 6)  # mostly True, and True when shrunk


@st.composite
def trees(draw, depth: int, root: bool = False):
    """A module tree of at most ``depth`` levels below this one; every subtree holds parameters."""
    if not root and draw(st.integers(0, 4)) == 0:
        return (draw(st.sampled_from(sorted(LEAVES))), ())
    kinds = sorted(CONTAINERS) if depth > 0 and not root else sorted(set(CONTAINERS) - {"ModuleList"})
    cls = draw(st.sampled_from(kinds))
    if cls == "ModuleList":
        kids = draw(st.lists(trees(depth - 1), min_size=1, max_size=3))
        return (cls, tuple((str(i), "module", kid) for i, kid in enumerate(kids)))
    names = draw(st.lists(st.sampled_from(ENTRY_NAMES), min_size=2 if root else 1, max_size=4, unique=True))
    entries = []
    for name in names:
        if depth > 0 and name in SEGMENTS and draw(st.booleans()):
            entries.append((name, "module", draw(trees(depth - 1))))
        else:
            entries.append((name, "param", draw(shapes), draw(trainable)))
    return (cls, tuple(entries))


@st.composite
def model_cases(draw, depth: int = 3) -> ModelCase:
    """A generated model: a tree, some tied parameters and sometimes a shared leaf module."""
    tree = draw(trees(depth, root=True))
    model = _build(tree)
    params = [n for n, _ in model.named_parameters()]
    paths = [n for n, _ in model.named_modules()]
    ties = []
    for _ in range(draw(st.integers(0, 2))):
        src, dst = draw(st.sampled_from(params)), draw(st.sampled_from(paths))
        new = draw(st.sampled_from(TIE_NAMES))
        module = model.get_submodule(dst)
        if not hasattr(module, new):
            module.register_parameter(new, model.get_parameter(src))
            ties.append((src, dst, new))
    shares = []
    leaves = [p for p in paths if p and not list(model.get_submodule(p).children())]
    if leaves and draw(st.integers(0, 3)) == 0:
        src, dst = draw(st.sampled_from(leaves)), draw(st.sampled_from(paths))
        new = draw(st.sampled_from(("shared", "alias")))
        parent = model.get_submodule(dst)
        if dst != src and not hasattr(parent, new):
            parent.add_module(new, model.get_submodule(src))
            shares.append((src, dst, new))
    return ModelCase(tree, tuple(ties), tuple(shares))


# --- generated specs --------------------------------------------------------------------------

@dataclass(frozen=True)
class Atom:
    """One selector atom, kept as data so the reference does not depend on specopt's parser."""

    kind: str  # "name", "class" or "ndim"
    pattern: str
    anchored: bool = False
    negated: bool = False
    optional: bool = False
    owner: bool = False  # @@: the class of the module holding the parameter itself
    ignore_case: bool = False  # /i
    first_name: bool = False  # /first

    @property
    def text(self) -> str:
        body = {"name": ("^" if self.anchored else "") + self.pattern,
                "class": ("@@" if self.owner else "@") + self.pattern, "ndim": "ndim" + self.pattern}[self.kind]
        # Both flags are written the other way round from fmt's order: the parser takes either.
        flags = [f for f, on in (("first", self.first_name), ("i", self.ignore_case)) if on]
        return ("!" if self.negated else "") + ("~" if self.optional else "") + body + (
            "/" + ",".join(flags) if flags else "")


@dataclass(frozen=True)
class Stmt:
    """One statement: ``optimizer`` (``name`` is the optimizer), ``freeze``, ``unfreeze`` or ``group``."""

    kind: str
    terms: tuple = ()  # tuple of tuples of Atom
    options: tuple = ()  # (key, value text) pairs
    name: str = ""

    @property
    def text(self) -> str:
        opts = " ".join(f"{k}={v}" for k, v in self.options)
        if self.kind == "optimizer":
            return f"optimizer {self.name} {opts}".rstrip()
        selectors = " ".join(" & ".join(a.text for a in term) for term in self.terms)
        label = f"{self.name}: " if self.name else ""
        return f"{self.kind} {label}{selectors} {opts}".rstrip()


def spec_text(stmts) -> str:
    return "\n".join(s.text for s in stmts)


OTHER_SEGMENTS = ("conv2", "zz", "weights", "c")


@st.composite
def mutated_segment(draw, seg: str) -> str:
    """A glob for one segment: the segment itself, or with wildcards, classes or braces mixed in."""
    how = draw(st.sampled_from(["keep", "keep", "star", "prefix", "suffix", "qmark", "class", "negclass",
                                "range", "brace", "brace1", "nested", "other", "star2"]))
    other = draw(st.sampled_from(OTHER_SEGMENTS + ENTRY_NAMES))
    i = draw(st.integers(0, len(seg) - 1))
    ch = seg[i]
    if how == "keep":
        return seg
    if how == "star":
        return "*"
    if how == "prefix":
        return seg[:i] + "*"
    if how == "suffix":
        return "*" + seg[i + 1:]
    if how == "qmark":
        return seg[:i] + "?" + seg[i + 1:]
    if how == "class":
        members = ch + draw(st.sampled_from(["", "z", "b", "0"]))
        return seg[:i] + "[" + members + "]" + seg[i + 1:]
    if how == "negclass":
        members = draw(st.sampled_from([ch, "z", ch + "q", "01"]))
        return seg[:i] + "[!" + members + "]" + seg[i + 1:]
    if how == "range":
        lo, hi = draw(st.sampled_from(["a-z", "a-c", "0-9", "x-z", "c-a", "0-1"]).map(lambda r: r.split("-")))
        return seg[:i] + f"[{lo}-{hi}]" + seg[i + 1:]
    if how == "brace":
        alts = [seg, other] if draw(st.booleans()) else [other, seg]
        return "{" + ",".join(alts) + "}"
    if how == "brace1":
        return "{" + seg + "}"
    if how == "nested":
        return seg[:i] + "{" + other + ",{" + seg[i:] + ",q}}"
    if how == "other":
        return other
    return "**"


@st.composite
def name_globs(draw, names) -> tuple[str, bool]:
    """A name selector built from a window of a real name, with wildcards mutated in."""
    segs = draw(st.sampled_from(names)).split(".")
    anchored = draw(st.integers(0, 2)) == 0
    start = 0 if anchored and draw(st.integers(0, 3)) else draw(st.integers(0, len(segs) - 1))
    end = draw(st.integers(start + 1, len(segs)))
    out = [draw(mutated_segment(seg)) for seg in segs[start:end]]
    if draw(st.integers(0, 3)) == 0:
        out.insert(draw(st.integers(0, len(out))), "**")
    return ".".join(out), anchored


@st.composite
def class_globs(draw, classes) -> str:
    """A module-class glob built from a real class name (``__name__`` or qualified)."""
    name = draw(st.sampled_from(classes))
    how = draw(st.sampled_from(["keep", "keep", "prefix", "suffix", "qmark", "brace", "missing", "norm"]))
    i = draw(st.integers(0, len(name) - 1))
    if how == "keep":
        return name
    if how == "prefix":
        return name[:i] + "*"
    if how == "suffix":
        return "*" + name[i:]
    if how == "qmark":
        return name[:i] + "?" + name[i + 1:]
    if how == "brace":
        return "{" + name + "," + draw(st.sampled_from(["Conv2d", "Block", "Linear"])) + "}"
    if how == "missing":
        return draw(st.sampled_from(["Conv2d", "Sequential", "*Attention*"]))
    return "*Norm*"


@dataclass(frozen=True)
class Facts:
    """What the spec generator draws real names from."""

    names: tuple  # every parameter name, aliases included
    paths: tuple  # every module path but the root
    classes: tuple  # every class name (short and qualified) of every module


def facts(model: nn.Module) -> Facts:
    names = tuple(n for n, _ in model.named_parameters(remove_duplicate=False))
    paths = tuple(n for n, _ in model.named_modules(remove_duplicate=False) if n)
    classes = tuple(sorted({c for m in model.modules() for c in ref.class_names(type(m))}))
    return Facts(names, paths, classes)


@st.composite
def atoms(draw, f: Facts) -> Atom:
    kind = draw(st.sampled_from(["name"] * 6 + ["class"] * 3 + ["ndim"]))
    negated = draw(st.integers(0, 6)) == 6
    optional = draw(st.integers(0, 3)) == 3
    if kind == "ndim":
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        return Atom("ndim", f"{op}{draw(st.integers(0, 4))}", False, negated, optional)
    ignore_case, first_name = draw(st.integers(0, 3)) == 0, draw(st.integers(0, 4)) == 0
    if kind == "name":
        pattern, anchored = draw(name_globs(f.names + f.paths))
        return Atom("name", draw(recased(pattern)), anchored, negated, optional, False, ignore_case, first_name)
    owner = draw(st.booleans())
    pattern = draw(recased(draw(class_globs(f.classes))))
    return Atom("class", pattern, False, negated, optional, owner, ignore_case, first_name)


@st.composite
def recased(draw, pattern: str) -> str:
    """The pattern as it is, or with its letters' case changed (which ``/i`` ignores)."""
    how = draw(st.sampled_from(["keep", "keep", "lower", "upper", "swap"]))
    return {"keep": pattern, "lower": pattern.lower(), "upper": pattern.upper(), "swap": pattern.swapcase()}[how]


@st.composite
def terms(draw, f: Facts) -> tuple:
    term = [draw(atoms(f)) for _ in range(2 if draw(st.integers(0, 3)) == 0 else 1)]
    if len(term) > 1 and all(a.negated for a in term):  # E208: an intersection needs a positive atom
        term[0] = replace(term[0], negated=False)
    return tuple(term)


LR_VALUES = ("0.1", "0.01", "0.001", "x0.5", "x2")
WD_VALUES = ("0", "0.05", "x0.1", "x0")
OPTIMIZER_CLASSES = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@st.composite
def statements(draw, f: Facts, index: int) -> Stmt:
    kind = draw(st.sampled_from(["freeze", "unfreeze"] + ["group"] * 5))
    selectors = tuple(draw(st.lists(terms(f), min_size=1, max_size=2)))
    if kind != "group":
        return Stmt(kind, selectors)
    keys = draw(st.sampled_from([("lr",), ("weight_decay",), ("lr", "weight_decay")]))
    options = tuple((k, draw(st.sampled_from(LR_VALUES if k == "lr" else WD_VALUES))) for k in keys)
    label = f"g{index}" if draw(st.booleans()) else ""
    return Stmt("group", selectors, options, label)


@st.composite
def specs(draw, f: Facts) -> tuple:
    out = []
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(OPTIMIZER_CLASSES)))
        keys = draw(st.sampled_from([(), ("lr",), ("weight_decay",), ("lr", "weight_decay")]))
        plain = {"lr": ("0.1", "0.01", "0.002"), "weight_decay": ("0", "0.01")}
        out.append(Stmt("optimizer", options=tuple((k, draw(st.sampled_from(plain[k]))) for k in keys),
                        name=name))
    for i in range(draw(st.integers(1, 6))):
        out.append(draw(statements(f, i)))
    if draw(st.integers(0, 2)):  # mostly '~' everywhere, so that most specs resolve without E301
        out = [_all_optional(s) for s in out]
    return tuple(out)


def _all_optional(stmt: Stmt) -> Stmt:
    terms = tuple(tuple(replace(a, optional=True) for a in t) for t in stmt.terms)
    return Stmt(stmt.kind, terms, stmt.options, stmt.name)


@st.composite
def cases(draw, depth: int = 3):
    """A model case and a spec whose selectors are drawn from that model's names."""
    case = draw(model_cases(depth))
    return case, draw(specs(facts(case.build())))


# --- the reference resolution ----------------------------------------------------------------

@dataclass
class Expected:
    """The reference outcome: error codes, or per-tensor state keyed by the tensor's set of names."""

    errors: set
    frozen: dict
    lr: dict
    weight_decay: dict
    selected_by: dict
    first_name: dict
    aliases: dict

    def accepts(self, codes: set[str]) -> bool:
        """Whether a SpecError with these codes is the expected outcome."""
        return bool(self.errors) and codes == self.errors


def _number(text: str):
    return float(text) if "." in text else int(text)


def _tensors(model: nn.Module) -> list[tuple[torch.Tensor, tuple[str, ...]]]:
    """Each distinct parameter tensor once, with all its names in ``named_parameters`` order."""
    order, names = [], {}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        if id(tensor) not in names:
            order.append(tensor)
            names[id(tensor)] = []
        names[id(tensor)].append(name)
    return [(t, tuple(names[id(t)])) for t in order]


def _holds(atom: Atom, model: nn.Module, tensor: torch.Tensor):
    """The test of one atom on one name of ``tensor``: ``holds(name) -> bool``."""
    if atom.kind == "ndim":
        return lambda name: ref.ndim_holds(atom.pattern, tensor.dim())
    if atom.kind == "class":
        paths = [p for p, m in model.named_modules(remove_duplicate=False)
                 if any(ref.class_matches(atom.pattern, c, atom.ignore_case) for c in ref.class_names(type(m)))]
        inside = ref.owned_by if atom.owner else ref.in_subtree
        return lambda name: any(inside(name, p) for p in paths)
    return lambda name: ref.name_selects(atom.pattern, atom.anchored, name, atom.ignore_case)


def _atom_hits(atom: Atom, model: nn.Module, tensors) -> set[int]:
    """The tensors an atom selects on its own: those it holds on under a name it looks at."""
    return {k for k, (t, names) in enumerate(tensors)
            if any(_holds(atom, model, t)(n) for n in (names[:1] if atom.first_name else names))}


def _term_hits(term, model: nn.Module, tensors) -> set[int]:
    """The tensors an intersection selects, by the reference's rule for tied tensors."""
    out = set()
    for k, (t, names) in enumerate(tensors):
        tests = [(a.negated, (_holds(a, model, t), a.first_name)) for a in term]
        if ref.term_selects([x for neg, x in tests if not neg], [x for neg, x in tests if neg], names):
            out.add(k)
    return out


def expected_resolution(model: nn.Module, stmts) -> Expected:
    """Select with the reference matcher, then apply the statements one by one, key by key."""
    tensors = _tensors(model)
    errors, selections = set(), {}
    for i, stmt in enumerate(stmts):
        if stmt.kind == "optimizer":
            continue
        chosen = set()
        for term in stmt.terms:
            hits = [_atom_hits(a, model, tensors) for a in term]
            errors |= {"E301" for a, h in zip(term, hits) if not h and not a.optional}
            got = _term_hits(term, model, tensors)
            # Selectors that each select something but nothing together (or a complement of
            # everything) are an error, unless every one of them is optional; an optional atom
            # that selects nothing is no error, nor is the empty term it causes.
            if not got and all(hits) and not all(a.optional for a in term):
                errors.add("E302")
            chosen |= got
        selections[i] = chosen

    opt = next((s for s in stmts if s.kind == "optimizer"), None)
    cls = OPTIMIZER_CLASSES[opt.name if opt else "adam"]
    params = inspect.signature(cls).parameters
    base = {k: params[k].default for k in ("lr", "weight_decay")}
    for key, value in (opt.options if opt else ()):
        base[key] = _number(value)

    frozen = [not t.requires_grad for t, _ in tensors]
    values = [dict(base) for _ in tensors]
    selected_by = [set() for _ in tensors]
    for i, stmt in enumerate(stmts):
        for k in selections.get(i, ()):
            selected_by[k].add(i)
            if stmt.kind in ("freeze", "unfreeze"):
                frozen[k] = stmt.kind == "freeze"
            for key, value in stmt.options:
                values[k][key] = base[key] * float(value[1:]) if value.startswith("x") else _number(value)
    keyed = [frozenset(names) for _, names in tensors]
    return Expected(errors, dict(zip(keyed, frozen)), {n: v["lr"] for n, v in zip(keyed, values)},
                    {n: v["weight_decay"] for n, v in zip(keyed, values)}, dict(zip(keyed, selected_by)),
                    {n: names[0] for n, (_, names) in zip(keyed, tensors)},
                    {n: names[1:] for n, (_, names) in zip(keyed, tensors)})


def resolve_text(text: str, model: nn.Module):
    """Parse and resolve (without building torch objects or touching the model)."""
    plan = specopt.parse(text).plan
    cls = optimizer_class(plan)
    return resolve(plan, index_model(model), constructor_defaults(cls))


def error_codes(exc: SpecError) -> set[str]:
    return {d.code for d in exc.diagnostics}


def outcome(text: str, model: nn.Module):
    """A comparable summary of resolving ``text``: error codes, or per-name state and the partition."""
    try:
        res = resolve_text(text, model)
    except SpecError as exc:
        return ("error", frozenset(error_codes(exc)))
    by_name = {}
    for p in res.params:
        group = None if p.group is None else frozenset(
            frozenset(res.param(n).info.names) for n in res.groups[p.group].params)
        for n in p.info.names:
            by_name[n] = (p.frozen, p.settings["lr"].value, p.settings["weight_decay"].value, group)
    partition = frozenset(frozenset(frozenset(res.param(n).info.names) for n in g.params) for g in res.groups)
    return ("ok", by_name, partition)


# --- 1. the glob matcher against the reference -----------------------------------------------

class_bodies = st.sampled_from(["a", "ab", "!a", "!b0", "a-b", "0-9", "!a-z", "_", "A", "!B", "A-b", "Z-a"])


def _pieces():
    plain = st.one_of(st.sampled_from(list("abAB0_")), st.just("*"), st.just("?"),
                      class_bodies.map(lambda b: f"[{b}]"))
    return st.recursive(plain, lambda inner: st.lists(st.lists(inner, max_size=2).map("".join),
                                                      min_size=1, max_size=3)
                        .map(lambda alts: "{" + ",".join(alts) + "}"), max_leaves=6)


segment_globs = st.lists(_pieces(), min_size=1, max_size=3).map("".join).filter(lambda s: "**" not in s)
patterns = st.lists(st.one_of(segment_globs, st.just("**")), min_size=1, max_size=4).map(".".join).filter(
    lambda p: not any("brace alternatives" in why for why, _ in selector_problems("name", p)))  # the cap is 64
name_segments = st.one_of(st.text("abAB0_", min_size=1, max_size=2), st.sampled_from(ENTRY_NAMES))
names = st.lists(name_segments, min_size=1, max_size=5).map(".".join)


@_settings(250)
@given(pattern=patterns, anchored=st.booleans(), names=st.lists(names, min_size=1, max_size=8),
       ignore_case=st.booleans())
# a one-alternative brace
@example(pattern="{a}", anchored=False, names=["a", "b.a", "a.weight", "{a}"], ignore_case=False)
@example(pattern="{conv1}.weight", anchored=True, names=["conv1.weight", "conv1", "x.conv1.weight"], ignore_case=False)
@example(pattern="a.**.b", anchored=False, names=["a.b", "a.x.y.b", "q.a.b.c", "a", "b"], ignore_case=False)
@example(pattern="**", anchored=True, names=["a", "a.b"], ignore_case=False)
@example(pattern="[c-a]", anchored=False, names=["a", "b", "c"], ignore_case=False)
@example(pattern="[Z-a]", anchored=False, names=["z", "Z", "A", "_", "a"], ignore_case=True)
@example(pattern="Ab.**", anchored=True, names=["ab", "AB.b", "aB.A", "b.ab"], ignore_case=True)
def test_name_pattern_agrees_with_regex_reference(pattern, anchored, names, ignore_case):
    assert selector_problems("name", pattern) == [], pattern
    compiled = NamePattern(pattern, anchored, ignore_case)
    for name in names:
        want = ref.name_selects(pattern, anchored, name, ignore_case)
        assert compiled.matches(name) == want, (pattern, anchored, ignore_case, name)


@_settings(40)
@given(data=st.data(), case=model_cases())
def test_selectors_from_real_names_agree_with_reference(data, case):
    model = case.build()
    f = facts(model)
    everything = f.names + f.paths
    for _ in range(8):
        pattern, anchored = data.draw(name_globs(everything), label="name glob")
        pattern, fold = data.draw(recased(pattern), label="recased"), data.draw(st.booleans(), label="/i")
        assert selector_problems("name", pattern) == [], pattern
        compiled = NamePattern(pattern, anchored, fold)
        for name in everything:
            want = ref.name_selects(pattern, anchored, name, fold)
            assert compiled.matches(name) == want, (pattern, anchored, fold, name)
        cls_pattern = data.draw(class_globs(f.classes).flatmap(recased), label="class glob")
        assert selector_problems("class", cls_pattern) == [], cls_pattern
        glob = class_glob(cls_pattern, fold)
        for name in f.classes:
            assert glob.matches(name) == ref.class_matches(cls_pattern, name, fold), (cls_pattern, fold, name)


# --- 2./3. whole specs: selection, errors, cascade, partition, fewest groups ------------------

# A one-leaf model: ``a`` (a parameter), ``b.weight`` / ``b.bias`` (a Linear).
TINY = ModelCase(("Block", (("a", "param", (2,), True), ("b", "module", ("Linear", ())))))
TIED = ModelCase(("Plain", (("x0", "module", ("Linear", ())), ("b", "param", (1, 2), False))),
                 ties=(("x0.weight", "", "tied"),), shares=(("x0", "", "alias"),))


@_settings(120)
@given(case_spec=cases())
@example(case_spec=(TINY, (Stmt("group", ((Atom("name", "{b}.weight"),),), (("lr", "0.1"),)),)))
@example(case_spec=(TINY, (Stmt("freeze", ((Atom("name", "zz", optional=True), Atom("name", "a")),)),)))
@example(case_spec=(TINY, (Stmt("freeze", ((Atom("name", "a"), Atom("class", "Linear")),)),)))
@example(case_spec=(TIED, (Stmt("unfreeze", ((Atom("name", "tied"),),)),
                           Stmt("group", ((Atom("class", "Linear"),),), (("lr", "x2"),), "g")),))
# TIED's x0.weight is also 'tied' (its first name) and 'alias.weight': an intersection must hold on one
# name, a complement excludes the tensor when any name matches, and /first sees the first name only.
@example(case_spec=(TIED, (Stmt("group", ((Atom("name", "x0"), Atom("name", "alias")),), (("lr", "0.1"),)),)))
@example(case_spec=(TIED, (Stmt("group", ((Atom("name", "x0"), Atom("name", "tied", negated=True)),),
                                (("lr", "0.1"),)),)))
@example(case_spec=(TIED, (Stmt("group", ((Atom("name", "x0", first_name=True),),), (("lr", "0.1"),)),
                           Stmt("freeze", ((Atom("class", "plain", owner=True, ignore_case=True),),)))))
@example(case_spec=(TIED, (Stmt("group", ((Atom("class", "Linear", owner=True, first_name=True),
                                           Atom("name", "weight")),), (("lr", "0.1"),)),)))
def test_resolution_matches_reference(case_spec):
    case, stmts = case_spec
    model = case.build()
    text = spec_text(stmts)
    expected = expected_resolution(model, stmts)
    try:
        res = resolve_text(text, model)
    except SpecError as exc:
        assert expected.accepts(error_codes(exc)), (text, exc.render(), expected.errors)
        return
    assert not expected.errors, text

    # Tied tensors are one entry, under their first name, with the other names as aliases.
    assert [frozenset(p.info.names) for p in res.params] == list(expected.frozen), text
    for p in res.params:
        key = frozenset(p.info.names)
        assert p.info.name == expected.first_name[key]
        assert p.info.aliases == expected.aliases[key]
        # Which statements select the tensor (from the reference matcher), and the cascade.
        assert {o.index for o in p.touched} == expected.selected_by[key], (text, p.info.names)
        assert p.frozen == expected.frozen[key], (text, p.info.names)
        assert p.settings["lr"].value == expected.lr[key], (text, p.info.names)
        assert p.settings["weight_decay"].value == expected.weight_decay[key], (text, p.info.names)

    # A partition of the trainable tensors: each in exactly one group, frozen ones in none.
    grouped = [n for g in res.groups for n in g.params]
    assert len(grouped) == len(set(grouped))
    trainable = [p for p in res.params if not p.frozen]
    assert sorted(grouped) == sorted(p.info.name for p in trainable)
    for p in res.params:
        if p.frozen:
            assert p.group is None
        else:
            assert p.info.name in res.groups[p.group].params
            assert res.groups[p.group].settings == {k: s.value for k, s in p.settings.items()}

    # The fewest groups: one per distinct settings tuple, no group empty.
    distinct = {tuple(s.value for s in p.settings.values()) for p in trainable}
    assert len(res.groups) == len(distinct)
    assert all(g.params for g in res.groups)


@_settings(60)
@given(case_spec=cases(depth=2))
@example(case_spec=(TIED, (Stmt("freeze", ((Atom("name", "alias"),),)),)))
def test_compiled_optimizer_partitions_trainable_tensors(case_spec):
    case, stmts = case_spec
    model = case.build()
    text = spec_text(stmts)
    expected = expected_resolution(model, stmts)
    tensors = _tensors(model)
    flags = [t.requires_grad for t, _ in tensors]
    try:
        compiled = specopt.parse(text).compile(model)
    except SpecError as exc:
        codes = error_codes(exc)
        if codes != {"E402"} or expected.errors:
            assert expected.accepts(codes), (text, exc.render(), expected.errors)
        else:
            assert all(expected.frozen.values()), text
        assert [t.requires_grad for t, _ in tensors] == flags, "a failed compile changed the model"
        return
    assert not expected.errors, text
    seen = [id(t) for g in compiled.optimizer.param_groups for t in g["params"]]
    assert len(seen) == len(set(seen)), "a tensor is in the optimizer twice"
    want = {id(t) for t, names in tensors if not expected.frozen[frozenset(names)]}
    assert set(seen) == want
    by_id = {id(t): frozenset(names) for t, names in tensors}
    for group in compiled.optimizer.param_groups:
        for t in group["params"]:
            assert group["lr"] == expected.lr[by_id[id(t)]]
            assert group["weight_decay"] == expected.weight_decay[by_id[id(t)]]
    settings_of = {(g["lr"], g["weight_decay"]) for g in compiled.optimizer.param_groups}
    assert len(settings_of) == len(compiled.optimizer.param_groups)
    # The model's flags now say what is frozen, for every name of every tensor.
    for name, t in model.named_parameters(remove_duplicate=False):
        key = next(k for k in expected.frozen if name in k)
        assert t.requires_grad == (not expected.frozen[key]), name
    assert sorted(compiled.frozen) == sorted(expected.first_name[k] for k, f in expected.frozen.items() if f)


@_settings(80)
@given(case_spec=cases(), seed=st.integers(0, 2**16))
@example(case_spec=(TIED, (Stmt("group", ((Atom("name", "tied"),),), (("lr", "0.1"),)),)), seed=1)
def test_resolution_does_not_depend_on_parameter_order(case_spec, seed):
    case, stmts = case_spec
    # '/first' is about the order: which name of a tied tensor named_parameters() gives first.
    stmts = tuple(replace(s, terms=tuple(tuple(replace(a, first_name=False) for a in t) for t in s.terms))
                  for s in stmts)
    text = spec_text(stmts)
    base, shuffled = case.build(), case.build(shuffle_seed=seed)
    assert outcome(text, base) == outcome(text, shuffled), text


def test_optional_atom_that_selects_nothing_is_no_error_in_an_intersection():
    # '~a' may select nothing (README); then 'a & b' selects nothing, which is no error either.
    model = TINY.build()
    res = resolve_text("group ~lora & ndim<2 lr=0.1", model)
    assert all(p.settings["lr"].value == 0.001 for p in res.params)
