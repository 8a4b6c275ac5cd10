"""An independent reference for specopt's selector semantics, used by the property tests.

``specopt/selectors.py`` matches globs with an NFA over segments and a two-pointer
wildcard matcher. This module deliberately works differently: it translates a
glob into one Python regular expression over a dotted name and tries every
window of segments of every name (``re`` backtracking is fine here: the test
names and patterns are tiny). Nothing in here imports specopt.

The semantics, restated from the spec:

* names are dot-separated segments; inside a segment ``*`` matches any run of
  characters, ``?`` one character, ``[abc]`` / ``[!abc]`` / ``[a-z]`` one
  character of a set (``!`` or ``^`` negates; ``x-y`` is a range; the tests
  never put ``]`` inside a class, where glob dialects disagree), and
  ``{a,b}`` one of several alternatives (nestable, may be empty);
* a segment that is exactly ``**`` matches zero or more whole segments;
* a selector selects a name when it matches the whole name or a leading run of
  its segments (a module selects its subtree); unanchored, the match may start
  at any segment boundary, anchored (``^``) only at the root;
* ``@Glob`` matches a module class name; there ``.`` is an ordinary character
  and ``*`` / ``?`` match any characters, dots included. ``@Glob`` selects the
  parameters in the subtree of a matching module, ``@@Glob`` only those the
  matching module holds itself (the module a parameter name's last dot leads to);
* the flag ``/i`` compares the lower-cased pattern with the lower-cased name or
  class name (here: both are lower-cased before the regex is even built);
* the flag ``/first`` lets an atom look at a tied tensor's first name only; of
  a tied tensor, an intersection's positive atoms must all hold on one name,
  and a negated atom excludes it when it holds on any name it looks at (see
  ``term_selects``).
"""

from __future__ import annotations

import re
from functools import lru_cache

NAME_CHAR = r"[^.]"
ANY_CHAR = r"[\s\S]"


class GlobSyntaxError(ValueError):
    """The reference parser could not read a glob."""


def _class_chars(body: str) -> set[str]:
    """The characters a bracket body (without the brackets and negation) stands for."""
    chars, j = set(), 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            lo, hi = ord(body[j]), ord(body[j + 2])
            chars.update(chr(c) for c in range(lo, hi + 1))  # empty when lo > hi
            j += 3
        else:
            chars.add(body[j])
            j += 1
    return chars


def _class_regex(chars: set[str], negated: bool, one: str) -> str:
    member = "(?:" + "|".join(re.escape(c) for c in sorted(chars)) + ")" if chars else None
    if negated:
        return one if member is None else f"(?!{member}){one}"
    if member is None:
        return "(?!)"
    return f"(?={one}){member}"


def _segment_regex(glob: str, one: str) -> str:
    """Regex for one segment glob (braces, classes, wildcards); ``one`` is 'any one character'."""
    pos = 0

    def sequence(stop: str) -> str:
        nonlocal pos
        out = []
        while pos < len(glob) and glob[pos] not in stop:
            ch = glob[pos]
            if ch == "*":
                out.append(one + "*")
                pos += 1
            elif ch == "?":
                out.append(one)
                pos += 1
            elif ch == "[":
                start = pos + 1
                negated = start < len(glob) and glob[start] in "!^"
                body_start = start + 1 if negated else start
                close = glob.find("]", body_start + 1)
                if close < 0:
                    raise GlobSyntaxError(f"unclosed '[' in {glob!r}")
                out.append(_class_regex(_class_chars(glob[body_start:close]), negated, one))
                pos = close + 1
            elif ch == "{":
                pos += 1
                alternatives = [sequence(",}")]
                while pos < len(glob) and glob[pos] == ",":
                    pos += 1
                    alternatives.append(sequence(",}"))
                if pos >= len(glob) or glob[pos] != "}":
                    raise GlobSyntaxError(f"unclosed '{{' in {glob!r}")
                pos += 1
                out.append("(?:" + "|".join(alternatives) + ")")
            elif ch in "]},":
                raise GlobSyntaxError(f"stray {ch!r} in {glob!r}")
            else:
                out.append(re.escape(ch))
                pos += 1
        return "".join(out)

    regex = sequence("")
    if pos != len(glob):
        raise GlobSyntaxError(f"cannot read {glob!r}")
    return regex


