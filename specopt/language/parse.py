"""Parse: spec text → Lark parse trees → plan nodes, with every syntax error collected.

The grammar (``grammar/specopt.lark``) is loaded once into a cached LALR parser
with positions. Statements are separated by newlines and ``;`` (outside
comments and quoted strings), so the text is cut into statements and each is parsed on its own:
one bad statement is reported without hiding the errors of the others. Lark's
exceptions are turned into diagnostics here, at this one boundary.
"""

from __future__ import annotations

import math
import re
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedEOF, UnexpectedInput, VisitError

from ..diagnostics import Diagnostic, Source, Span, SpecError, did_you_mean
from ..plan.extensions import import_diagnostics
from ..plan.nodes import UNIT_WORDS, Length, Milestones, Option, Relative, Selector, Term, factor_value
from ..plan.schedule_statement import Item
from .plain_text import describe, first_invisible, invisible_diagnostics, line_breaks, visible
from ..plan.plan import BY_KEYWORD, Plan
from ..plan.selectors import read_flags
from ..plan.statements import Parts

MAX_SOURCE_CHARS = 1_000_000


def grammar_text() -> str:
    """Return the grammar: packaged inside the wheel, or at ``grammar/`` in a source checkout."""
    packaged = resources.files("specopt").joinpath("grammar", "specopt.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[2] / "grammar" / "specopt.lark"
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise FileNotFoundError("specopt's grammar file is missing from this installation")


@lru_cache(maxsize=2)
def parser(keep_all_tokens: bool = False) -> Lark:
    """The cached LALR parser for the spec grammar; ``keep_all_tokens`` keeps punctuation (for ``fmt``)."""
    return Lark(grammar_text(), start="file", parser="lalr", lexer="contextual",
                propagate_positions=True, maybe_placeholders=False, keep_all_tokens=keep_all_tokens)


def parse_text(text: str, name: str = "<string>", allow_import: bool = False,
               defer_imports: bool = False) -> tuple[Plan, Source]:
    """Parse spec text into a validated plan; raise :class:`SpecError` with every problem found.

    An optimizer named by import path is refused unless ``allow_import``; when
    allowed, its class is imported here and the options are checked against it.
    ``defer_imports`` accepts such a path unchecked and imports nothing: the
    gate then applies when the plan is compiled or resolved. A lone ``\\r`` ends
    a line, and a statement holding an invisible character is reported (E109),
    not read (see :mod:`specopt.language.plain_text`); comments may hold anything.
    """
    text = line_breaks(text)
    source = Source(text, name)
    if len(text) > MAX_SOURCE_CHARS:
        raise SpecError([Diagnostic("E102", f"spec is too large ({len(text)} characters; the limit "
                                    f"is {MAX_SOURCE_CHARS})", Span(start=0, end=0))], source)
    chunks = split_statements(text)
    diags = invisible_diagnostics(chunks)
    statements, salvaged = [], {}
    for start, chunk in chunks:
        if diags and first_invisible(chunk) is not None:
            continue  # reported as E109: its words are not what a reader of the file sees
        try:
            statements += _parse_chunk(chunk, start)
        except UnexpectedInput as exc:
            diags.append(_syntax_diagnostic(exc, chunk, start))
            found, limit = _salvage(chunk, start, exc)
            salvaged.update({id(stmt): (stmt, limit) for stmt in found})
            statements += found
        except _NodeError as exc:
            diags.append(exc.diagnostic)
        except SpecError as exc:
            diags += exc.diagnostics
    checks = import_diagnostics(statements, allow_import, defer_imports)
    try:
        plan = Plan(statements=tuple(statements), span=Span(start=0, end=len(text)))
    except SpecError as exc:
        checks += exc.diagnostics
        plan = None
    diags += [d for d in checks if _kept(d, salvaged.values())]
    if diags:
        raise SpecError(diags, source, tuple(statements))
    return plan, source


_MAX_REPAIRS = 6


def _salvage(chunk: str, start: int, exc: UnexpectedInput) -> tuple[list, int]:
    """The statement a chunk with a syntax error still says once the offending words are blanked out.

    Blanking keeps every offset, so the nodes' spans stay true. Returns the
    statements and the offset of the first blanked character: only problems
    found before it are reported, so nothing the blanking caused is.
    """
    text, first = chunk, len(chunk)
    for _ in range(_MAX_REPAIRS):
        lo, hi = _blank_range(text, _error_pos(exc, text))
        if lo <= len(text) - len(text.lstrip()):
            return [], start  # nothing but the keyword would be left
        text, first = text[:lo] + " " * (hi - lo) + text[hi:], min(first, lo)
        try:
            return _parse_chunk(text, start), start + first
        except UnexpectedInput as again:
            exc = again
        except (_NodeError, SpecError):
            return [], start
    return [], start


def _blank_range(text: str, pos: int) -> tuple[int, int]:
    """The characters to blank out for an error at ``pos``: its word, or the last word at the end."""
    if pos < len(text.rstrip()):
        return pos, pos + max(1, len(_word_at(text, pos)))
    end = len(text.rstrip())
    lo = text.rstrip().rfind(" ") + 1
    return lo, end


def _kept(diag: Diagnostic, salvaged) -> bool:
    """Whether a problem of the plan stands, given the statements salvaged from syntax errors."""
    span = diag.span
    for stmt, limit in salvaged:
        if span is not None and stmt.span.start <= span.start < stmt.span.end:
            return span.end <= limit and span != stmt.span
    return True


def split_statements(text: str) -> list[tuple[int, str]]:
    """Cut text into ``(offset, statement_text)`` pieces at newlines and at ``;`` outside comments.

    A ``;`` or ``#`` inside a double-quoted string (the grammar's ``STRING``, which
    ends on the same line) belongs to the string. A quote without its closing
    quote on the line is no string, so it hides nothing.
    """
    pieces, offset = [], 0
    for line in text.split("\n"):
        start = 0
        for mark in _SEPARATOR.finditer(line):
            if mark.group() in ";#":
                _add_piece(pieces, offset + start, line[start:mark.start()])
                start = mark.end()
                if mark.group() == "#":
                    break
        else:
            _add_piece(pieces, offset + start, line[start:])
        offset += len(line) + 1
    return pieces


_SEPARATOR = re.compile(r'"[^"\n]*"|[;#]')


def comment_start(line: str) -> int:
    """The index of the ``#`` that starts the comment of one line (quoted ``#`` aside), or -1."""
    return next((m.start() for m in _SEPARATOR.finditer(line) if m.group() == "#"), -1)


def _add_piece(pieces: list[tuple[int, str]], offset: int, part: str) -> None:
    if part.strip():
        pieces.append((offset, part))


def _parse_chunk(chunk: str, start: int) -> list:
    tree = parser().parse(chunk)
    try:
        return _ToPlan(start).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, (_NodeError, SpecError)):
            raise exc.orig_exc from None
        raise
    except RecursionError:
        raise _NodeError(Diagnostic("E103", "values nest too deeply", Span(start=start, end=start + len(chunk)),
                                    "tuples hold plain values only")) from None


