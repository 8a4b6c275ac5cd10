"""Format: one canonical layout for spec files, comments kept (``specopt fmt``).

The canonical form:

* one statement per line, in source order (order is semantic); statements
  joined by ``;`` go onto lines of their own, and a trailing comment stays with
  the last statement of its line;
* no indentation, one space between words: ``group NAME: SEL SEL & !SEL
  key=value``, with ``key=value`` written without spaces, intersections as
  ``a & b`` and tuples as ``(a, b)``;
* optimizer names, numbers, factors (``x0.1``), quoted strings, selectors,
  clip modes and units are kept as written; the words ``true``, ``false``, ``none``, ``inf``
  and ``nan`` are written in lower case;
* whole-line comments start at the beginning of their line; a trailing comment
  follows its statement after two spaces; comment text is kept as written,
  less trailing whitespace;
* a run of blank lines becomes one blank line, there are no blank lines at
  the start or the end, lines end with ``\\n`` and the file with one newline
  (a file without statements or comments formats to the empty text).

The formatter works from the parsed plan and the source text: the plan says
what each statement is, the spans say where it was written and how its values
were spelled. Only valid specs are formatted.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from .parse import comment_start
from .plan import Option, Plan, Relative, Term
from .spec import Spec, parse

COMMENT_GAP = "  "
_TUPLE_ITEM = re.compile(r'"[^"\n]*"|[^\s,()"]+')
_STEP = re.compile(r"step\s+every\s+(\d+)\s*(?:(epochs?|steps?)\s+)?(x\S+)")


class FormatterError(Exception):
    """The formatter met a statement it cannot reproduce; a bug in specopt, never in the spec."""


def format_text(text: str, name: str = "<string>") -> str:
    """Return spec text in the canonical layout; raise :class:`SpecError` if the spec has errors.

    An optimizer named by import path is kept as written and never imported.
    """
    return format_spec(parse(text, name, defer_imports=True))


def format_spec(spec: Spec) -> str:
    """Return a parsed spec's source text in the canonical layout."""
    if spec.source.format != "spec" or any(stmt.span is None for stmt in spec.plan.statements):
        raise ValueError("only a spec parsed from spec text can be formatted, not a plan read as data")
    text = spec.source.text
    by_line = _statements_by_line(spec.plan, text)
    lines: list[str] = []
    for number, line in enumerate(text.split("\n")):
        lines += _format_line(line, by_line.get(number, []), text)
    return _join(lines)


def _statements_by_line(plan: Plan, text: str) -> dict[int, list]:
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    by_line: dict[int, list] = {}
    for stmt in plan.statements:
        by_line.setdefault(bisect_right(starts, stmt.span.start) - 1, []).append(stmt)
    return by_line


def _format_line(line: str, statements: list, text: str) -> list[str]:
    """The canonical lines for one source line: its statements, then its comment."""
    cut = comment_start(line)
    comment = line[cut:].rstrip() if cut >= 0 else ""
    rendered = [format_statement(stmt, text) for stmt in statements]
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


def format_statement(stmt, text: str) -> str:
    """One statement in canonical form; ``text`` is the source its spans point into."""
    written = text[stmt.span.start:stmt.span.end]
    if stmt.kind == "optimizer":
        name = text[stmt.name_span.start:stmt.name_span.end]
        words = ["optimizer", name, *_options(stmt.options, text)]
    elif stmt.kind in ("freeze", "unfreeze"):
        words = [stmt.kind, *_terms(stmt.selectors)]
    elif stmt.kind == "group":
        label = [f"{stmt.name}:"] if stmt.name is not None else []
        words = ["group", *label, *_terms(stmt.selectors), *_options(stmt.options, text)]
    elif stmt.kind == "clip":
        words = ["clip", stmt.mode, _clip_max(written, stmt.mode)]
    elif stmt.kind == "step":
        words = ["step", "every", *_step_words(written)]
    else:
        raise FormatterError(f"no canonical form for a '{stmt.kind}' statement")
    return " ".join(words)


def _terms(terms: tuple[Term, ...]) -> list[str]:
    return [" & ".join(atom.text for atom in term.atoms) for term in terms]


def _options(options: tuple[Option, ...], text: str) -> list[str]:
    return [f"{opt.key}={_value_text(opt, text)}" for opt in options]


def _value_text(opt: Option, text: str) -> str:
    written = text[opt.value_span.start:opt.value_span.end]
    if isinstance(opt.value, Relative):
        return written
    if isinstance(opt.value, tuple):
        items = _TUPLE_ITEM.findall(written[1:-1])
        if len(items) != len(opt.value):
            raise FormatterError(f"cannot split the tuple {written!r} into {len(opt.value)} values")
        return "(" + ", ".join(_scalar_text(item) for item in items) + ")"
    return _scalar_text(written)


def _scalar_text(written: str) -> str:
    """Words (true, false, none, inf, nan) in lower case; numbers and strings as written."""
    return written.lower() if written[:1].isalpha() else written


def _clip_max(written: str, mode: str) -> str:
    rest = written[len("clip"):].lstrip()
    if not rest.startswith(mode):
        raise FormatterError(f"cannot find the clip mode {mode!r} in {written!r}")
    return rest[len(mode):].strip()


def _step_words(written: str) -> list[str]:
    match = _STEP.fullmatch(written)
    if match is None:
        raise FormatterError(f"cannot read the step statement {written!r}")
    every, unit, factor = match.groups()
    return [every, unit, factor] if unit else [every, factor]
