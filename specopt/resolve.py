"""Resolve: apply a plan's statements to a model's parameters, key by key, in order.

The result is a per-parameter assignment (frozen or not, every hyperparameter's
value, and which statement set it) and the fewest param groups that realise
it. This stage reads the model but never changes it, and imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .diagnostics import Diagnostic, Source, Span, SpecError, did_you_mean, suggest
from .plan import FreezeStatement, GroupStatement, Plan, Relative, Selector, Term
from .registry import OptimizerInfo
from .selectors import NamePattern, class_glob, ndim_test

MAX_SUGGESTION_CANDIDATES = 50_000


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


@dataclass(frozen=True)
class ModelIndex:
    """What resolution needs from a model: its parameters and each module's class names."""

    params: tuple[ParamInfo, ...]
    module_classes: Mapping[str, tuple[str, ...]]
    tensors: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def index_model(model) -> ModelIndex:
    """Index a ``torch.nn.Module``: tied tensors appear once, under their first name, with aliases."""
    by_id: dict[int, list] = {}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        by_id.setdefault(id(tensor), [tensor]).append(name)
    params, tensors = [], {}
    for tensor, first, *aliases in by_id.values():
        params.append(ParamInfo(first, tuple(aliases), tuple(tensor.shape), bool(tensor.requires_grad)))
        tensors[first] = tensor
    classes = {path: _class_names(type(module))
               for path, module in model.named_modules(remove_duplicate=False)}
    return ModelIndex(tuple(params), classes, tensors)


def _class_names(cls: type) -> tuple[str, ...]:
    out = []
    for c in cls.__mro__:
        if c is not object:
            out += [c.__name__, f"{c.__module__}.{c.__qualname__}"]
    return tuple(out)


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
    selections, diags = _select_all(plan, index)
    if diags:
        raise SpecError(diags, source)
    states = [_State(p, base) for p in index.params]
    changed: set[int] = set()
    for i, stmt in enumerate(plan.statements):
        if i in selections:
            origin = origin_of(plan, i, source)
            for j in sorted(selections[i]):
                if states[j].apply(stmt, origin, base):
                    changed.add(i)
    groups, group_of = _make_groups(states, info)
    params = tuple(s.finish(group_of.get(k)) for k, s in enumerate(states))
    warnings = _no_effect_warnings(plan, selections, changed, params)
    return Resolution(plan, info, base, params, groups, tuple(warnings))


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


class _State:
    """Mutable per-parameter state while statements are applied in order."""

    def __init__(self, info: ParamInfo, base: Mapping[str, Setting]):
        self.info = info
        self.frozen = not info.requires_grad
        self.frozen_by = None if info.requires_grad else MODEL_ORIGIN
        self.settings = dict(base)
        self.touched: list[Origin] = []

    def apply(self, stmt, origin: Origin, base: Mapping[str, Setting]) -> bool:
        """Apply one statement; return whether it changed any value."""
        self.touched.append(origin)
        if isinstance(stmt, FreezeStatement):
            before, self.frozen, self.frozen_by = self.frozen, stmt.kind == "freeze", origin
            return before != self.frozen
        changed = False
        for opt in stmt.options:
            value = opt.value
            if isinstance(value, Relative):
                value = base[opt.key].value * value.factor
            changed |= self.settings[opt.key].value != value
            self.settings[opt.key] = Setting(value, origin)
        return changed

    def finish(self, group: int | None) -> ParamAssignment:
        return ParamAssignment(self.info, self.frozen, self.frozen_by, dict(self.settings),
                               tuple(self.touched), group)


def _make_groups(states: list[_State], info: OptimizerInfo) -> tuple[tuple[GroupSpec, ...], dict[int, int]]:
    """Merge trainable parameters with identical settings into the fewest groups, in model order."""
    keys = [k for k in info.group_keys if k in (states[0].settings if states else {})]
    order: dict[tuple, list[int]] = {}
    for k, s in enumerate(states):
        if not s.frozen:
            order.setdefault(tuple(s.settings[key].value for key in keys), []).append(k)
    groups, group_of = [], {}
    for g, (values, members) in enumerate(order.items()):
        origins = {o.index: o.label for k in members for o in _value_origins(states[k])}
        if any(not _value_origins(states[k]) for k in members):
            origins[-1] = "default"
        name = "+".join(origins[i] for i in sorted(origins))
        groups.append(GroupSpec(name, dict(zip(keys, values)), tuple(states[k].info.name for k in members)))
        group_of.update({k: g for k in members})
    return tuple(groups), group_of


def _value_origins(state: _State) -> list[Origin]:
    return [s.origin for s in state.settings.values() if s.origin is not None and s.origin.kind == "group"]


