"""Diagnostics: one positioned message type shared by every stage, and its rendering.

Every stage reports problems as :class:`Diagnostic` values that carry a source
span as character offsets. Line and column are computed only when a diagnostic
is rendered against its :class:`Source`, so plan nodes stay cheap to build and
independent of the text layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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

    def line_col(self, offset: int) -> tuple[int, int]:
        """Return the 1-based line and column of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        line_start = self.text.rfind("\n", 0, offset) + 1
        return line, offset - line_start + 1

    def line_text(self, line: int) -> str:
        """Return the text of a 1-based line, without its newline."""
        lines = self.text.split("\n")
        return lines[line - 1] if 0 < line <= len(lines) else ""


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
            text = source.line_text(line)
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
    """
    core = "".join(ch for ch in word if ch not in "*?[]{}^~!@").lower()
    fuzzy = core != word.lower()
    budget = max(1, len(core) // 3)
    scored = []
    for cand in set(candidates):
        cand_l = cand.lower()
        if not fuzzy and abs(len(cand_l) - len(core)) > budget:
            continue
        dist = _window_distance(core, cand_l) if fuzzy else edit_distance(core, cand_l)
        if dist <= budget:
            scored.append((dist, len(cand), cand))
    if not scored and len(core) >= 3:
        scored = [(len(c), 0, c) for c in set(candidates) if core in c.lower()]
    return [c for *_, c in sorted(scored)[:limit]]


def _window_distance(core: str, cand: str) -> int:
    if len(cand) <= len(core):
        return edit_distance(core, cand)
    return min(edit_distance(core, cand[i:i + len(core)]) for i in range(len(cand) - len(core) + 1))


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """Return a "did you mean ..." hint for the closest candidates, or ``None`` when none are close."""
    close = suggest(word, candidates)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