class _NodeError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def _syntax_diagnostic(exc: UnexpectedInput, chunk: str, start: int) -> Diagnostic:
    pos = _error_pos(exc, chunk)
    word = _word_at(chunk, pos)
    lead = len(chunk) - len(chunk.lstrip())
    if pos == lead and word and word not in BY_KEYWORD:
        return Diagnostic("E101", f"unknown statement '{word}'", Span(start=start + pos, end=start + pos + len(word)),
                          did_you_mean(word, BY_KEYWORD) or "statements: " + ", ".join(BY_KEYWORD))
    found = f"'{word}'" if word else ("end of statement" if pos >= len(chunk.rstrip()) else _char(chunk[pos]))
    message = f"unexpected {found}" + _expectation(exc, chunk, pos)
    keyword = chunk.split()[0]
    hint = f"the form is: {BY_KEYWORD[keyword].syntax}" if keyword in BY_KEYWORD else None
    if chunk[pos:pos + 1] == "=" and keyword == "group":
        hint = "a group names its selectors before key=value, e.g. group head.* lr=1e-3"
    if word == "warmup" and keyword == "freeze":
        hint = "only an unfreeze ramps the lr of what it makes trainable: unfreeze ... at step N warmup LENGTH"
    width = len(word) or (1 if pos < len(chunk) else 0)  # nothing to underline at the end of the text
    return Diagnostic("E100", message, Span(start=start + pos, end=start + pos + width), hint)


def _char(ch: str) -> str:
    """A character as a message shows it: quoted, or named when it would not show (a no-break space)."""
    return f"'{ch}'" if visible(ch) else describe(ch)


def _error_pos(exc: UnexpectedInput, chunk: str) -> int:
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or (token is not None and token.type == "$END"):
        return len(chunk.rstrip())
    if token is not None and token.start_pos is not None:
        return token.start_pos
    return exc.pos_in_stream if exc.pos_in_stream is not None else len(chunk.rstrip())