def _no_effect_warnings(plan: Plan, selections: Mapping[int, set[int]], changed: set[int],
                        params: tuple[ParamAssignment, ...]) -> list[Diagnostic]:
    out = []
    for i, selected in selections.items():
        stmt = plan.statements[i]
        if not selected:
            continue
        if i not in changed:
            out.append(Diagnostic("W302", "statement changes nothing: the parameters it selects already "
                                  "have these values", stmt.span, severity="warning"))
        elif not any(_decided_by(params[j], i) for j in selected):
            out.append(Diagnostic("W301", "statement has no effect: later statements override it for "
                                  "every parameter it selects", stmt.span, severity="warning"))
    return out


def _decided_by(p: ParamAssignment, i: int) -> bool:
    """Whether statement ``i`` decides any part of the parameter's final state."""
    if p.frozen_by is not None and p.frozen_by.index == i:
        return True
    return not p.frozen and any(s.origin is not None and s.origin.index == i for s in p.settings.values())


# --- selection -------------------------------------------------------------------------------

def _select_all(plan: Plan, index: ModelIndex) -> tuple[dict[int, set[int]], list[Diagnostic]]:
    selector = _Selector(index)
    selections, diags = {}, []
    for i, stmt in enumerate(plan.statements):
        if isinstance(stmt, (FreezeStatement, GroupStatement)):
            chosen: set[int] = set()
            for term in stmt.selectors:
                chosen |= selector.term(term, diags)
            selections[i] = chosen
    return selections, diags


class _Selector:
    """Evaluates selector atoms against a model index, caching per atom text."""

    def __init__(self, index: ModelIndex):
        self.index = index
        self.everything = set(range(len(index.params)))
        self._cache: dict[tuple, set[int]] = {}

    def term(self, term: Term, diags: list[Diagnostic]) -> set[int]:
        positive = [a for a in term.atoms if not a.negated]
        chosen = set(self.everything) if not positive else None
        for atom in term.atoms:
            hits = self.atom(atom)
            if not hits and not atom.optional:
                diags.append(self._nothing(atom))
            if atom.negated:
                chosen = chosen - hits
            else:
                chosen = hits if chosen is None else chosen & hits
        if not chosen and len(term.atoms) > 1 and all(self.atom(a) or a.optional for a in term.atoms) \
                and not all(a.optional for a in term.atoms):
            diags.append(Diagnostic("E302", "these selectors select nothing together", term.span,
                                    "each selects something on its own, but no parameter satisfies all"))
        return chosen

    def atom(self, atom: Selector) -> set[int]:
        key = (atom.kind, atom.pattern, atom.anchored)
        if key not in self._cache:
            self._cache[key] = self._evaluate(atom)
        return self._cache[key]

    def _evaluate(self, atom: Selector) -> set[int]:
        params = self.index.params
        if atom.kind == "ndim":
            test = ndim_test(atom.pattern)
            return {i for i, p in enumerate(params) if test(p.ndim)}
        if atom.kind == "class":
            glob = class_glob(atom.pattern)
            paths = {path for path, names in self.index.module_classes.items()
                     if any(glob.matches(n) for n in names)}
            return {i for i, p in enumerate(params) if any(_under(n, paths) for n in p.names)}
        pattern = NamePattern(atom.pattern, atom.anchored)
        return {i for i, p in enumerate(params) if any(pattern.matches(n) for n in p.names)}

    def _nothing(self, atom: Selector) -> Diagnostic:
        if atom.kind == "ndim":
            ranks = sorted({p.ndim for p in self.index.params})
            hint = "parameter ranks in this model: " + ", ".join(map(str, ranks))
        elif atom.kind == "class":
            names = {n for names in self.index.module_classes.values() for n in names if "." not in n}
            hint = did_you_mean(atom.pattern, names) or "module classes here: " + ", ".join(sorted(names)[:12])
        else:
            close = suggest(atom.pattern, _windows(self.index, atom), limit=5)
            hint = ("closest real names: " + ", ".join(close)) if close else None
        tail = " (prefix it with ~ if that is intended)"
        return Diagnostic("E301", f"selector '{atom.text}' selects nothing{tail}", atom.span, hint)


def _under(name: str, paths: set[str]) -> bool:
    """Whether a parameter name lies in the subtree of any module path in ``paths``."""
    if "" in paths:
        return True
    parts = name.split(".")
    return any(".".join(parts[:k]) in paths for k in range(1, len(parts)))


def _windows(index: ModelIndex, atom: Selector) -> set[str]:
    """Real names to compare a failed name selector with: runs of as many segments as it has."""
    width = atom.pattern.count(".") + 1
    out: set[str] = set()
    for p in index.params:
        for name in p.names:
            parts = name.split(".")
            starts = [0] if atom.anchored else range(len(parts))
            for s in starts:
                out.add(".".join(parts[s:s + width]))
            if len(out) > MAX_SUGGESTION_CANDIDATES:
                return out
    return out
