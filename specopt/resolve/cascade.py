"""The cascade: statements applied in order, key by key, to one set of matching selector atoms.

Whether a statement selects a parameter depends only on which atoms match it,
so the cascade runs once per distinct set of matching atoms, and only over the
statements that could select it (those naming one of its atoms, plus those
whose terms are pure complements).

A tied tensor has several names. Its positive atoms of one intersection must
all match one of its names, while a negated atom excludes it when it matches
any of them; such a tensor brings the atoms of each name (``names``) besides
the atoms of all of them together (``hits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..diagnostics import Diagnostic, Span
from .match import Names, TreeMatcher, atom_key, term_selects
from ..plan.nodes import Relative
from ..plan.options import check_resolved
from ..catalog.registry import OptimizerInfo
from ..plan.statements import FreezeStatement, GroupStatement
from .timeline import Switch, ever_trained, ramp_key, timed_changes, timed_deciders


@dataclass(frozen=True)
class Origin:
    """The statement that set a value: its index in the plan, kind, display label and span."""

    index: int
    kind: str
    label: str
    span: Span | None = None


MODEL_ORIGIN = Origin(-1, "model", "model (requires_grad=False)")
_NONE: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Setting:
    """A hyperparameter value and the statement that set it (``None``: the optimizer's default)."""

    value: Any
    origin: Origin | None


@dataclass(frozen=True)
class Rule:
    """A selecting statement: its index and origin, and its terms as (positive, negative) atom ids."""

    index: int
    origin: Origin
    statement: FreezeStatement | GroupStatement
    terms: tuple[tuple[frozenset[int], frozenset[int]], ...]

    def selects(self, hits: frozenset[int], names: Names | None = None) -> bool:
        """Whether this statement selects a parameter matched by the atom ids ``hits``
        (and ``names``, see :func:`term_selects`)."""
        if names is None:
            return any(pos <= hits and not (neg & hits) for pos, neg in self.terms)
        return any(term_selects(pos, neg, hits, names) for pos, neg in self.terms)


class Rules:
    """The selecting statements of a plan, indexed by the atoms that can make them apply.

    ``optimizer`` is the entry whose ranges a value computed from a relative
    one (``lr=x10``) must respect; ``None`` skips that check. ``chosen`` picks
    the statements that are rules: by default those that freeze, unfreeze or
    set hyperparameters (resolve also indexes ``optimizer ... for`` this way).
    """

    def __init__(self, statements, origins, matcher: TreeMatcher, optimizer: OptimizerInfo | None = None,
                 chosen=None):
        self.optimizer = optimizer
        self.rules: list[Rule] = []
        chosen = chosen or (lambda stmt: isinstance(stmt, (FreezeStatement, GroupStatement)) or stmt.kind == "layers")
        for i, stmt in enumerate(statements):
            if chosen(stmt):
                terms = tuple((frozenset(matcher.ids[atom_key(a)] for a in t.atoms if not a.negated),
                               frozenset(matcher.ids[atom_key(a)] for a in t.atoms if a.negated))
                              for t in stmt.selectors)
                self.rules.append(Rule(i, origins(i), stmt, terms))
        self.layers: dict[int, Any] = {}  # a layer's atom id -> its origin (specopt.resolve.layer_depths)
        self._by_atom: dict[int, set[int]] = {}
        self._always: set[int] = set()
        for k, rule in enumerate(self.rules):
            for pos, _ in rule.terms:
                for atom in pos:
                    self._by_atom.setdefault(atom, set()).add(k)
                if not pos or rule.statement.kind == "layers":
                    self._always.add(k)  # a layers statement places every parameter

    def candidates(self, hits: frozenset[int]) -> list[Rule]:
        """The rules that might select a parameter matched by ``hits``, in statement order."""
        found = set(self._always)
        for atom in hits:
            found |= self._by_atom.get(atom, _NONE)
        return [self.rules[k] for k in sorted(found)]


@dataclass(frozen=True)
class Outcome:
    """The statements applied to one distinct set of matching atoms, and what each of them did."""

    requires_grad: bool
    frozen: bool
    frozen_by: Origin | None
    settings: Mapping[str, Setting]
    touched: tuple[Origin, ...]
    changed: frozenset[int]
    problems: tuple[Diagnostic, ...] = ()
    switches: tuple[Switch, ...] = ()

    @property
    def decided(self) -> frozenset[int]:
        """The statements that decide part of the state, at the start or from their moment on."""
        out = ({self.frozen_by.index} if self.frozen_by else set()) | timed_deciders(self.switches)
        if self.ever_trained:
            out |= {s.origin.index for s in self.settings.values() if s.origin is not None}
        return frozenset(out)

    @property
    def ever_trained(self) -> bool:
        """Whether the parameter is trainable at some point of the run (``frozen`` is the state at the start)."""
        return not self.frozen or ever_trained(self.switches, self.requires_grad)

    @property
    def ramp_key(self) -> tuple:
        """What keeps parameters under an lr warmup in param groups of their own (see :mod:`specopt.resolve.timeline`)."""
        return ramp_key(self.switches, self.requires_grad)


def cascade(hits: frozenset[int], requires_grad: bool, rules: Rules, base: Mapping[str, Setting],
            names: Names | None = None, optimizer: OptimizerInfo | None = None) -> Outcome:
    """Apply every statement that selects ``hits`` (and ``names``), in order, key by key.

    ``base`` and ``optimizer`` are those of the optimizer that trains the
    parameter (by default the rules' one); a group option that optimizer does
    not take is a problem of the outcome.
    """
    optimizer = optimizer or rules.optimizer
    frozen, frozen_by = not requires_grad, (None if requires_grad else MODEL_ORIGIN)
    settings, touched, changed, problems, switches = dict(base), [], set(), [], []
    for rule in rules.candidates(hits):
        if rule.statement.kind == "layers":
            layer = next(rules.layers[a] for a in hits if a < 0 and rules.layers[a].index == rule.index)
            frozen, frozen_by = _layer(layer, frozen, frozen_by, settings, base, changed, switches)
            touched.append(layer)
            continue
        if not rule.selects(hits, names):
            continue
        touched.append(rule.origin)
        stmt = rule.statement
        if isinstance(stmt, FreezeStatement):
            switches.append(Switch(rule.origin, stmt.freezes, stmt.at, getattr(stmt, "warmup", None)))
            if stmt.timed:
                continue  # applies from its moment on: specopt.resolve.timeline
            if frozen != stmt.freezes:
                changed.add(rule.index)
            frozen, frozen_by = stmt.freezes, rule.origin
            continue
        for opt in stmt.options:
            if opt.key not in settings:
                problems.append(_not_an_option(opt, optimizer))
                continue
            value = opt.value
            if isinstance(value, Relative):
                value = value.of(base[opt.key].value)
                problems += _out_of_range(opt, value, optimizer)
            if settings[opt.key].value != value:
                changed.add(rule.index)
            settings[opt.key] = Setting(value, rule.origin)
    changed |= timed_changes(tuple(switches), requires_grad)
    return Outcome(requires_grad, frozen, frozen_by, settings, tuple(touched), frozenset(changed), tuple(problems),
                   tuple(switches))


def _layer(layer, frozen: bool, frozen_by, settings: dict, base, changed: set, switches: list):
    """Apply one depth of a ``layers`` statement (a :class:`specopt.resolve.layer_depths.LayerOrigin`): its relative lr,
    and a freeze when its factor is below ``freeze_below``. Returns the frozen state and who decided it."""
    value = Relative(factor=layer.scale).of(base["lr"].value)
    if settings["lr"].value != value:
        changed.add(layer.index)
    settings["lr"] = Setting(value, layer)
    if not layer.frozen:
        return frozen, frozen_by
    switches.append(Switch(layer, True))
    if not frozen:
        changed.add(layer.index)
    return True, layer


def _not_an_option(opt, info: OptimizerInfo | None) -> Diagnostic:
    """E305: a group sets an option that the optimizer training some of its parameters does not take."""
    name = info.name if info else "their optimizer"
    return Diagnostic("E305", f"the group sets '{opt.key}', but {name}, which trains some of the parameters "
                      "it selects, has no such option", opt.span,
                      f"narrow the group to the parameters of an optimizer with '{opt.key}'")


def _out_of_range(opt, value, info: OptimizerInfo | None) -> list[Diagnostic]:
    """E207 when a value computed from a relative one leaves its option's range."""
    if info is None:
        return []
    found = check_resolved(opt.key, value, info, opt.value_span or opt.span, f"x{opt.value.factor:g}")
    return [found] if found else []


def no_effect_warnings(rules: Rules, outcomes) -> list[Diagnostic]:
    """W302 for statements that change nothing, W301 for statements overridden wherever they apply."""
    reached, changed, decided = set(), set(), set()
    for o in outcomes:
        reached |= {t.index for t in o.touched}
        changed |= o.changed
        decided |= o.decided
    out = []
    for rule in rules.rules:
        span = rule.statement.span
        if rule.index not in reached or getattr(rule.statement, "norms", None) is not None:
            continue  # what norms= does is checked against the norm layers (specopt.resolve.norm_layers)
        if rule.index not in changed:
            out.append(Diagnostic("W302", "statement changes nothing: the parameters it selects already "
                                  "have these values", span, severity="warning"))
        elif rule.index not in decided:
            out.append(Diagnostic("W301", "statement has no effect: other statements override or freeze "
                                  "every parameter it selects", span, severity="warning"))
    return out
