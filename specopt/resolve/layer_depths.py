"""Placing parameters in the layers of each ``layers`` statement, and what each layer's depth sets.

For one statement, every tensor is placed by the first of its selectors that
selects it: a slot's selector puts it in that slot, keyed by what the
selector's wildcards captured (numbers, compared element by element; nothing
for a slot without wildcards); a ``with`` selector moves it to a layer of its
slot: the first one whose numbers start with what the ``with`` selector
captured, or the slot's last layer when it captures nothing. A tensor no
selector selects goes to one more layer on top of all others. Depths count
from 0 in slot order; the layer at depth ``d`` gets the factor
``max(min_scale, decay ^ (top - d))`` and is frozen when ``freeze_below``
exceeds that factor.

Each layer becomes a :class:`LayerOrigin`, and its tensors get a synthetic
atom id (negative, so never an atom's) in their matching atoms. Tensors of
different layers thus get outcomes of their own, and the cascade reads each
one's layer from its atoms at the statement's place (``Rules.layers``).
Captures are read once per module path (:class:`specopt.plan.captures.Captures`),
so the cost per tensor is a dictionary lookup or two.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Callable

from ..plan.captures import Captures
from .cascade import Origin
from ..diagnostics import Diagnostic
from ..plan.layers_statement import LayersStatement, capturing, term_text
from .match import Found, TreeMatcher, atom_key

MEMBERS_SHOWN = 3


@dataclass(frozen=True)
class LayerOrigin(Origin):
    """A ``layers`` statement as the setter of a value: the statement at one of its depths.

    ``label`` names the depth and factor (``layers@3:1 depth 3 (x0.42)``);
    ``statement`` is the statement's own label; ``members`` says what the
    layer holds (module paths, or selectors for a slot without wildcards;
    for ``rest``, the layer of what no slot selects, its top-level modules).
    """

    statement: str = ""
    depth: int = 0
    top: int = 0
    scale: float = 1.0
    frozen: bool = False
    members: tuple[str, ...] = ()
    rest: bool = False

    @property
    def group_label(self) -> str:
        """What the layer adds to the name of a param group: the statement and the factor."""
        return f"{self.statement} x{self.scale:.3g}"


@dataclass(frozen=True)
class _Ref:
    """One selector (term) of the statement: its atom ids, its slot, whether it is a ``with``, its captures."""

    pos: frozenset[int]
    neg: frozenset[int]
    slot: int
    joins: bool
    captures: Captures | None
    term: Any
    ids: tuple[int, ...]

    @property
    def place(self) -> tuple[int, bool]:
        """Which part of the statement the selector belongs to: its slot, and whether as a ``with``."""
        return (self.slot, self.joins)

    @property
    def where(self) -> str:
        """The part of the statement, in words: ``slot 2`` or ``the with of slot 2``."""
        return f"the with of slot {self.slot + 1}" if self.joins else f"slot {self.slot + 1}"


@dataclass
class _Placement:
    """Each tensor's key (its selector's index and the match, ``None`` for the rest), a sample name per
    key, and the first tensor each pair of clashing selectors shares."""

    keys: list = field(default_factory=list)
    samples: dict = field(default_factory=dict)
    clashes: dict = field(default_factory=dict)
    rest: dict = field(default_factory=dict)  # the top-level modules of the tensors no selector selects


def place_layers(plan, found: Found, matcher: TreeMatcher, rules, origin_of: Callable[[int], Origin]) -> list[Diagnostic]:
    """Place every tensor of ``found`` in a layer of each ``layers`` statement of ``plan``.

    Adds each layer's synthetic atom id to the tensors' atoms in ``found`` and
    fills ``rules.layers`` (id to :class:`LayerOrigin`). Returns E306 for a
    ``with`` that joins no layer, E307 for a wildcard that captured no number,
    E308 for a tensor two parts of the statement select; none for a statement
    whose selectors select nothing (that is E301, reported by the caller).
    """
    diags: list[Diagnostic] = []
    rules.layers = {}
    selected = frozenset().union(*set(found.hits))
    for i, stmt in enumerate(plan.statements):
        if isinstance(stmt, LayersStatement):
            refs = _refs(stmt, matcher)
            placement = _place(refs, found, matcher)
            origins, of_key, problems = _layers(stmt, refs, placement, origin_of(i))
            if all(_selects(ref, selected) for ref in refs):
                diags += problems + _clashes(placement)
            first = -len(rules.layers) - 1
            rules.layers.update({first - d: o for d, o in enumerate(origins)})
            _mark(found, placement.keys, {key: first - d for key, d in of_key.items()}, first - len(origins) + 1)
    return diags


def _selects(ref: _Ref, selected: frozenset[int]) -> bool:
    """Whether every atom of the selector that must select something does (rank atoms aside)."""
    return all(a.optional or a.kind == "ndim" or k in selected for a, k in zip(ref.term.atoms, ref.ids))


def _refs(stmt: LayersStatement, matcher: TreeMatcher) -> list[_Ref]:
    out = []
    for s, slot in enumerate(stmt.slots):
        for joins, terms in ((False, slot.selectors), (True, slot.joins)):
            for term in terms:
                ids = tuple(matcher.ids[atom_key(a)] for a in term.atoms)
                wild = capturing(term)
                captures = Captures(wild[0].pattern, wild[0].anchored, wild[0].ignore_case) if wild else None
                out.append(_Ref(frozenset(k for a, k in zip(term.atoms, ids) if not a.negated),
                                frozenset(k for a, k in zip(term.atoms, ids) if a.negated), s, joins, captures,
                                term, ids))
    return out


_UNSEEN = object()


def _place(refs: list[_Ref], found: Found, matcher: TreeMatcher) -> _Placement:
    """Each tensor's key: the index of the first selector that selects it and what it matched there."""
    placement = _Placement()
    keys, samples = placement.keys, placement.samples
    chosen: dict = {}
    ranked = any(a.kind == "ndim" for ref in refs for a in ref.term.atoms)
    tensors = found.tensors
    for k, (name, hits) in enumerate(zip(found.names, found.hits)):
        if ranked:
            hits = hits | matcher.ndim(tensors[k].dim())
        r = chosen.get(hits, _UNSEEN)
        if r is _UNSEEN:
            r = chosen[hits] = _choose(refs, hits, placement.clashes, name)
        if r is None:
            keys.append(None)
            placement.rest[name.partition(".")[0]] = None
            continue
        captures = refs[r].captures
        match = None if captures is None else captures.of(name) or _alias_match(captures, found, k)
        key = (r, match)
        keys.append(key)
        if key not in samples:
            samples[key] = name
    return placement


