"""Matching every selector of a plan in one walk over the module tree.

All selector atoms of a plan run together as one automaton whose state is
carried down the module tree: a module's state is derived from its parent's
state, its own name segment and its class, and each transition is cached.
Model trees repeat themselves (``layers.0`` ... ``layers.95`` hold the same
names and classes), so after the first few layers nearly every step is one
dictionary lookup, and a selector that cannot match below a module costs
nothing there. The walk visits modules and parameters in the order of
``named_parameters(remove_duplicate=False)``; a tensor reachable under several
names (tied or shared parameters) is one entry with aliases, and keeps the atoms
each of its names matches apart (an intersection must hold on one name).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..diagnostics import Diagnostic, did_you_mean, suggest
from ..plan.nodes import Selector, Term
from ..plan.selectors import NamePattern, class_glob, name_pattern, ndim_test
from .wrappers import transparent_attribute


AtomKey = tuple[str, str, bool, bool, bool, bool]


def atom_key(atom: Selector) -> AtomKey:
    """Atoms that test the same thing share one id, whatever their ``!`` and ``~`` flags."""
    return (atom.kind, atom.pattern, atom.anchored, atom.owner, atom.ignore_case, atom.first_name)


class TreeMatcher:
    """The atoms of a plan as one automaton over module names, module classes and tensor ranks.

    A state records only the name atoms that are *in progress*: anchored atoms
    still matching from the root, and unanchored atoms that have moved past
    their resting state (the loop that lets them start at any segment). A
    resting atom can only leave rest on a segment it names, so each step looks
    at the in-progress atoms and at the atoms that the segment triggers, never
    at every atom of the plan.
    """

    def __init__(self, atoms: Iterable[Selector]):
        self.ids: dict[AtomKey, int] = {}
        for atom in atoms:
            self.ids.setdefault(atom_key(atom), len(self.ids))
        keys = self.ids.items()
        self._names = {i: name_pattern(p, a, c) for (k, p, a, _, c, _), i in keys if k == "name"}
        self._classes = [(i, class_glob(p, c)) for (k, p, _, o, c, _), i in keys if k == "class" and not o]
        self._owners = [(i, class_glob(p, c)) for (k, p, _, o, c, _), i in keys if k == "class" and o]
        self._ndims = [(i, ndim_test(p)) for (k, p, *_), i in keys if k == "ndim"]
        self.first_only = frozenset(i for (*_, first), i in keys if first)
        self._rest = {i: p.start for i, p in self._names.items() if not p.anchored}
        self._by_literal: dict[str, list[int]] = {}
        self._any_segment: list[int] = []
        for i, start in self._rest.items():
            literals = self._names[i].triggers(start)
            for lit in literals if literals is not None else ():
                self._by_literal.setdefault(lit, []).append(i)
            if literals is None:
                self._any_segment.append(i)
        self._always = frozenset(i for i, start in self._rest.items() if self._names[i].accepts(start))
        self._states: list[tuple[frozenset[int], frozenset[int], frozenset[int]]] = []
        self._state_ids: dict[tuple, int] = {}
        self._pairs: list[tuple[int, frozenset[int]]] = []
        self._pair_ids: dict[tuple[int, frozenset[int]], int] = {}
        self._children: dict[tuple[int, str | None, type], int] = {}
        self._leaves: dict[tuple[int, str], frozenset[int]] = {}
        self._woken: dict[str, tuple[tuple[int, int], ...]] = {}
        self._step_plans: dict[frozenset[int], tuple[dict, dict, tuple, frozenset[int]]] = {}
        self._waits: dict[int, tuple[frozenset[str] | None, int | None]] = {}
        self._class_hits: dict[type, frozenset[int]] = {}
        self._owner_hits: dict[type, frozenset[int]] = {}
        self._ndim_hits: dict[int, frozenset[int]] = {}

    def root(self, cls: type) -> int:
        """The state of the root module."""
        anchored = frozenset(self._pair(i, p.start) for i, p in self._names.items() if p.anchored)
        return self._intern(anchored, self._class_ids(cls), self._owner_ids(cls))

    def child(self, state: int, segment: str, cls: type) -> int:
        """The state of a child module called ``segment`` of class ``cls``."""
        key = (state, segment, cls)
        found = self._children.get(key)
        if found is None:
            progress, classes, _ = self._states[state]
            found = self._children[key] = self._intern(self._step(progress, segment),
                                                       classes | self._class_ids(cls), self._owner_ids(cls))
        return found

    def enter(self, state: int, cls: type) -> int:
        """The state of a module of class ``cls`` that a wrapper holds: its name adds no segment."""
        key = (state, None, cls)
        found = self._children.get(key)
        if found is None:
            progress, classes, _ = self._states[state]
            found = self._children[key] = self._intern(progress, classes | self._class_ids(cls), self._owner_ids(cls))
        return found

    def leaf(self, state: int, segment: str) -> frozenset[int]:
        """The ids of the name and class atoms that select a parameter called ``segment`` here."""
        key = (state, segment)
        found = self._leaves.get(key)
        if found is None:
            progress, classes, owned = self._states[state]
            _, by_literal, always, accepted = self._plan_step(progress)
            hits = set(accepted)
            for pid in by_literal.get(segment, ()) + always:
                i, s = self._pairs[pid]
                if self._names[i].accepts(self._names[i].advance(s, segment)):
                    hits.add(i)
            hits.update(i for i, pid in self._wake(segment) if self._names[i].accepts(self._pairs[pid][1]))
            found = self._leaves[key] = frozenset(hits) | self._always | classes | owned
        return found

    def ndim(self, rank: int) -> frozenset[int]:
        """The ids of the rank atoms that a tensor of rank ``rank`` satisfies."""
        found = self._ndim_hits.get(rank)
        if found is None:
            found = self._ndim_hits[rank] = frozenset(i for i, test in self._ndims if test(rank))
        return found

    def _step(self, progress: frozenset[int], segment: str) -> frozenset[int]:
        default, by_literal, always, _ = self._plan_step(progress)
        moved = dict(default)
        for pid in by_literal.get(segment, ()) + always:
            i, s = self._pairs[pid]
            after = self._names[i].advance(s, segment)
            if after and after != self._rest.get(i):
                moved[i] = self._pair(i, after)
            else:
                moved.pop(i, None)
        for i, pid in self._wake(segment):
            moved.setdefault(i, pid)
        return frozenset(moved.values())

    def _plan_step(self, progress: frozenset[int]) -> tuple[dict, dict, tuple, frozenset[int]]:
        """For in-progress atoms: where they go on an unrelated segment (and which of those accept
        there), which segments move them otherwise, and those that any segment may move."""
        found = self._step_plans.get(progress)
        if found is None:
            default, by_literal, always = {}, {}, []
            for pid in progress:
                triggers, after = self._waiting(pid)
                if triggers is None:
                    always.append(pid)
                    continue
                for lit in triggers:
                    by_literal[lit] = by_literal.get(lit, ()) + (pid,)
                if after is not None:
                    default[self._pairs[pid][0]] = after
            accepted = frozenset(i for i, after in default.items()
                                 if self._names[i].accepts(self._pairs[after][1]))
            found = self._step_plans[progress] = (default, by_literal, tuple(always), accepted)
        return found

    def _waiting(self, pid: int) -> tuple[frozenset[str] | None, int | None]:
        """The segments an in-progress atom waits for, and its progress after any other segment
        (``None`` when it falls back to rest or dies)."""
        found = self._waits.get(pid)
        if found is None:
            i, s = self._pairs[pid]
            pattern = self._names[i]
            after = pattern.loops(s)
            keep = after and after != self._rest.get(i)
            found = self._waits[pid] = (pattern.triggers(s), self._pair(i, after) if keep else None)
        return found

    def _wake(self, segment: str) -> tuple[tuple[int, int], ...]:
        """The resting atoms that ``segment`` moves, with their new progress."""
        found = self._woken.get(segment)
        if found is None:
            candidates = self._by_literal.get(segment, []) + self._any_segment
            moved = ((i, self._names[i].advance(self._rest[i], segment)) for i in candidates)
            found = self._woken[segment] = tuple((i, self._pair(i, s)) for i, s in moved if s != self._rest[i])
        return found

    def _pair(self, i: int, states: frozenset[int]) -> int:
        """A small id for atom ``i`` being in NFA ``states``."""
        key = (i, states)
        found = self._pair_ids.get(key)
        if found is None:
            found = self._pair_ids[key] = len(self._pairs)
            self._pairs.append(key)
        return found

    def _class_ids(self, cls: type) -> frozenset[int]:
        """The subtree class atoms (``@``) that ``cls`` or a base class matches."""
        found = self._class_hits.get(cls)
        if found is None:
            found = self._class_hits[cls] = _matching(self._classes, cls)
        return found

    def _owner_ids(self, cls: type) -> frozenset[int]:
        """The owner class atoms (``@@``) that ``cls`` or a base class matches."""
        found = self._owner_hits.get(cls)
        if found is None:
            found = self._owner_hits[cls] = _matching(self._owners, cls)
        return found

    def _intern(self, progress: frozenset, classes: frozenset[int], owned: frozenset[int]) -> int:
        key = (progress, classes, owned)
        found = self._state_ids.get(key)
        if found is None:
            found = self._state_ids[key] = len(self._states)
            self._states.append(key)
        return found


def _matching(globs, cls: type) -> frozenset[int]:
    names = class_names(cls)
    return frozenset(i for i, glob in globs if any(glob.matches(n) for n in names))


def class_names(cls: type) -> tuple[str, ...]:
    """The names a class selector is matched against: each class in the MRO, short and qualified."""
    out = []
    for c in cls.__mro__:
        if c is not object:
            out += [c.__name__, f"{c.__module__}.{c.__qualname__}"]
    return tuple(out)


@dataclass
class Found:
    """The parameters of a model in columns: first names, tensors, matching atoms, other names.

    ``per_name`` holds, for tensors with aliases only, the atoms each name matches (first name first).
    """

    names: list[str] = field(default_factory=list)
    tensors: list[Any] = field(default_factory=list)
    hits: list[frozenset[int]] = field(default_factory=list)
    aliases: dict[int, list[str]] = field(default_factory=dict)
    per_name: dict[int, list[frozenset[int]]] = field(default_factory=dict)

    def split(self, k: int) -> frozenset[frozenset[int]] | None:
        """Tensor ``k``'s per-name atom sets where they matter: ``None`` when one name matches all
        the atoms that any name matches, since then testing the union is the same test."""
        per = self.per_name.get(k)
        if per is None or self.hits[k] in per:
            return None
        return frozenset(per)


def walk(model, matcher: TreeMatcher) -> Found:
    """Visit every parameter of ``model`` once per name, in ``named_parameters`` order.

    ``hits`` holds the name and class atoms that select each tensor under any
    of its names (atoms flagged ``/first`` only under its first name), and
    ``per_name`` those of each name of a tied tensor; rank atoms are left to the
    caller (``TreeMatcher.ndim``). A wrapper's segment (``module.`` of
    DistributedDataParallel, ``_orig_mod.`` of torch.compile, see
    :mod:`specopt.resolve.wrappers`) is left out of every name below it.
    """
    found = Found()
    names, tensors, hits, aliases, per_name = found.names, found.tensors, found.hits, found.aliases, found.per_name
    position: dict[int, int] = {}
    leaves, children, child, leaf = matcher._leaves, matcher._children, matcher.child, matcher.leaf
    first_only = matcher.first_only

    def visit(module, prefix: str, state: int) -> None:
        for name, tensor in module._parameters.items():
            if tensor is None:
                continue
            matched = leaves.get((state, name))
            if matched is None:
                matched = leaf(state, name)
            k = position.setdefault(id(tensor), len(names))
            if k == len(names):
                names.append(prefix + name)
                tensors.append(tensor)
                hits.append(matched)
            else:
                aliases.setdefault(k, []).append(prefix + name)
                matched = matched - first_only
                per_name.setdefault(k, [hits[k]]).append(matched)
                hits[k] = hits[k] | matched
        skip = transparent_attribute(type(module))
        for name, sub in module._modules.items():
            if sub is not None:
                cls = type(sub)
                if name == skip:
                    visit(sub, prefix, matcher.enter(state, cls))
                    continue
                after = children.get((state, name, cls))
                visit(sub, prefix + name + ".", child(state, name, cls) if after is None else after)

    visit(model, "", matcher.root(type(model)))
    return found


Names = frozenset  # of frozenset[int]: the atoms each name of a tied tensor matches


def term_selects(pos: frozenset[int], neg: frozenset[int], hits: frozenset[int], names: Names | None = None) -> bool:
    """Whether the term ``pos & !neg`` selects a tensor matched by the atom ids ``hits`` (under any
    name), and by ``names`` (under each name) when it is a tied tensor whose names disagree."""
    if neg & hits:
        return False
    return pos <= hits if names is None else any(pos <= h for h in names)


MAX_SUGGESTION_CANDIDATES = 50_000


def selection_errors(rules, matcher: TreeMatcher, seen, index) -> list[Diagnostic]:
    """E301 for atoms that select nothing, E302 for terms that select nothing though their atoms do.

    ``seen`` holds, for each distinct kind of parameter, the ids of the atoms
    that select it under any name and, for a tied tensor whose names disagree,
    under each name (``cascade.term_selects``). An optional (``~``) atom that
    selects nothing is no error, and neither is the empty term it causes, nor
    an empty term of optional atoms only.
    """
    untied = {h for h, names in seen if names is None}
    tied = [(h, names) for h, names in seen if names is not None]
    hit = frozenset().union(*untied, *(h for h, _ in tied))
    diags = []
    for rule in rules:
        for term, (pos, neg) in zip(rule.statement.selectors, rule.terms):
            dead = [a for a in term.atoms if matcher.ids[atom_key(a)] not in hit]
            diags += [_nothing(a, index) for a in dead if not a.optional]
            if dead:
                continue
            if len(pos) == 1 and not neg:
                continue  # one atom that selects something
            optional = all(a.optional for a in term.atoms)
            if optional or any(pos <= h and not (neg & h) for h in untied):
                continue
            if not any(term_selects(pos, neg, h, names) for h, names in tied):
                apart = any(pos <= h and not (neg & h) for h, _ in tied)
                diags.append(_empty_term(term, apart))
    return diags


def _empty_term(term: Term, apart: bool) -> Diagnostic:
    """E302; ``apart``: the atoms hold together only on different names of a tied tensor."""
    if len(term.atoms) == 1:
        atom = term.atoms[0]
        inner = atom.text.lstrip("!~")
        return Diagnostic("E302", f"'{atom.text}' selects nothing", term.span,
                          f"'{inner}' selects every parameter, so its complement is empty")
    hint = ("they hold together only on different names of a tied tensor, and an intersection must "
            "hold on one of its names" if apart else
            "each selects something on its own, but no parameter satisfies all of them")
    return Diagnostic("E302", "these selectors select nothing together", term.span, hint)


def _form_hint(atom: Selector, index) -> str | None:
    """Why a ``/first``, ``@@`` or ``^.../i`` atom selects nothing when a looser atom would select."""
    names = "first" if atom.first_name else "all"
    if atom.first_name:
        found = _first_selected(atom, index, "aliases")
        if found:
            alias, first = found
            return (f"'{alias}' matches, but it is an alias of the tied tensor '{first}' and '/first' "
                    "looks at first names only: drop '/first' to select it")
    if atom.kind == "class" and atom.owner:
        found = _first_selected(atom.model_copy(update={"owner": False}), index, names)
        if found:
            return (f"no module matching '{atom.pattern}' holds a parameter itself; "
                    f"'@{atom.pattern}' selects those of its submodules, such as '{found[0]}'")
    if atom.kind == "name" and atom.anchored and atom.ignore_case:  # the suggestions heed case here
        if _first_selected(atom.model_copy(update={"anchored": False}), index, names):
            return f"'{atom.pattern}' matches below the root: drop the '^', or spell the path from the root"
    return None


def _first_selected(atom: Selector, index, names: str) -> tuple[str, str] | None:
    """The first of a tensor's ``names`` ("all", "first" or "aliases") that a name or class atom
    matches, with the tensor's first name; ``None`` when there is none."""
    if atom.kind == "name":
        test = name_pattern(atom.pattern, atom.anchored, atom.ignore_case).matches
    else:
        glob, classes = class_glob(atom.pattern, atom.ignore_case), index.module_classes

        def test(name: str) -> bool:
            return any(glob.matches(c) for path in _modules_of(name, atom.owner) for c in classes.get(path, ()))
    for p in index.params:
        for name in {"all": p.names, "first": (p.name,), "aliases": p.aliases}[names]:
            if test(name):
                return name, p.name
    return None


