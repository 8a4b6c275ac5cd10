"""Resolve: apply a plan's statements to a model's parameters, key by key, in order.

The result is a per-parameter assignment (frozen or not, every hyperparameter's
value, and which statement set it) and the fewest param groups that realise
it. This stage reads the model but never changes it, and imports no torch.

Whether a statement selects a parameter depends only on which selector atoms
match it, so the statements are applied once per distinct set of matching
atoms (a handful, even in models of a million tensors), not once per tensor.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from .diagnostics import Diagnostic, Source, Span, SpecError
from .match import Entry, TreeMatcher, atom_key, class_names, selection_errors, walk
from .plan import FreezeStatement, GroupStatement, Plan, Relative
from .registry import OptimizerInfo


@dataclass(frozen=True)
class ParamInfo:
    """One parameter tensor: its canonical name, other names it is reachable by, and its shape."""

    name: str
    aliases: tuple[str, ...]
    shape: tuple[int, ...]
    requires_grad: bool

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name followed by the aliases."""
        return (self.name,) + self.aliases

    @property
    def ndim(self) -> int:
        """The tensor's rank."""
        return len(self.shape)

    @property
    def numel(self) -> int:
        """The number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n


class ModelIndex:
    """A model as resolution sees it; the parameter list is computed on first use."""

    def __init__(self, model):
        self.model = model

    @cached_property
    def params(self) -> tuple[ParamInfo, ...]:
        """Every parameter tensor once, under its first name, with its other names as aliases."""
        return tuple(_info(e) for e in walk(self.model, TreeMatcher(())))

    @cached_property
    def module_classes(self) -> dict[str, tuple[str, ...]]:
        """Each module path with the class names a class selector is matched against."""
        return {path: class_names(type(m)) for path, m in self.model.named_modules(remove_duplicate=False)}


def index_model(model) -> ModelIndex:
    """Wrap a ``torch.nn.Module`` for resolution."""
    return ModelIndex(model)


def _info(entry: Entry) -> ParamInfo:
    t = entry.tensor
    return ParamInfo(entry.name, tuple(entry.aliases), tuple(t.shape), bool(t.requires_grad))


@dataclass(frozen=True)
class Origin:
    """The statement that set a value: its index in the plan, kind, display label and span."""

    index: int
    kind: str
    label: str
    span: Span | None = None


MODEL_ORIGIN = Origin(-1, "model", "model (requires_grad=False)")


@dataclass(frozen=True)
class Setting:
    """A hyperparameter value and the statement that set it (``None``: the optimizer's default)."""

    value: Any
    origin: Origin | None


@dataclass(frozen=True)
class ParamAssignment:
    """The resolved state of one parameter."""

    info: ParamInfo
    frozen: bool
    frozen_by: Origin | None
    settings: Mapping[str, Setting]
    touched: tuple[Origin, ...]
    group: int | None


@dataclass(frozen=True)
class GroupSpec:
    """One param group: a name, its hyperparameters, and its parameters in model order."""

    name: str
    settings: Mapping[str, Any]
    params: tuple[str, ...]


@dataclass(frozen=True)
class Resolution:
    """The outcome of resolving a plan against a model."""

    plan: Plan
    optimizer: OptimizerInfo
    base: Mapping[str, Setting]
    params: tuple[ParamAssignment, ...]
    groups: tuple[GroupSpec, ...]
    warnings: tuple[Diagnostic, ...]
    tensors: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def param(self, name: str) -> ParamAssignment:
        """Look a parameter up by any of its names."""
        for p in self.params:
            if name in p.info.names:
                return p
        raise KeyError(name)


def resolve(plan: Plan, index: ModelIndex, defaults: Mapping[str, Any],
            source: Source | None = None) -> Resolution:
    """Resolve ``plan`` against ``index``; ``defaults`` are the optimizer constructor's defaults."""
    info = plan.optimizer_info
    base = _base_settings(plan, info, defaults, source)
    matcher = TreeMatcher(a for s in plan.statements for t in getattr(s, "selectors", ()) for a in t.atoms)
    rules = _rules(plan, source, matcher)
    with _collector_paused():
        entries = walk(index.model, matcher)
        signatures = [(e.hits, e.tensor.dim(), e.tensor.requires_grad) for e in entries]
        hits = {sig: sig[0] | matcher.ndim(sig[1]) for sig in dict.fromkeys(signatures)}
        outcomes = {sig: _cascade(h, sig[2], rules, base) for sig, h in hits.items()}
    diags = selection_errors(rules, matcher, set(hits.values()), index)
    if diags:
        raise SpecError(diags, source)
    with _collector_paused():
        return _assemble(plan, info, base, entries, signatures, outcomes, rules)


@contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector while building many small acyclic objects.

    Each collection pass walks every object the model owns, so a million-tensor
    model would otherwise spend more time collecting than resolving.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def origin_of(plan: Plan, i: int, source: Source | None) -> Origin:
    """The origin record of statement ``i``: named groups by name, others by kind and line."""
    stmt = plan.statements[i]
    if isinstance(stmt, GroupStatement) and stmt.name:
        label = stmt.name
    elif source is not None and stmt.span is not None:
        line, col = source.line_col(stmt.span.start)
        label = f"{stmt.kind}@{line}:{col}"
    else:
        label = f"{stmt.kind}#{i + 1}"
    return Origin(i, stmt.kind, label, stmt.span)


def _base_settings(plan: Plan, info: OptimizerInfo, defaults: Mapping[str, Any],
                   source: Source | None) -> dict[str, Setting]:
    base = {k: Setting(defaults[k], None) for k in info.group_keys if k in defaults}
    stmt = plan.optimizer
    if stmt is not None:
        origin = origin_of(plan, plan.statements.index(stmt), source)
        for opt in stmt.options:
            if opt.key in base:
                base[opt.key] = Setting(opt.value, origin)
    return base


Rule = tuple  # (statement index, origin, statement, ((positive ids, negative ids), ...))


def _rules(plan: Plan, source: Source | None, matcher: TreeMatcher) -> list[Rule]:
    """The selecting statements, each with its terms as sets of positive and negative atom ids."""
    rules = []
    for i, stmt in enumerate(plan.statements):
        if isinstance(stmt, (FreezeStatement, GroupStatement)):
            terms = tuple((frozenset(matcher.ids[atom_key(a)] for a in t.atoms if not a.negated),
                           frozenset(matcher.ids[atom_key(a)] for a in t.atoms if a.negated))
                          for t in stmt.selectors)
            rules.append((i, origin_of(plan, i, source), stmt, terms))
    return rules


def selects(terms, hits: frozenset[int]) -> bool:
    """Whether a statement's terms select a parameter matched by the atom ids ``hits``."""
    return any(pos <= hits and not (neg & hits) for pos, neg in terms)


@dataclass(frozen=True)
class _Outcome:
    """The statements applied to one distinct set of matching atoms."""

    frozen: bool
    frozen_by: Origin | None
    settings: Mapping[str, Setting]
    touched: tuple[Origin, ...]
    changed: frozenset[int]


def _cascade(hits: frozenset[int], requires_grad: bool, rules: list[Rule],
             base: Mapping[str, Setting]) -> _Outcome:
    frozen, frozen_by = not requires_grad, (None if requires_grad else MODEL_ORIGIN)
    settings, touched, changed = dict(base), [], set()
    for i, origin, stmt, terms in rules:
        if not selects(terms, hits):
            continue
        touched.append(origin)
        if isinstance(stmt, FreezeStatement):
            if frozen != (stmt.kind == "freeze"):
                changed.add(i)
            frozen, frozen_by = stmt.kind == "freeze", origin
            continue
        for opt in stmt.options:
            value = opt.value
            if isinstance(value, Relative):
                value = base[opt.key].value * value.factor
            if settings[opt.key].value != value:
                changed.add(i)
            settings[opt.key] = Setting(value, origin)
    return _Outcome(frozen, frozen_by, settings, tuple(touched), frozenset(changed))


def _assemble(plan, info, base, entries: list[Entry], signatures: list, outcomes: dict, rules) -> Resolution:
    """Build the per-parameter assignment; identical settings share a group, in model order."""
    keys = list(base)
    group_of: dict[tuple, int] = {}
    labels: list[dict[int, str]] = []
    placement: dict[tuple, int | None] = {}
    for sig, out in outcomes.items():
        if out.frozen:
            placement[sig] = None
            continue
        g = placement[sig] = group_of.setdefault(tuple(out.settings[k].value for k in keys), len(group_of))
        if g == len(labels):
            labels.append({})
        _add_labels(labels[g], out)
    members: list[list[str]] = [[] for _ in labels]
    params, tensors = [], {}
    for e, sig in zip(entries, signatures):
        out, g = outcomes[sig], placement[sig]
        if g is not None:
            members[g].append(e.name)
        params.append(ParamAssignment(_info(e), out.frozen, out.frozen_by, out.settings, out.touched, g))
        tensors[e.name] = e.tensor
    names = _unique([_group_name(labels[g]) for g in range(len(labels))])
    specs = tuple(GroupSpec(names[g], dict(zip(keys, values)), tuple(members[g]))
                  for values, g in group_of.items())
    warnings = _no_effect_warnings(plan, rules, outcomes.values())
    return Resolution(plan, info, base, tuple(params), specs, tuple(warnings), tensors)


def _unique(names: list[str]) -> list[str]:
    """Number repeated group names (``a``, ``a#2``) so every param group has its own name."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _add_labels(labels: dict[int, str], out: _Outcome) -> None:
    origins = [s.origin for s in out.settings.values() if s.origin is not None and s.origin.kind == "group"]
    if not origins:
        labels[-1] = "default"
    for o in origins:
        labels[o.index] = o.label


def _group_name(labels: dict[int, str]) -> str:
    return "+".join(dict.fromkeys(labels[i] for i in sorted(labels)))


def _no_effect_warnings(plan: Plan, rules: list[Rule], outcomes) -> list[Diagnostic]:
    """W302 for statements that change nothing, W301 for statements overridden wherever they apply."""
    out = []
    for i, origin, stmt, _ in rules:
        reached = [o for o in outcomes if origin in o.touched]
        if not reached:
            continue
        if not any(i in o.changed for o in reached):
            out.append(Diagnostic("W302", "statement changes nothing: the parameters it selects already "
                                  "have these values", stmt.span, severity="warning"))
        elif not any(_decided_by(o, i) for o in reached):
            out.append(Diagnostic("W301", "statement has no effect: later statements override it for "
                                  "every parameter it selects", stmt.span, severity="warning"))
    return out


def _decided_by(o: _Outcome, i: int) -> bool:
    """Whether statement ``i`` decides any part of a final state."""
    if o.frozen_by is not None and o.frozen_by.index == i:
        return True
    return not o.frozen and any(s.origin is not None and s.origin.index == i for s in o.settings.values())