_EXPECTED = {
    "SELECTOR": "a selector", "NDIM": "a selector", "KEY": "key=value", "NAME": "a name",
    "NUMBER": "a number", "INT": "a whole number", "FACTOR": "a factor like x0.1",
    "_EVERY": "'every'", "UNIT": "'epochs' or 'steps'", "EQUAL": "'='", "LPAR": "'('",
    "RPAR": "')'", "COMMA": "','", "STRING": "a quoted string", "LABEL": "a group name",
    "PERCENT": "a share of the run like 10%", "_AT": "'at'", "_WARMUP": "'warmup'", "_THEN": "'then'",
    "_WITH": "'with'",
}


_TUPLE_ONLY = frozenset({"RPAR", "COMMA"})
# The LALR states after a selector are shared by freeze, unfreeze and group: each names only its own clauses.
_CLAUSES_NOT_IN = {"freeze": {"_WARMUP"}, "group": {"_AT", "_WARMUP"}}
_BRACKET = re.compile(r'"[^"\n]*"|[()]')


def _expectation(exc: UnexpectedInput, chunk: str, pos: int) -> str:
    """What should have come at ``pos``, as the end of the message (``""``: nothing to say).

    The LALR tables share the states after a value between options and tuple
    items, so lark lists ``)`` and ``,`` after every value; they are named only
    inside an open tuple, where ``key=value`` is not possible.
    """
    history = getattr(exc, "token_history", None) or [None]  # lark gives [None] at the first token
    if history[-1] is not None and _bad_factor(history[-1], chunk, pos):
        if chunk[pos:pos + 1] == "^":
            return "; a power is ^ followed by a number, like x0.75^3"
        return "; a factor is x followed by a number, like x0.1"
    names = set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    names -= {"KEY"} if _in_tuple(chunk, pos) else _TUPLE_ONLY
    names -= _CLAUSES_NOT_IN.get(chunk.split()[0], set())
    words = " or ".join(sorted({_EXPECTED[n] for n in names if n in _EXPECTED}))
    return f", expected {words}" if words else ""


def _bad_factor(last: Token, chunk: str, pos: int) -> bool:
    """Whether the error is glued to a factor (``x0.1x``) or to a value ``x`` (``lr=x-1``)."""
    if last.end_pos != pos:
        return False
    value_x = last.type == "NAME" and str(last) == "x" and chunk[:last.start_pos].rstrip()[-1:] in ("=", "(", ",")
    return last.type == "FACTOR" or value_x


def _in_tuple(chunk: str, pos: int) -> bool:
    """Whether ``pos`` lies inside an unclosed ``(`` (parentheses in quoted strings aside)."""
    depth = 0
    for mark in _BRACKET.finditer(chunk, 0, pos):
        if mark.group() == "(":
            depth += 1
        elif mark.group() == ")":
            depth = max(depth - 1, 0)
    return depth > 0


def _word_at(chunk: str, pos: int) -> str:
    end = pos
    while end < len(chunk) and not chunk[end].isspace() and chunk[end] not in ";#=()":
        end += 1
    return chunk[pos:end]


def _span(start: int, item) -> Span:
    if isinstance(item, Token):
        return Span(start=start + item.start_pos, end=start + item.end_pos)
    return Span(start=start + item.meta.start_pos, end=start + item.meta.end_pos)