def _modules_of(name: str, owner: bool) -> list[str]:
    """The paths of the module owning parameter ``name`` (``owner``) or of every module above it."""
    path = name.rpartition(".")[0]
    if owner:
        return [path]
    parts = path.split(".") if path else []
    return [".".join(parts[:i]) for i in range(len(parts) + 1)]


def _nothing(atom: Selector, index) -> Diagnostic:
    inner = atom.text.lstrip("!~")
    subject = f"selector '{inner}'" + (f" (in '{atom.text}')" if inner != atom.text else "")
    message = f"{subject} selects nothing (prefix it with ~ if that is intended)"
    return Diagnostic("E301", message, atom.span, _form_hint(atom, index) or _nothing_hint(atom, index))


def _nothing_hint(atom: Selector, index) -> str | None:
    if atom.kind == "ndim":
        ranks = sorted({t.dim() for t in _plain_walk(index).tensors})
        return "parameter ranks in this model: " + ", ".join(map(str, ranks))
    if atom.kind == "class":
        names = {n for cls in {type(m) for m in index.model.modules()} for n in class_names(cls) if "." not in n}
        return did_you_mean(atom.pattern, names) or "module classes here: " + ", ".join(sorted(names)[:12])
    if atom.anchored and _matches_below_root(atom, index):
        return f"'{atom.pattern}' matches below the root: drop the '^', or spell the path from the root"
    close = suggest(atom.pattern, _windows(index, atom), limit=5)
    return ("closest real names: " + ", ".join(close)) if close else None


