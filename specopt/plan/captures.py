"""What the wildcards of a name selector capture, so that the modules it matches can be put in order.

A ``layers`` slot such as ``blocks.*`` or ``layers.*.blocks.*`` stands for one
layer per module it matches, ordered by the numbers its wildcards capture.
Within a segment, a *run* of wildcards next to each other (``*``, ``?``,
``[0-9]``, ``[0-9]*``) captures the characters it matched; a segment holds at
most one run, so what the run captured is the segment less the literal
characters before and after it, and no search is needed. ``**`` matches any
number of segments, so it captures nothing that has an order:
:func:`capture_problems` rejects it, and patterns with two runs in a segment.

:class:`Captures` finds, for a parameter name, the *outermost* module (or the
parameter itself) that the pattern matches, as a selector matches: anchored at
the root with ``^``, else at any segment. Results are cached per module path,
and a path's result comes from its parent's, so the modules of a model are
looked at once each, however many parameters they hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from .selectors import STAR2, segment_alternatives, tokens_match

Match = tuple[str, tuple[str, ...]]  # the module path matched, and what each run captured there


def _is_wild(token) -> bool:
    return token in ("*", "?") if isinstance(token, str) else True


def _runs(tokens) -> int:
    """How many runs of wildcards the tokens of one alternative hold."""
    runs, inside = 0, False
    for token in tokens:
        wild = _is_wild(token)
        runs += wild and not inside
        inside = wild
    return runs


def capture_problems(pattern: str) -> list[str]:
    """Why the wildcards of a name pattern cannot give the modules it matches an order (empty: they can).

    The pattern must be well formed (see :func:`specopt.plan.selectors.selector_problems`).
    """
    problems = []
    for seg in pattern.split("."):
        if seg == STAR2:
            problems.append("'**' matches any number of segments, so what it matches has no order")
            continue
        runs = {_runs(tokens) for tokens in segment_alternatives(seg)}
        if max(runs) > 1:
            problems.append(f"segment '{seg}' holds wildcards apart from each other, so what each "
                            "captured is ambiguous")
        elif len(runs) > 1:
            problems.append(f"some alternatives of '{seg}' hold a wildcard and some do not")
    return problems


def capture_count(pattern: str) -> int:
    """How many numbers a pattern without :func:`capture_problems` captures: one per segment with wildcards."""
    return sum(1 for seg in pattern.split(".") if any(_runs(t) for t in segment_alternatives(seg)))


@dataclass(frozen=True)
class _Alternative:
    """One alternative of a segment: its tokens and how many literal characters come before and after
    its run (``before`` is -1 when it has none)."""

    tokens: tuple
    before: int
    after: int


def _alternative(tokens: tuple) -> _Alternative:
    wild = [k for k, token in enumerate(tokens) if _is_wild(token)]
    if not wild:
        return _Alternative(tokens, -1, 0)
    return _Alternative(tokens, wild[0], len(tokens) - wild[-1] - 1)


class Captures:
    """A name pattern without ``**``, read for the module each parameter lies in and what its runs captured."""

    def __init__(self, pattern: str, anchored: bool, ignore_case: bool = False):
        self.pattern = pattern
        self.anchored = anchored
        self.fold = ignore_case
        segments = pattern.lower().split(".") if ignore_case else pattern.split(".")
        self._segments = tuple(tuple(_alternative(t) for t in segment_alternatives(seg)) for seg in segments)
        self._paths: dict[str, Match | None] = {"": None}

    def of(self, name: str) -> Match | None:
        """The outermost module path (or ``name`` itself) that the pattern matches, with its captures;
        ``None`` when the pattern does not select the parameter ``name``."""
        owner = name.rpartition(".")[0]
        found = self._paths[owner] if owner in self._paths else self._module(owner)
        return found if found is not None else self._here(name)

    def _module(self, path: str) -> Match | None:
        parent = path.rpartition(".")[0]
        found = self._paths[parent] if parent in self._paths else self._module(parent)
        if found is None:
            found = self._here(path)
        self._paths[path] = found
        return found

    def _here(self, path: str) -> Match | None:
        """The captures when the pattern ends exactly at the end of ``path``."""
        segments = path.split(".")
        size = len(self._segments)
        if len(segments) < size or (self.anchored and len(segments) != size):
            return None
        captured = []
        for segment, alternatives in zip(segments[-size:], self._segments):
            text = segment.lower() if self.fold else segment
            alt = next((a for a in alternatives if tokens_match(a.tokens, text)), None)
            if alt is None:
                return None
            if alt.before >= 0:
                captured.append(segment[alt.before:len(segment) - alt.after])
        return path, tuple(captured)