@v_args(meta=True)
class _ToPlan(Transformer):
    """Map each grammar rule to a plan node; spans are shifted by the statement's offset.

    A ``<keyword>_stmt`` rule is handed to its statement class
    (:meth:`specopt.plan.statements.Statement.from_parse`); the rules below build
    the values, options and selectors those classes receive.
    """

    def __init__(self, offset: int):
        super().__init__()
        self.offset = offset

    def _at(self, meta) -> Span:
        return Span(start=self.offset + meta.start_pos, end=self.offset + meta.end_pos)

    def __default__(self, data, children, meta):
        if isinstance(data, str) and data.endswith("_stmt"):
            cls = BY_KEYWORD[data[:-len("_stmt")]]
            return cls.from_parse(Parts(children, self._at(meta), self.offset, _whole))
        return super().__default__(data, children, meta)

    def file(self, meta, children):
        return list(children)

    def selectors(self, meta, children):
        return list(children)

    def term(self, meta, children):
        return Term(atoms=tuple(children), span=self._at(meta))

    def atom(self, meta, children):
        flags = {t.type for t in children[:-1]}
        token = children[-1]
        parts = _selector_parts(token, self.offset)
        return Selector(**parts, negated="NOT" in flags, optional="MAYBE" in flags, span=self._at(meta))

    def option(self, meta, children):
        key, (value, value_meta) = children
        return Option(key=str(key), value=value, span=_span(self.offset, key),
                      value_span=self._at(value_meta) if value_meta else None)

    def number(self, meta, children):
        return self._number(children[0]), meta

    def _number(self, token: Token):
        text = str(token)
        return float(text) if any(c in text for c in ".eE") else _whole(text, _span(self.offset, token))

    def factor(self, meta, children):
        return Relative(factor=factor_value(str(children[0])), span=self._at(meta)), meta

    def string(self, meta, children):
        return str(children[0])[1:-1], meta

    def word(self, meta, children):
        return _word_value(str(children[0]), self._at(meta)), meta

    def tuple(self, meta, children):
        if any(isinstance(value, (tuple, Relative)) for value, _ in children):
            raise _NodeError(Diagnostic("E103", "tuples hold plain values only", self._at(meta),
                                        "write numbers, true, false, none or strings inside (...)"))
        return tuple(value for value, _ in children), meta

    # --- lengths of time and the items of a schedule -------------------------------------

    def length(self, meta, children):
        if len(children) == 1:
            return Length(value=float(str(children[0])[:-1]), unit="percent", span=self._at(meta))
        number, unit = children
        return Length(value=float(self._number(number)), unit=UNIT_WORDS[str(unit)], span=self._at(meta))

    def _item(self, kind: str, value, meta, text: str) -> Item:
        return Item(kind, value, self._at(meta), text)

    def s_word(self, meta, children):
        text = str(children[0])
        value = {"true": True, "false": False}.get(text.lower(), text)
        return self._item("word", value, meta, f"'{text}'")

    def s_length(self, meta, children):
        return self._item("length", children[0], meta, f"'{children[0].text}'")

    def s_number(self, meta, children):
        return self._item("number", self._number(children[0]), meta, f"'{children[0]}'")

    def s_factor(self, meta, children):
        factor = Relative(factor=factor_value(str(children[0])), span=self._at(meta))
        return self._item("factor", factor, meta, f"'{children[0]}'")

    def s_string(self, meta, children):
        return self._item("string", str(children[0])[1:-1], meta, str(children[0]))

    def s_milestones(self, meta, children):
        *numbers, unit = children
        values = tuple(float(self._number(n)) for n in numbers)
        value = Milestones(values=values, unit=UNIT_WORDS[str(unit)], span=self._at(meta))
        return self._item("milestones", value, meta, f"'{value.text}'")


_WORDS = {"true": True, "false": False, "none": None, "inf": math.inf, "nan": math.nan}


def _whole(text: str, span: Span) -> int:
    """A whole number; one too large for a float (or past Python's limit on digits) is reported, not raised."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or abs(value) > LARGEST_WHOLE:
        raise _NodeError(Diagnostic("E103", f"number too long ({len(text)} digits)", span,
                                    "a number is at most about 1.8e308, the largest float")) from None
    return value


LARGEST_WHOLE = int(sys.float_info.max)


def _word_value(word: str, span: Span):
    if word.lower() in _WORDS:
        return _WORDS[word.lower()]
    raise _NodeError(Diagnostic("E103", f"unknown value '{word}'", span,
                                "values are numbers, true, false, none, tuples (a, b) or quoted strings"))


def _selector_parts(token: Token, offset: int) -> dict:
    """The fields of a selector atom: its kind and pattern, ``^``, ``@@`` and the ``/`` flags."""
    text = str(token)
    if token.type == "NDIM":
        return {"kind": "ndim", "pattern": text[4:]}
    body, slash, written = text.partition("/")
    flags, problem = read_flags(written) if slash else (frozenset(), None)
    if slash and not body:
        problem = ("flags without a pattern", "flags follow a name or class selector, as in *norm*/i; "
                   "a rank test (ndim) takes none", -1, len(written))
    if problem is not None:
        why, hint, start, end = problem
        at = offset + token.start_pos + len(body) + 1
        raise _NodeError(Diagnostic("E209", f"bad selector '{text}': {why}", Span(start=at + start, end=at + end),
                                    hint))
    parts = {"kind": "name", "pattern": body, "ignore_case": "i" in flags, "first_name": "first" in flags}
    if body.startswith("@"):
        owner = body.startswith("@@")
        parts.update(kind="class", pattern=body[2 if owner else 1:], owner=owner)
    elif body.startswith("^"):
        parts.update(pattern=body[1:], anchored=True)
    return parts