_WALKS: "weakref.WeakKeyDictionary[Any, Found]" = weakref.WeakKeyDictionary()


def _plain_walk(index) -> Found:
    """Every parameter's names and tensor, from one walk per model index shared by all the hints."""
    found = _WALKS.get(index)
    if found is None:
        found = _WALKS[index] = walk(index.model, TreeMatcher(()))
    return found


def _names(index) -> Iterator[str]:
    """Every name of every parameter: the first name of each, then its other names."""
    found = _plain_walk(index)
    for k, name in enumerate(found.names):
        yield name
        yield from found.aliases.get(k, ())


def _matches_below_root(atom: Selector, index) -> bool:
    pattern = NamePattern(atom.pattern, anchored=False)
    return any(pattern.matches(name) for name in _names(index))


def _windows(index, atom: Selector) -> set[str]:
    """Real names to compare a failed name selector with: runs of as many segments as it has."""
    width = atom.pattern.count(".") + 1
    out: set[str] = set()
    for name in _names(index):
        parts = name.split(".")
        if atom.anchored or len(parts) == 1:
            out.add(".".join(parts[:width]))
        elif width == 1:
            out.update(parts)
        else:
            out.update([".".join(parts[s:s + width]) for s in range(len(parts))])
        if len(out) > MAX_SUGGESTION_CANDIDATES:
            return out
    return out
