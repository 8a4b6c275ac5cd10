"""Resolve: apply a plan's statements to a model's parameters, key by key, in order.

The result is a per-parameter assignment (frozen or not, every hyperparameter's
value, and which statement set it) and the fewest param groups that realise
it. This stage reads the model but never changes it, and imports no torch.

Selector matching (``match``) walks the module tree once; the statements are
applied once per distinct set of matching atoms (``cascade``). Per-parameter
records are built only when asked for, so resolving a model of a million
tensors costs little more than enumerating them.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator, Mapping

from .built_flags import built_flags
from .cascade import MODEL_ORIGIN, Origin, Outcome, Rules, Setting, cascade, no_effect_warnings
from ..diagnostics import Source, SpecError
from .layer_depths import place_layers
from .match import Found, TreeMatcher, class_names, selection_errors, walk
from .norm_layers import norm_warnings
from .owners import OptimizerSlot, claims, make_slots, owner, ownership_errors
from ..plan.plan import Plan
from ..plan.selectors import selector_problems
from ..plan.statements import GroupStatement
from ..catalog.registry import OptimizerInfo
from .wrappers import named_modules

__all__ = ["GroupSpec", "MODEL_ORIGIN", "ModelIndex", "Origin", "ParamAssignment", "ParamInfo", "Resolution",
           "Setting", "index_model", "origin_of", "resolve"]


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
        found = walk(self.model, TreeMatcher(()))
        flags = built_flags(found.tensors)
        return tuple(ParamInfo(n, tuple(found.aliases.get(k, ())), tuple(t.shape), flag)
                     for k, (n, t, flag) in enumerate(zip(found.names, found.tensors, flags)))

    @cached_property
    def module_classes(self) -> dict[str, tuple[str, ...]]:
        """Each module path with the class names a class selector is matched against.

        Paths leave out wrapper segments (:mod:`specopt.resolve.wrappers`); a wrapper's
        path holds its own class names and those of the module it wraps.
        """
        out: dict[str, tuple[str, ...]] = {}
        for path, module in named_modules(self.model):
            out[path] = out.get(path, ()) + class_names(type(module))
        return out


def index_model(model) -> ModelIndex:
    """Wrap a ``torch.nn.Module`` for resolution."""
    return ModelIndex(model)


@dataclass(frozen=True)
class ParamAssignment:
    """The resolved state of one parameter."""

    info: ParamInfo
    frozen: bool
    frozen_by: Origin | None
    settings: Mapping[str, Setting]
    touched: tuple[Origin, ...]
    group: int | None
    optimizer: int | None = None


@dataclass(frozen=True)
class GroupSpec:
    """One param group: a name, its hyperparameters, its parameters in model order, and its optimizer's slot."""

    name: str
    settings: Mapping[str, Any]
    params: tuple[str, ...]
    optimizer: int = 0


@dataclass(frozen=True)
class _Columns:
    """Per-parameter data in columns: names, tensors, aliases and which outcome applies."""

    names: list[str]
    tensors: list[Any]
    aliases: dict[int, list[str]]
    outcome_of: list[int]
    outcomes: list[Outcome]
    group_of: list[int | None]
    slot_of: list[int]