def _alias_match(captures: Captures, found: Found, k: int):
    """The match under another name of a tied tensor, whose first name the selector does not match."""
    match = next(filter(None, (captures.of(alias) for alias in found.aliases.get(k, ()))), None)
    if match is None:
        raise RuntimeError(f"'{captures.pattern}' selects '{found.names[k]}' but matches none of its names")
    return match


def _choose(refs: list[_Ref], hits: frozenset[int], clashes: dict, name: str) -> int | None:
    """The first selector that selects a tensor matched by ``hits``; a second one elsewhere is a clash."""
    found = [r for r, ref in enumerate(refs) if ref.pos <= hits and not (ref.neg & hits)]
    if not found:
        return None
    first = refs[found[0]]
    other = next((refs[r] for r in found if refs[r].place != first.place), None)
    if other is not None:
        clashes.setdefault((first.place, other.place), (name, first, other))
    return found[0]


def _numbers(match) -> tuple[int, ...] | str:
    """What a match captured, as whole numbers; the first capture that is no whole number, as text."""
    if match is None:
        return ()
    out = []
    for text in match[1]:
        if not (text.isascii() and text.isdigit()):
            return text
        out.append(int(text))
    return tuple(out)


def _layers(stmt: LayersStatement, refs: list[_Ref], placement: _Placement, base: Origin):
    """The statement's layers in depth order (as origins), each key's depth, and what cannot be placed."""
    numbered, failed = {}, {}
    for key in placement.samples:
        numbers = _numbers(key[1])
        if isinstance(numbers, str):
            failed.setdefault(key[0], []).append((_not_a_number, key[1][0], numbers))
        else:
            numbered[key] = numbers
    ordered = [sorted({n for key, n in numbered.items() if refs[key[0]].place == (s, False)})
               for s in range(len(stmt.slots))]
    depth_of = {(s, n): None for s, layers in enumerate(ordered) for n in layers}
    depth_of = {place: depth for depth, place in enumerate(depth_of)}
    of_key, members = {}, {}
    for key, numbers in numbered.items():
        ref = refs[key[0]]
        target = _join(ordered[ref.slot], numbers) if ref.joins else numbers
        if target is None:
            if ordered[ref.slot]:
                failed.setdefault(key[0], []).append((_joins_nothing, key[1][0], numbers))
            continue
        of_key[key] = depth_of[(ref.slot, target)]
        members.setdefault(of_key[key], []).append(key[1][0] if key[1] else term_text(ref.term))
    count = len(depth_of) + bool(placement.rest or failed or not depth_of)
    members[len(depth_of)] = list(placement.rest)
    origins = [_origin(stmt, base, d, count - 1, members[d], d == len(depth_of)) for d in range(count)]
    problems = [why(refs[r], cases[0][1], cases[0][2], len(cases) - 1, ordered[refs[r].slot])
                for r, cases in failed.items() for why in [cases[0][0]]]
    return origins, of_key, problems