@lru_cache(maxsize=4096)
def name_regex(pattern: str) -> re.Pattern:
    """A regex that fully matches ``'.' + window`` for a window of segments the pattern matches.

    Every segment is written with a leading dot, so ``**`` becomes "any number of
    dotted segments" and needs no special casing at the ends.
    """
    parts = []
    for seg in pattern.split("."):
        if seg == "**":
            parts.append(r"(?:\.[^.]*)*")
        else:
            parts.append(r"\." + _segment_regex(seg, NAME_CHAR))
    return re.compile("".join(parts))


def name_selects(pattern: str, anchored: bool, name: str, ignore_case: bool = False) -> bool:
    """Whether the name selector ``pattern`` selects the parameter or module called ``name``."""
    if ignore_case:
        pattern, name = pattern.lower(), name.lower()
    rx = name_regex(pattern)
    segments = name.split(".")
    starts = [0] if anchored else range(len(segments))
    return any(rx.fullmatch("." + ".".join(segments[s:e]))
               for s in starts for e in range(s + 1, len(segments) + 1))


@lru_cache(maxsize=4096)
def class_regex(pattern: str) -> re.Pattern:
    """A regex for a whole module-class glob (``@`` selectors)."""
    return re.compile(_segment_regex(pattern, ANY_CHAR))


def class_matches(pattern: str, class_name: str, ignore_case: bool = False) -> bool:
    """Whether a class glob matches one class name (``Linear`` or ``torch.nn.modules.linear.Linear``)."""
    if ignore_case:
        pattern, class_name = pattern.lower(), class_name.lower()
    return class_regex(pattern).fullmatch(class_name) is not None


def class_names(cls: type) -> list[str]:
    """The names a class answers to: its and every base's ``__name__`` and ``module.qualname``."""
    out = []
    for c in cls.mro():
        if c is object:
            continue
        out.append(c.__name__)
        out.append(c.__module__ + "." + c.__qualname__)
    return out


def in_subtree(param_name: str, module_path: str) -> bool:
    """Whether a parameter lies in the subtree of the module at ``module_path`` ('' is the root)."""
    return module_path == "" or param_name.startswith(module_path + ".")


def owned_by(param_name: str, module_path: str) -> bool:
    """Whether the module at ``module_path`` holds the parameter itself (not through a submodule)."""
    parts = param_name.split(".")
    return parts[:-1] == (module_path.split(".") if module_path else [])


def term_selects(positives, negatives, names) -> bool:
    """Whether an intersection selects a tensor called ``names`` (first name first).

    ``positives`` and ``negatives`` are the atoms as ``(holds, first_only)`` pairs,
    ``holds(name)`` saying whether the atom holds on one name. A positive atom must
    hold, with all the others, on one and the same name; a negated atom excludes
    the tensor when it holds on any name it looks at (``first_only``: the first).
    """
    def looks_at(first_only):
        return names[:1] if first_only else names

    if any(holds(n) for holds, first_only in negatives for n in looks_at(first_only)):
        return False
    return any(all(holds(n) and n in looks_at(first_only) for holds, first_only in positives) for n in names)


def ndim_holds(test: str, rank: int) -> bool:
    """Evaluate an ``ndim`` test body such as ``<2`` or ``!=3``."""
    m = re.fullmatch(r"(<=|>=|==|!=|<|>)(\d+)", test)
    op, n = m.group(1), int(m.group(2))
    return {"<=": rank <= n, ">=": rank >= n, "==": rank == n, "!=": rank != n,
            "<": rank < n, ">": rank > n}[op]
