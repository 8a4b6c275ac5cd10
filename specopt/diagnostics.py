"""Diagnostics: one positioned message type shared by every stage, and its rendering.

Every stage reports problems as :class:`Diagnostic` values that carry a source
span as character offsets. Line and column are computed only when a diagnostic
is rendered against its :class:`Source`, so plan nodes stay cheap to build and
independent of the text layout.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

MAX_REPORTED = 50


class Span(BaseModel):
    """A half-open range ``[start, end)`` of character offsets into a source text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: int
    end: int


@dataclass(frozen=True)
class Source:
    """A spec text, the name it is reported under (a path or ``<string>``) and its format.

    ``format`` is ``"spec"`` for the spec language, ``"json"`` or ``"yaml"`` for a plan written as data.
    """

    text: str
    name: str = "<string>"
    format: str = "spec"

    @cached_property
    def _line_starts(self) -> list[int]:
        """The offset where each line starts, found once: positioning many statements stays linear."""
        return [0] + [m.end() for m in re.finditer("\n", self.text)]

    def line_col(self, offset: int) -> tuple[int, int]:
        """Return the 1-based line and column of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def line_text(self, line: int) -> str:
        """Return the text of a 1-based line, without its newline."""
        starts = self._line_starts
        if not 0 < line <= len(starts):
            return ""
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[starts[line - 1]:end]


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec: a stable code, a message, where, and how to fix it."""

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"
    path: tuple[str | int, ...] = field(default=())

    def render(self, source: Source | None) -> str:
        """Render as ``file:line:col: severity: message [code]`` with the source line and a caret."""
        name = source.name if source else "<spec>"
        if self.path:
            name += ":" + ".".join(str(part) for part in self.path)
        if source is None or self.span is None:
            lines = [f"{name}: {self.severity}: {self.message} [{self.code}]"]
        else:
            line, col = source.line_col(self.span.start)
            text = _shown(source.line_text(line))
            width = _caret_width(source, self.span, line, col, text)
            lines = [
                f"{name}:{line}:{col}: {self.severity}: {self.message} [{self.code}]",
                f"  {line:>4} | {text}",
                f"  {'':>4} | {' ' * (col - 1)}{'^' * width}",
            ]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def to_json(self, source: Source | None) -> dict:
        """Return the diagnostic as a JSON-ready dict with 1-based line and column numbers."""
        out: dict = {"code": self.code, "severity": self.severity, "message": self.message,
                     "hint": self.hint, "file": source.name if source else None,
                     "line": None, "column": None, "end_line": None, "end_column": None}
        if self.path:
            out["path"] = list(self.path)
        if source is not None and self.span is not None:
            out["line"], out["column"] = source.line_col(self.span.start)
            out["end_line"], out["end_column"] = source.line_col(self.span.end)
        return out


def _shown(text: str) -> str:
    """A source line as it is printed: a character that would not show (NUL, a zero-width space) is
    replaced by a visible one, so that the line stays one character per column."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == "\t" else _PICTURES.get(ch, "\ufffd") for ch in text)


_PICTURES = {chr(c): chr(0x2400 + c) for c in range(0x20)} | {"\x7f": "\u2421"}


def _caret_width(source: Source, span: Span, line: int, col: int, text: str) -> int:
    end_line, end_col = source.line_col(span.end)
    end = end_col if end_line == line else len(text) + 1
    return max(1, min(end, len(text) + 1) - col)


class SpecError(Exception):
    """Raised when a spec has errors; carries every diagnostic found, with their source.

    ``statements`` holds the statements that could still be read from a spec
    with errors, so that checks needing a model (a selector that selects
    nothing) can still be run and reported together with the rest.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic], source: Source | None = None,
                 statements: tuple = ()):
        self.diagnostics = tuple(sorted(diagnostics, key=_order))
        self.source = source
        self.statements = tuple(statements)
        super().__init__(self.render())

    def render(self) -> str:
        """Render all diagnostics, capped at :data:`MAX_REPORTED` with a count of the rest."""
        return render_all(self.diagnostics, self.source)


def render_all(diagnostics: Sequence[Diagnostic], source: Source | None) -> str:
    """Render diagnostics in source order, capped at :data:`MAX_REPORTED` with a count of the rest."""
    ordered = sorted(diagnostics, key=_order)
    shown = [d.render(source) for d in ordered[:MAX_REPORTED]]
    if len(ordered) > MAX_REPORTED:
        shown.append(f"... and {len(ordered) - MAX_REPORTED} more")
    return "\n".join(shown)


