"""Selector matching: globs over dot-separated names, without regular expressions.

A name pattern is a sequence of segments separated by dots. Inside a segment,
``*`` matches any run of characters, ``?`` one character, ``[abc]`` / ``[!abc]``
/ ``[a-z]`` one character of a set, and ``{a,b}`` one of several alternatives.
A segment that is exactly ``**`` matches any number of whole segments.
A selector may end in flags after one ``/`` (``/i``, ``/first``, ``/i,first``),
which :func:`read_flags` reads; ``/i`` compares lower-cased pattern and names.

Matching is a small NFA over segments, and each segment test is a two-pointer
wildcard match, so time stays polynomial (O(pattern x name)) for any pattern;
no pattern can trigger backtracking blow-up. Segment results are cached, since
the same segment strings (``weight``, ``0``, ``layers``) repeat across a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..diagnostics import did_you_mean

STAR2 = "**"
_MAX_ALTERNATIVES = 64
MAX_BRACE_DEPTH = 8
_NDIM = re.compile(r"(<=|>=|==|!=|<|>)([0-9]{1,6})")
_UNWRITABLE = re.compile(r"""[\s;#=&()"'<>:]""")  # what ends a selector in spec text (grammar: SELECTOR)
FLAGS = {"i": "ignore case", "first": "a tied tensor's first name only"}


@dataclass(frozen=True)
class _Class:
    """A bracket expression: one character from a set (or outside it, when negated)."""

    items: tuple[tuple[str, str], ...]
    negated: bool

    def matches(self, ch: str) -> bool:
        inside = any(lo <= ch <= hi for lo, hi in self.items)
        return inside != self.negated


Token = str | _Class  # a literal character, "*", "?" or a bracket class


def selector_problems(kind: str, pattern: str) -> list[tuple[str, str | None]]:
    """Return ``(problem, hint)`` pairs for a selector pattern that cannot be matched."""
    if kind == "ndim":
        # Spec text always has this form; a plan read from data may not.
        return [] if _NDIM.fullmatch(pattern) else [
            ("a rank test is <, <=, >, >=, == or != and a whole number of at most 6 digits", "e.g. ndim<2")]
    if not pattern:
        return [("empty pattern", None)]
    unwritable = _UNWRITABLE.search(pattern)
    if unwritable:  # only a plan read from data can hold one
        return [(f"{unwritable.group()!r} cannot be part of a pattern", "spec text ends a selector there")]
    segments = pattern.split(".") if kind == "name" else [pattern]
    problems = []
    for seg in segments:
        problems += _segment_problems(seg, kind)
    return problems


FlagProblem = tuple[str, str | None, int, int]  # problem, hint, start and end in the flag text


def read_flags(written: str) -> tuple[frozenset[str], FlagProblem | None]:
    """The flags written after a selector's ``/``: names from :data:`FLAGS`, separated by commas,
    in any order, each at most once. Returns them with the first problem found, if any."""
    if "/" in written:
        at = written.index("/")
        return frozenset(), ("one '/' per selector", "combine flags with a comma: /i,first", at, at + 1)
    known = "flags: " + ", ".join(f"/{f} ({why})" for f, why in FLAGS.items())
    if not written:
        return frozenset(), ("'/' without a flag", known, -1, 0)
    seen: set[str] = set()
    start = 0
    for item in written.split(","):
        end = start + len(item)
        if not item:
            return frozenset(), ("empty flag", known, *((start - 1, start) if start else (0, 1)))
        if item not in FLAGS:
            hint = did_you_mean(item, FLAGS) or known
            return frozenset(), (f"unknown flag '{item}'", hint, start, end)
        if item in seen:
            return frozenset(), (f"flag '{item}' given twice", None, start, end)
        seen.add(item)
        start = end + 1
    return frozenset(seen), None


def _segment_problems(seg: str, kind: str) -> list[tuple[str, str | None]]:
    if seg == "":
        return [("empty segment (two dots in a row, or a leading or trailing dot)", None)]
    if "**" in seg and seg != STAR2:
        return [("'**' must be a whole segment", "write a.**.b, or use '*' inside a segment")]
    if seg == STAR2:
        return [] if kind == "name" else [("'**' is not allowed in a class selector", "use '*'")]
    try:
        alternatives = _expand_braces(seg)
    except ValueError as exc:
        return [(str(exc), None)]
    for alt in alternatives:
        if "," in alt:
            return [("',' outside braces", "separate selectors with spaces, or write {a,b}")]
        try:
            _tokens(alt)
        except ValueError as exc:
            return [(str(exc), None)]
    return []


def _expand_braces(seg: str) -> list[str]:
    """Expand ``{a,b}`` alternatives (nestable) into plain globs, in order.

    Raises ``ValueError`` for unbalanced braces, braces nested more than
    :data:`MAX_BRACE_DEPTH` deep or more than :data:`_MAX_ALTERNATIVES`
    alternatives. The segment is read once; the work is linear in its length
    times the (bounded) number of alternatives, however many groups it has.
    """
    _check_braces(seg)
    parts, _ = _brace_sequence(seg, 0, top=True)
    if _count(parts) > _MAX_ALTERNATIVES:
        raise ValueError(f"more than {_MAX_ALTERNATIVES} brace alternatives")
    return _expand_sequence(parts)


def _check_braces(seg: str) -> None:
    depth, deepest, stray = 0, 0, False
    for ch in seg:
        if ch == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "}":
            stray = stray or depth == 0
            depth = max(0, depth - 1)
    if depth > 0:
        raise ValueError("'{' without '}'")
    if stray:
        raise ValueError("'}' without '{'")
    if deepest > MAX_BRACE_DEPTH:
        raise ValueError(f"braces nested more than {MAX_BRACE_DEPTH} deep")


_Parts = list  # of str (literal text) and of groups: lists of alternatives, each a _Parts


def _brace_sequence(seg: str, i: int, top: bool = False) -> tuple[_Parts, int]:
    """The parts from ``i`` up to the ``,`` or ``}`` that ends an alternative (the end, at the top)."""
    parts: _Parts = []
    start = i
    while i < len(seg) and (top or seg[i] not in ",}"):
        if seg[i] == "{":
            parts.append(seg[start:i])
            group, i = _brace_group(seg, i + 1)
            parts.append(group)
            start = i
        else:
            i += 1
    parts.append(seg[start:i])
    return parts, i


def _brace_group(seg: str, i: int) -> tuple[list[_Parts], int]:
    """The alternatives of the group whose ``{`` is just before ``i``, and the index after its ``}``."""
    alternatives = []
    while True:
        parts, i = _brace_sequence(seg, i)
        alternatives.append(parts)
        if seg[i] == "}":
            return alternatives, i + 1
        i += 1  # past the ','


def _count(parts: _Parts) -> int:
    """How many globs ``parts`` expands to, capped just above the limit."""
    n = 1
    for part in parts:
        if not isinstance(part, str):
            n = min(n * sum(_count(alt) for alt in part), _MAX_ALTERNATIVES + 1)
    return n


def _expand_sequence(parts: _Parts) -> list[str]:
    out, run = [""], []
    for part in parts:
        choices = [part] if isinstance(part, str) else [g for alt in part for g in _expand_sequence(alt)]
        if len(choices) == 1:
            run.append(choices[0])
            continue
        literal, run = "".join(run), []
        out = [o + literal + c for o in out for c in choices]
    literal = "".join(run)
    return [o + literal for o in out]


def _tokens(glob: str) -> tuple[Token, ...]:
    """Tokenise one brace-free glob segment; raises ``ValueError`` on an unclosed ``[``."""
    out: list[Token] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if ch == "[":
            cls, i = _bracket(glob, i)
            out.append(cls)
            continue
        if ch == "]":
            raise ValueError("']' without '['")
        if not (ch == "*" and out and out[-1] == "*"):
            out.append(ch)
        i += 1
    return tuple(out)


def _bracket(glob: str, i: int) -> tuple[_Class, int]:
    close = glob.find("]", i + 2)
    if close < 0:
        raise ValueError("'[' without ']'")
    body = glob[i + 1:close]
    negated = body.startswith("!") or body.startswith("^")
    body = body[1:] if negated else body
    items, j = [], 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            items.append((body[j], body[j + 2]))
            j += 3
        else:
            items.append((body[j], body[j]))
            j += 1
    return _Class(tuple(items), negated), close + 1


def _match_tokens(tokens: tuple[Token, ...], text: str) -> bool:
    """Wildcard match with single-star backtracking: O(len(tokens) * len(text)) at worst."""
    t = s = 0
    star_t, star_s = -1, 0
    while s < len(text):
        tok = tokens[t] if t < len(tokens) else None
        if tok == "*":
            star_t, star_s = t, s
            t += 1
        elif tok is not None and (tok == "?" or tok == text[s]
                                  or (isinstance(tok, _Class) and tok.matches(text[s]))):
            t += 1
            s += 1
        elif star_t >= 0:
            t, star_s = star_t + 1, star_s + 1
            s = star_s
        else:
            return False
    return all(tok == "*" for tok in tokens[t:])


def segment_alternatives(glob: str) -> tuple[tuple[Token, ...], ...]:
    """The brace-free alternatives of one well-formed segment glob, each as its tokens: a character,
    ``*``, ``?`` or a bracket class."""
    return tuple(_tokens(alt) for alt in _expand_braces(glob))


def tokens_match(tokens: tuple[Token, ...], text: str) -> bool:
    """Whether one alternative's tokens (see :func:`segment_alternatives`) match the whole of ``text``."""
    return _match_tokens(tokens, text)


class SegmentGlob:
    """One segment pattern (braces expanded), matched against one name segment."""

    def __init__(self, glob: str):
        self.glob = glob
        self._alternatives = tuple(_tokens(alt) for alt in _expand_braces(glob))
        plain = all(isinstance(t, str) and t not in "*?" for alt in self._alternatives for t in alt)
        self.literals: frozenset[str] | None = (
            frozenset("".join(alt) for alt in self._alternatives) if plain else None)

    def matches(self, segment: str) -> bool:
        """Whether this glob matches the whole segment."""
        if self.literals is not None:
            return segment in self.literals
        return any(_match_tokens(alt, segment) for alt in self._alternatives)


class FoldedGlob(SegmentGlob):
    """A segment glob that ignores case: the glob and each segment are lower-cased first."""

    def __init__(self, glob: str):
        super().__init__(glob.lower())
        self.glob = glob
        self.literals = None  # a lookup by literal segment would miss the other spellings

    def matches(self, segment: str) -> bool:
        """Whether this glob matches the whole segment, ignoring case."""
        return super().matches(segment.lower())


class NamePattern:
    """A compiled name selector: an NFA over segments, with ``**`` as a loop."""

    def __init__(self, pattern: str, anchored: bool, ignore_case: bool = False):
        parts = pattern.split(".")
        glob = FoldedGlob if ignore_case else SegmentGlob
        elems: list[str | SegmentGlob] = [STAR2 if p == STAR2 else glob(p) for p in parts]
        if not anchored:
            elems.insert(0, STAR2)
        elems.append(STAR2)  # a module selects its whole subtree
        self.pattern = pattern
        self.anchored = anchored
        self.ignore_case = ignore_case
        self._elems = tuple(elems)
        self.start = self._closure(frozenset({0}))

    def _closure(self, states: frozenset[int]) -> frozenset[int]:
        out = set(states)
        for i in sorted(states):
            j = i
            while j < len(self._elems) and self._elems[j] == STAR2:
                j += 1
                out.add(j)
        return frozenset(out)

    def advance(self, states: frozenset[int], segment: str) -> frozenset[int]:
        """The NFA states after reading one more segment (empty when no match is possible)."""
        return _advance(self, states, segment)

    def triggers(self, states: frozenset[int]) -> frozenset[str] | None:
        """The segments that can move the NFA beyond its ``**`` loops from ``states``.

        ``None`` when a wildcard segment is waiting, since then any segment might.
        """
        out: set[str] = set()
        for i in states:
            elem = self._elems[i] if i < len(self._elems) else STAR2
            if elem != STAR2:
                if elem.literals is None:
                    return None
                out |= elem.literals
        return frozenset(out)

    def loops(self, states: frozenset[int]) -> frozenset[int]:
        """The states after a segment that matches nothing but the ``**`` loops."""
        kept = frozenset(i for i in states if i < len(self._elems) and self._elems[i] == STAR2)
        return self._closure(kept) if kept else kept

    def accepts(self, states: frozenset[int]) -> bool:
        """Whether the states reached so far mean a match."""
        return len(self._elems) in states

    def matches_any(self, names_per_param) -> bool:
        """Whether this selector selects any parameter, given each parameter's names."""
        return any(self.matches(n) for names in names_per_param for n in names)

    def matches(self, name: str) -> bool:
        """Whether this selector selects the parameter (or module) called ``name``."""
        states = self.start
        for seg in name.split("."):
            states = self.advance(states, seg)
            if not states:
                return False
        return self.accepts(states)


@lru_cache(maxsize=4096)
def name_pattern(pattern: str, anchored: bool, ignore_case: bool = False) -> NamePattern:
    """The compiled name selector, shared by every resolution that uses it."""
    return NamePattern(pattern, anchored, ignore_case)


@lru_cache(maxsize=1 << 16)
def _advance(pat: NamePattern, states: frozenset[int], segment: str) -> frozenset[int]:
    nxt = set()
    for i in states:
        if i == len(pat._elems):
            continue
        elem = pat._elems[i]
        if elem == STAR2:
            nxt.add(i)
        elif _segment_matches(elem, segment):
            nxt.add(i + 1)
    return pat._closure(frozenset(nxt)) if nxt else frozenset()


@lru_cache(maxsize=1 << 16)
def _segment_matches(glob: SegmentGlob, segment: str) -> bool:
    return glob.matches(segment)


def class_glob(pattern: str, ignore_case: bool = False) -> SegmentGlob:
    """Compile a module-class pattern (``@*Norm*``); dots are literal characters here."""
    return FoldedGlob(pattern) if ignore_case else SegmentGlob(pattern)


def ndim_test(pattern: str):
    """Return a predicate on tensor rank for an ``ndim`` selector body such as ``<2`` or ``==1``."""
    op = pattern.rstrip("0123456789")
    n = int(pattern[len(op):])
    return {"<": lambda d: d < n, "<=": lambda d: d <= n, ">": lambda d: d > n,
            ">=": lambda d: d >= n, "==": lambda d: d == n, "!=": lambda d: d != n}[op]