@dataclass(frozen=True, eq=False)
class Resolution:
    """The outcome of resolving a plan against a model.

    ``slots`` holds every optimizer the spec builds (see :mod:`specopt.resolve.owners`);
    ``optimizer`` and ``base`` are those of slot 0, the one without ``for``.
    """

    plan: Plan
    slots: tuple[OptimizerSlot, ...]
    groups: tuple[GroupSpec, ...]
    warnings: tuple
    columns: _Columns = field(repr=False)
    model: Any = field(default=None, repr=False)

    @property
    def optimizer(self) -> OptimizerInfo:
        """The entry of the optimizer without ``for`` (adam when the spec names none)."""
        return self.slots[0].info

    @property
    def base(self) -> Mapping[str, Setting]:
        """The base values of the optimizer without ``for``."""
        return self.slots[0].base

    @property
    def used_slots(self) -> tuple[OptimizerSlot, ...]:
        """The optimizers that train at least one parameter, in slot order."""
        used = {g.optimizer for g in self.groups}
        return tuple(s for s in self.slots if s.index in used)

    @cached_property
    def params(self) -> tuple[ParamAssignment, ...]:
        """Every parameter's assignment, in model order."""
        c = self.columns
        out = []
        for k, (name, tensor, o) in enumerate(zip(c.names, c.tensors, c.outcome_of)):
            outcome = c.outcomes[o]
            info = ParamInfo(name, tuple(c.aliases.get(k, ())), tuple(tensor.shape), outcome.requires_grad)
            group = c.group_of[o]
            out.append(ParamAssignment(info, outcome.frozen, outcome.frozen_by, outcome.settings,
                                       outcome.touched, group, c.slot_of[o] if group is not None else None))
        return tuple(out)

    @cached_property
    def tensors(self) -> dict[str, Any]:
        """Each parameter tensor by its canonical name."""
        return dict(zip(self.columns.names, self.columns.tensors))

    def frozen_flags(self) -> Iterator[tuple[Any, bool]]:
        """Each tensor with whether the spec leaves it frozen."""
        c = self.columns
        return ((t, c.outcomes[o].frozen) for t, o in zip(c.tensors, c.outcome_of))

    def param(self, name: str) -> ParamAssignment:
        """Look a parameter up by any of its names."""
        return self.params[self._positions[name]]

    @cached_property
    def _positions(self) -> dict[str, int]:
        c = self.columns
        out = {name: k for k, name in enumerate(c.names)}
        out.update({alias: k for k, aliases in c.aliases.items() for alias in aliases})
        return out


def resolve(plan: Plan, index: ModelIndex, defaults, source: Source | None = None) -> Resolution:
    """Resolve ``plan`` against ``index``.

    ``defaults`` are the constructor defaults of each optimizer the spec builds,
    in slot order (:func:`specopt.resolve.owners.slot_statements`); one mapping for one optimizer.
    """
    defaults = [defaults] if isinstance(defaults, Mapping) else list(defaults)
    origins = lambda i: origin_of(plan, i, source)  # noqa: E731
    slots = make_slots(plan, defaults, origins)
    matcher = TreeMatcher(a for s in plan.statements for t in getattr(s, "selectors", ()) for a in t.atoms)
    rules = Rules(plan.statements, origins, matcher, slots[0].info)
    owners = claims(plan, origins, matcher)
    with _collector_paused():
        found = walk(index.model, matcher)
        layer_diags = place_layers(plan, found, matcher, rules, origins)
        signatures = _signatures(found)
        number = {sig: k for k, sig in enumerate(dict.fromkeys(signatures))}
        selections = [_selection(sig, matcher) for sig in number]
        owned = [owner(h, names, owners) for h, names in selections]
        slot_of = [claimed[0] if claimed else 0 for claimed in owned]
        outcomes = [cascade(h, sig[2], rules, slots[k].base, names, slots[k].info)
                    for (h, names), sig, k in zip(selections, number, slot_of)]
        diags = selection_errors(rules.rules + owners.rules, matcher, selections, index) + layer_diags
        diags += _problems(outcomes)
        diags += _ownership(slots, owned, outcomes, found.names, signatures, number)
        if diags:
            raise SpecError(diags, source)
        groups, group_of, outcome_of = _groups(slots, slot_of, outcomes, found.names, signatures, number)
    columns = _Columns(found.names, found.tensors, found.aliases, outcome_of, outcomes, group_of, slot_of)
    warnings = tuple(no_effect_warnings(rules, outcomes)) + tuple(norm_warnings(plan, index.model))
    return Resolution(plan, slots, groups, warnings, columns, index.model)


def _problems(outcomes: list[Outcome]) -> list:
    """Each problem the cascade found once (values out of range, options an optimizer lacks)."""
    return list(dict.fromkeys(d for o in outcomes for d in o.problems))


def _ownership(slots, owned, outcomes, names, signatures, number) -> list:
    """E303/E304 (see :func:`specopt.resolve.owners.ownership_errors`); per-parameter lists only when needed.

    ``owned`` and ``outcomes`` are per distinct signature; ``number`` maps a parameter's signature to them.
    """
    restricted = any(s.info.param_ndims for s in slots)
    if not restricted and all(len(c) <= 1 for c, o in zip(owned, outcomes) if o.ever_trained):
        return []
    per_param = [number[sig] for sig in signatures]
    return ownership_errors(slots, [owned[o] for o in per_param], [outcomes[o].ever_trained for o in per_param],
                            names, [sig[1] for sig in signatures])