def render_json(diagnostics: Sequence[Diagnostic], source: Source | None) -> str:
    """Render diagnostics as a JSON array, for editors and CI annotations."""
    return json.dumps([d.to_json(source) for d in sorted(diagnostics, key=_order)], indent=2)


def _order(d: Diagnostic) -> tuple[int, str]:
    return (d.span.start if d.span else -1, d.code)


def edit_distance(a: str, b: str) -> int:
    """Return the Damerau-Levenshtein (optimal string alignment) distance between two strings."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggest(word: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Return up to ``limit`` candidates close to ``word``, closest first.

    A word with glob wildcards is compared by its literal part against the
    closest run of characters in each candidate, so ``@*Nrom*`` finds ``LayerNorm``.
    When nothing is that close, candidates that contain the word are offered,
    shortest first, so ``conv`` finds ``convolution1_1``.

    The result is that of computing :func:`edit_distance` to every candidate
    (every run of characters, for a glob) and keeping those within a third of
    the word's length, ordered by distance, length and name; but the strings are
    walked in sorted order as a trie, sharing the work of common prefixes, and a
    prefix is abandoned as soon as no string below it can be within that budget
    or beat the ``limit`` closest found so far (see :class:`_Nearest`).
    """
    core = "".join(ch for ch in word if ch not in "*?[]{}^~!@").lower()
    fuzzy = core != word.lower()
    budget = max(1, len(core) // 3)
    pairs = _lowered(set(candidates))
    best = (_fuzzy_distances if fuzzy else _plain_distances)(core, pairs, budget, limit)
    scored = sorted((dist, len(cand), cand) for cand, dist in best.items())
    if not scored and len(core) >= 3:
        scored = sorted((len(c), 0, c) for lowered, c in pairs if core in lowered)
    return [c for *_, c in scored[:limit]]


def _lowered(unique: set[str]) -> list[tuple[str, str]]:
    """Each candidate in lower case, with the candidate."""
    names = list(unique)
    joined = "\x00".join(names)
    if joined.count("\x00") != max(0, len(names) - 1):  # a name holds the separator: one at a time
        return [(name.lower(), name) for name in names]
    return list(zip(joined.lower().split("\x00"), names)) if names else []


def _plain_distances(core: str, pairs: list[tuple[str, str]], budget: int, limit: int) -> dict[str, int]:
    """The distances that matter from ``core`` to whole candidates (compared in lower case)."""
    lo, hi = len(core) - budget, len(core) + budget
    owners: dict[str, list[str]] = {}
    for lowered, cand in [(lowered, c) for lowered, c in pairs if lo <= len(lowered) <= hi]:
        owners.setdefault(lowered, []).append(cand)
    nearest = _Nearest(core, budget, limit)
    nearest.search(owners, owners.__getitem__)
    return nearest.best


def _fuzzy_distances(core: str, pairs: list[tuple[str, str]], budget: int, limit: int) -> dict[str, int]:
    """The distances that matter from ``core`` to the closest run of ``len(core)`` characters of each
    candidate, or to the whole candidate when it is no longer than ``core``."""
    n = len(core)
    if n == 0:
        return {cand: 0 for _, cand in pairs}
    owners: dict[str, list[str]] = {}
    for lowered, cand in pairs:
        if len(lowered) > n:
            for i in range(len(lowered) - n + 1):
                owners.setdefault(lowered[i:i + n], []).append(cand)
        elif n - len(lowered) <= budget:
            owners.setdefault(lowered, []).append(cand)
    nearest = _Nearest(core, budget, limit)
    nearest.search(owners, owners.__getitem__)
    return nearest.best


_FAR = 1 << 30  # stands for any distance beyond the cutoff


class _Nearest:
    """Edit distances from ``core`` to sorted strings, walked as a trie; keeps what can rank in the top ``limit``.

    Rows of the (optimal string alignment) table are shared by strings with a
    common prefix. The cutoff starts at ``budget`` and falls to the distance of
    the ``limit``-th closest candidate found so far: no candidate further away
    can make the list. Strings are walked one length at a time, and a cell can
    lead to a distance within the cutoff only if its value plus the edits the
    rest needs at least (the difference of the lengths left) is within it; only
    those cells are computed, and a prefix none of whose cells qualify is
    skipped with every string below it. Every candidate at most as far as the
    final ``limit``-th closest gets its exact distance.
    """

    def __init__(self, core: str, budget: int, limit: int):
        self.core, self.budget, self.limit = core, budget, max(1, limit)
        self.cutoff = budget
        self.best: dict[str, int] = {}
        self.counts = [0] * (budget + 1)
        self.length = len(core)  # of the strings being walked

    def search(self, strings: Iterable[str], owners) -> None:
        """Score ``strings``, one length at a time, nearest to the word's length first; within a length,
        first those next to ``core`` in sorted order, which often share a long prefix with it and so
        lower the cutoff early, then all of them."""
        by_length: dict[int, list[str]] = {}
        for s in strings:
            by_length.setdefault(len(s), []).append(s)
        for length in sorted(by_length, key=lambda n: (abs(n - len(self.core)), n)):
            if abs(length - len(self.core)) > self.cutoff:
                continue
            group = sorted(by_length[length])
            self.length = length
            at = bisect.bisect_left(group, self.core)
            self.walk(group[max(0, at - 2 * self.limit):at + 2 * self.limit], owners)
            self.walk(group, owners)

    def walk(self, strings: list[str], owners) -> None:
        """Score every string of the sorted ``strings``; ``owners(s)`` names the candidates ``s`` stands for."""
        rows, bounds = [], []
        self._push(rows, bounds, "")
        prev, k = "", 0
        while k < len(strings):
            s = strings[k]
            depth = _common_prefix(prev, s, len(rows) - 1) + 1
            del rows[depth:], bounds[depth:]
            while len(rows) <= len(s) and bounds[-1] <= self.cutoff:
                self._push(rows, bounds, s)
            if bounds[-1] > self.cutoff:
                prev = s[:len(rows) - 1]
                k = bisect.bisect_right(strings, prev, lo=k + 1, key=lambda t, n=len(prev): t[:n])
                continue
            prev, k = s, k + 1
            if rows[-1][-1] <= self.cutoff:
                self._record(owners(s), rows[-1][-1])

    def _push(self, rows: list[list[int]], bounds: list[int], s: str) -> None:
        """Add the table row for ``s[:i]``, ``i = len(rows)``, and the least distance it can lead to."""
        i, n = len(rows), len(self.core)
        lo, hi = self._span(i)
        row = [_FAR] * (n + 1)
        if i == 0:
            row[lo:hi + 1] = range(lo, hi + 1)
        else:
            if lo == 0:
                row[0] = i
            self._fill(row, rows, s, max(1, lo), hi)
        rows.append(row)
        bounds.append(min((row[j] + self._gap(i, j) for j in range(lo, hi + 1)), default=_FAR))

    def _gap(self, i: int, j: int) -> int:
        """The fewest edits still needed after cell (i, j): the difference of the lengths left."""
        return abs((self.length - i) - (len(self.core) - j))

    def _span(self, i: int) -> tuple[int, int]:
        """The columns of row ``i`` that can lead to a distance within the cutoff (an interval: the sum
        of ``|i - j|``, which no cell beats, and the gap is convex in ``j``)."""
        c = self.cutoff
        lo, hi = max(0, i - c), min(len(self.core), i + c)
        while lo <= hi and abs(i - lo) + self._gap(i, lo) > c:
            lo += 1
        while hi >= lo and abs(i - hi) + self._gap(i, hi) > c:
            hi -= 1
        return lo, hi

    def _fill(self, row: list[int], rows: list[list[int]], s: str, lo: int, hi: int) -> None:
        """Compute the cells ``lo..hi`` of the row for ``s[:len(rows)]``."""
        core, i = self.core, len(rows)
        up, ch = rows[-1], s[i - 1]
        back, prior = (rows[-2], s[i - 2]) if i >= 2 else (None, "")
        left = row[lo - 1]
        for j in range(lo, hi + 1):
            cj = core[j - 1]
            v = up[j - 1] + (cj != ch)
            if up[j] + 1 < v:
                v = up[j] + 1
            if left + 1 < v:
                v = left + 1
            if back is not None and j > 1 and ch == core[j - 2] and prior == cj and back[j - 2] + 1 < v:
                v = back[j - 2] + 1
            row[j] = left = v

    def _record(self, cands: list[str], dist: int) -> None:
        """Note ``dist`` for each of ``cands``, then lower the cutoff to the ``limit``-th closest so far."""
        for cand in cands:
            old = self.best.get(cand)
            if old is None or dist < old:
                if old is not None:
                    self.counts[old] -= 1
                self.best[cand] = dist
                self.counts[dist] += 1
        total = 0
        for d in range(self.cutoff + 1):
            total += self.counts[d]
            if total >= self.limit:
                self.cutoff = d
                break


def _common_prefix(a: str, b: str, cap: int) -> int:
    """The length of the longest common prefix of ``a`` and ``b``, at most ``cap``."""
    lo, hi = 0, min(len(a), len(b), cap)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """Return a "did you mean ..." hint for the closest candidates, or ``None`` when none are close."""
    close = suggest(word, candidates)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
