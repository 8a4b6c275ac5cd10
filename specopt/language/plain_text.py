"""The rules every spec's text follows, whatever its format: line breaks, invisible characters, digits.

A spec, or a plan written as JSON or YAML, is plain text. A line ends at
``\\n``, ``\\r\\n`` or a lone ``\\r`` (an old Mac editor's line break), so a
lone ``\\r`` becomes ``\\n`` before anything reads the text; the text keeps its
length, so every offset stays true. A character that cannot be seen (a
control character such as NUL, a zero-width or bidirectional formatting
character, a line or paragraph separator, a lone surrogate) is error E109
where it stands, since a reader of the file could not tell it is there; tabs
and form feeds are whitespace. Numbers are written with the ASCII digits 0-9.
"""

from __future__ import annotations

import re
import unicodedata

from ..diagnostics import Diagnostic, Span

MAX_INVISIBLE_REPORTED = 20
_LONE_CR = re.compile(r"\r(?!\n)")
_CANDIDATE = re.compile(r"[^\x20-\x7e\t\n\r\f]")  # what may be invisible: checked by its category
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMES = {"\0": "NUL", "\x1b": "ESCAPE", "\x7f": "DELETE", "\x85": "NEXT LINE", "\x0b": "LINE TABULATION"}


def line_breaks(text: str) -> str:
    """``text`` with each lone ``\\r`` made a ``\\n`` (its length, and so every offset, unchanged)."""
    return _LONE_CR.sub("\n", text) if "\r" in text else text


def _invisible(text: str):
    """The matches of the characters E109 refuses, in order."""
    return (m for m in _CANDIDATE.finditer(text) if unicodedata.category(m.group()) in _INVISIBLE_CATEGORIES)


def first_invisible(text: str) -> int | None:
    """Where the first character of ``text`` that E109 refuses is, or ``None``."""
    return next((m.start() for m in _invisible(text)), None)


def describe(ch: str) -> str:
    """A character named so that it can be seen: ``U+0000 (NUL)``, ``U+200B (ZERO WIDTH SPACE)``."""
    name = unicodedata.name(ch, "") or _NAMES.get(ch, "a control character")
    return f"U+{ord(ch):04X} ({name})"


def visible(ch: str) -> bool:
    """Whether a character shows as itself in a message (not whitespace, not invisible)."""
    return ch.isprintable() and not ch.isspace()


def text_lines(text: str) -> list[tuple[int, str]]:
    """Each line of ``text`` with the offset it starts at."""
    out, offset = [], 0
    for line in text.split("\n"):
        out.append((offset, line))
        offset += len(line) + 1
    return out


def invisible_diagnostics(pieces: list[tuple[int, str]]) -> list[Diagnostic]:
    """E109 for the first invisible character of each piece of text (``(offset, text)``: a statement, a
    line) that holds one; at most :data:`MAX_INVISIBLE_REPORTED`, then one diagnostic counting the rest."""
    diags, rest = [], []
    for offset, piece in pieces:
        at = first_invisible(piece)
        if at is None:
            continue
        if len(diags) < MAX_INVISIBLE_REPORTED:
            diags.append(invisible_at(piece[at], offset + at))
        else:
            rest.append(offset + at)
    if rest:
        diags.append(Diagnostic("E109", f"invisible characters in {len(rest)} more place(s), from here on",
                                Span(start=rest[0], end=rest[0] + 1), "delete them: a spec is plain text"))
    return diags


def invisible_at(ch: str, offset: int | None, path: tuple = ()) -> Diagnostic:
    """E109 for the invisible character ``ch`` at ``offset`` (``None``: at ``path`` in a plan's data)."""
    span = Span(start=offset, end=offset + 1) if offset is not None else None
    return Diagnostic("E109", f"an invisible character, {describe(ch)}", span,
                      "delete it, or write what it stands for visibly: a spec is plain text", path=path)