def _signatures(found: Found) -> list[tuple]:
    """Each tensor's matching atoms, rank and ``requires_grad``; then, for a tied tensor whose
    names match different atoms, the atoms of each name."""
    out = [(h, t.dim(), flag) for h, t, flag in zip(found.hits, found.tensors, built_flags(found.tensors))]
    for k in found.per_name:
        names = found.split(k)
        if names is not None:
            out[k] += (names,)
    return out


def _selection(signature: tuple, matcher: TreeMatcher) -> tuple[frozenset[int], frozenset | None]:
    """The atoms that select a tensor of this signature, rank atoms included: under any of its
    names, and under each name where that differs (see ``cascade.term_selects``)."""
    ranks = matcher.ndim(signature[1])
    names = frozenset(n | ranks for n in signature[3]) if len(signature) > 3 else None
    return signature[0] | ranks, names


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


def _matchable(stmt):
    """The statement with only the selectors that can be matched (those that cannot are E209 already),
    or ``None`` when none is left, or the statement's selectors are not one field (``layers``)."""
    good = tuple(t for t in stmt.selectors if not any(selector_problems(a.kind, a.pattern) for a in t.atoms))
    if len(good) == len(stmt.selectors):
        return stmt
    if not good or "selectors" not in type(stmt).model_fields:
        return None
    return stmt.model_copy(update={"selectors": good})


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


def _groups(slots, slot_of: list[int], outcomes: list[Outcome], names: list[str], signatures: list, number: dict):
    """Merge outcomes with identical settings and optimizer into the fewest groups, ordered by first parameter.

    Returns the groups, each outcome's group (``None`` when never trained) and each parameter's outcome.
    """
    index: dict[tuple, int] = {}
    group_of: list[int | None] = []
    labels: list[dict[int, str]] = []
    for out, k in zip(outcomes, slot_of):
        if not out.ever_trained:
            group_of.append(None)
            continue
        values = tuple(out.settings[key].value for key in slots[k].base)
        g = index.setdefault((k, values, out.ramp_key), len(index))
        if g == len(labels):
            labels.append({})
        _add_labels(labels[g], out, "default" if k == 0 else slots[k].info.name)
        group_of.append(g)
    members: list[list[str]] = [[] for _ in labels]
    outcome_of = []
    for name, sig in zip(names, signatures):
        o = number[sig]
        outcome_of.append(o)
        g = group_of[o]
        if g is not None:
            members[g].append(name)
    titles = _unique([_group_name(labels[g]) for g in range(len(labels))])
    groups = tuple(GroupSpec(titles[g], dict(zip(slots[key[0]].base, key[1])), tuple(members[g]), key[0])
                   for key, g in index.items())
    return groups, group_of, outcome_of


def _unique(names: list[str]) -> list[str]:
    """Number repeated group names (``a``, ``a#2``) so every param group has its own name."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _add_labels(labels: dict[int, str], out: Outcome, default: str) -> None:
    origins = [s.origin for s in out.settings.values() if s.origin is not None and s.origin.kind in ("group", "layers")]
    if out.ramp_key:
        labels.update({s.index: s.origin.label for s in out.switches if s.warmup is not None})
    if not origins:
        labels[-1] = default
    for o in origins:
        labels[o.index] = getattr(o, "group_label", o.label)


def _group_name(labels: dict[int, str]) -> str:
    return "+".join(dict.fromkeys(labels[i] for i in sorted(labels)))


def selection_diagnostics(statements, model, source: Source | None = None) -> list:
    """E301/E302 for the selectors of ``statements`` against ``model``, whatever else is wrong.

    For a spec with other errors: the statements that could be read are matched
    against the model, so that every error of the file is reported in one run.
    """
    chosen = [s for s in statements if getattr(s, "role", None) == "selection" or getattr(s, "selectors", ())]
    chosen = [m for m in map(_matchable, chosen) if m is not None]
    if not chosen:
        return []
    matcher = TreeMatcher(a for s in chosen for t in s.selectors for a in t.atoms)
    rules = Rules(chosen, lambda i: Origin(i, chosen[i].kind, chosen[i].kind, chosen[i].span), matcher,
                  chosen=lambda s: bool(s.selectors))
    with _collector_paused():
        found = walk(model, matcher)
        selections = list(dict.fromkeys(_selection(sig, matcher) for sig in _signatures(found)))
        return selection_errors(rules.rules, matcher, selections, index_model(model))