def _join(layers: list[tuple[int, ...]], numbers: tuple[int, ...]) -> tuple[int, ...] | None:
    """The layer a ``with`` selector's numbers join: the first that starts with them (the last for none)."""
    if not numbers:
        return layers[-1] if layers else None
    k = bisect_left(layers, numbers)
    return layers[k] if k < len(layers) and layers[k][:len(numbers)] == numbers else None


def _origin(stmt: LayersStatement, base: Origin, depth: int, top: int, members: list[str], rest: bool) -> LayerOrigin:
    scale = stmt.scale(depth, top)
    below = stmt.setting("freeze_below")
    shown = list(dict.fromkeys(members))
    if len(shown) > MEMBERS_SHOWN:
        shown = shown[:MEMBERS_SHOWN] + [f"and {len(shown) - MEMBERS_SHOWN} more"]
    return LayerOrigin(base.index, base.kind, f"{base.label} depth {depth} (x{scale:.3g})", base.span,
                       statement=base.label, depth=depth, top=top, scale=scale,
                       frozen=below is not None and scale < below, members=tuple(shown), rest=rest)


def _mark(found: Found, keys: list, ids: dict, rest: int) -> None:
    """Add each tensor's layer id to its atoms (for a tied tensor, to those of each name too)."""
    hits, cache = found.hits, {}
    for k, key in enumerate(keys):
        layer = rest if key is None else ids.get(key, rest)
        pair = (hits[k], layer)
        marked = cache.get(pair)
        if marked is None:
            marked = cache[pair] = pair[0] | {layer}
        hits[k] = marked
    for k, per in found.per_name.items():
        layer = rest if keys[k] is None else ids.get(keys[k], rest)
        found.per_name[k] = [h | {layer} for h in per]


def _clashes(placement: _Placement) -> list[Diagnostic]:
    """E308 for each pair of parts of the statement that select one tensor both."""
    return [Diagnostic("E308", f"'{name}' is selected by '{term_text(first.term)}' ({first.where}) and by "
                       f"'{term_text(other.term)}' ({other.where}), but it can be in one layer only", other.term.span,
                       f"narrow one of them, e.g. '{term_text(first.term)} & !{_positive(other)}', or anchor a "
                       "selector at the root with ^")
            for name, first, other in placement.clashes.values()]


def _positive(ref: _Ref) -> str:
    return next((a.text.lstrip("~") for a in ref.term.atoms if not a.negated), term_text(ref.term))


def _not_a_number(ref: _Ref, path: str, text: str, more: int, layers: list) -> Diagnostic:
    atom = capturing(ref.term)[0]
    also = f" (and {more} more module{'s' if more > 1 else ''})" if more else ""
    return Diagnostic("E307", f"'{atom.text}' matches '{path}'{also}, where a wildcard captured '{text}': layers "
                      "are ordered by whole numbers", atom.span,
                      "narrow the wildcard to digits (blocks.[0-9]*), or leave that module out: blocks.* & !blocks.norm")


def _joins_nothing(ref: _Ref, path: str, numbers: tuple[int, ...], more: int, layers: list) -> Diagnostic:
    also = f" (and {more} more module{'s' if more > 1 else ''})" if more else ""
    slot = f"slot {ref.slot + 1}"
    known = (f"{slot}'s one layer is numbered {_text(layers[0])}" if len(layers) == 1 else
             f"{slot}'s layers are numbered {_text(layers[0])} to {_text(layers[-1])}")
    return Diagnostic("E306", f"'{term_text(ref.term)}' matches '{path}'{also}, numbered {_text(numbers)}, which "
                      f"starts no layer of {slot}", ref.term.span,
                      f"{known}; a with selector joins the first layer whose numbers start with its own")


def _text(numbers: tuple[int, ...]) -> str:
    return ", ".join(map(str, numbers)) if numbers else "(none)"
