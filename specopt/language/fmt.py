"""Format: one canonical layout for spec files, comments kept (``specopt fmt``).

The canonical form:

* one statement per line, in source order (order is semantic); statements
  joined by ``;`` go onto lines of their own, and a trailing comment stays with
  the last statement of its line;
* no indentation, one space between words: ``group NAME: SEL SEL & !SEL
  key=value``, with ``key=value`` written without spaces, intersections as
  ``a & b`` and tuples as ``(a, b)``;
* optimizer names, numbers, factors (``x0.1``), quoted strings, selectors,
  clip modes and units are kept as written, except that a selector's flags
  are written in one order (``/i,first``); the words ``true``, ``false``, ``none``, ``inf``
  and ``nan`` are written in lower case;
* whole-line comments start at the beginning of their line; a trailing comment
  follows its statement after two spaces; comment text is kept as written,
  less trailing whitespace;
* a run of blank lines becomes one blank line, there are no blank lines at
  the start or the end, lines end with ``\\n`` and the file with one newline
  (a file without statements or comments formats to the empty text).

The formatter works from the parse: each statement's parse tree, with every
token kept, is written out again with one rule per kind of tree node (how its
children are joined), so a new statement kind needs no code here. Only valid
specs are formatted.
"""

from __future__ import annotations

from lark import Token

from .parse import comment_start, parse_text, parser, split_statements
from ..plan.selectors import FLAGS
from typing import Protocol

from ..diagnostics import Source


class Spec(Protocol):
    """What formatting reads of a parsed spec: its source (:class:`specopt.Spec` has it)."""

    source: Source

COMMENT_GAP = "  "
_WORDS = frozenset({"true", "false", "none", "inf", "nan"})


def format_text(text: str, name: str = "<string>") -> str:
    """Return spec text in the canonical layout; raise :class:`SpecError` if the spec has errors.

    An optimizer named by import path is kept as written and never imported.
    """
    _, source = parse_text(text, name, defer_imports=True)
    return _format_source(source)


def format_spec(spec: "Spec") -> str:
    """Return a parsed spec's source text in the canonical layout."""
    return _format_source(spec.source)


def _format_source(source) -> str:
    """The canonical layout of a source read as spec text."""
    if source.format != "spec":
        raise ValueError("only a spec parsed from spec text can be formatted, not a plan read as data")
    lines: list[str] = []
    for line in source.text.split("\n"):
        lines += _format_line(line)
    return _join(lines)


def _format_line(line: str) -> list[str]:
    """The canonical lines for one source line: its statements, then its comment."""
    cut = comment_start(line)
    comment = line[cut:].rstrip() if cut >= 0 else ""
    rendered = [format_statement(chunk) for _, chunk in split_statements(line)]
    if not rendered:
        return [comment]
    if comment:
        rendered[-1] += COMMENT_GAP + comment
    return rendered


def _join(lines: list[str]) -> str:
    """Collapse blank-line runs, drop leading and trailing blank lines, end with one newline."""
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def format_statement(chunk: str) -> str:
    """One statement's text (no ``;`` or comment) in canonical form, from its parse tree."""
    tree = parser(keep_all_tokens=True).parse(chunk)
    return _render(tree.children[0])


def _render(node) -> str:
    if isinstance(node, Token):
        return _selector(str(node)) if node.type == "SELECTOR" else str(node)
    parts = [_render(child) for child in node.children]
    join = _JOINS.get(node.data, _spaced)
    return join(parts)


def _selector(text: str) -> str:
    """A selector as written, its flags in the order of :data:`specopt.plan.selectors.FLAGS` (``/i,first``)."""
    body, slash, flags = text.partition("/")
    if not slash:
        return text
    given = flags.split(",")
    return body + "/" + ",".join(f for f in FLAGS if f in given)


def _spaced(parts: list[str]) -> str:
    return " ".join(parts)


def _word(parts: list[str]) -> str:
    """A value word: true, false, none, inf and nan in lower case."""
    word = parts[0]
    return word.lower() if word.lower() in _WORDS else word


def _tuple(parts: list[str]) -> str:
    return "(" + ", ".join(p for p in parts if p not in _PUNCTUATION) + ")"


_PUNCTUATION = frozenset({"(", ")", ","})


def _term(parts: list[str]) -> str:
    return " & ".join(p for p in parts if p != "&")


def _milestones(parts: list[str]) -> str:
    *numbers, unit = [p for p in parts if p != ","]
    return ",".join(numbers) + " " + unit


def _setting(parts: list[str]) -> str:
    """An ``ema`` setting: ``key=value``, with true and false in lower case."""
    key, equals, value = parts
    return key + equals + _word([value])


# How the children of each kind of tree node are joined; every other node: by single spaces.
_JOINS = {
    "option": "".join, "atom": "".join, "tuple": _tuple, "term": _term, "word": _word,
    "s_word": _word, "s_milestones": _milestones, "norms": "".join, "setting": _setting,
}
