"""Plans written as data by hand: the short forms they may use, and the rules their values follow.

A plan file has the shape of ``Plan.model_dump()`` (``specopt schema``), but a
hand-written one may write briefly what spec text writes briefly:

    statements:
      - kind: freeze
        selectors: ["ndim<2", "head.* & !head.bias"]   # or one string: "ndim<2 head.*"
      - kind: optimizer
        name: adamw
        options: {lr: 1.0e-3, betas: [0.9, 0.95]}
      - kind: unfreeze
        selectors: body
        at: step 2000                                 # or epoch 3, or 50%
        warmup: 500 steps
      - kind: schedule
        phases: [{kind: cosine, length: 10 epochs, args: {to: {factor: 0.01}}}]

A selector string is read as spec text reads it (``!``, ``~``, ``&``, ``@``,
``^``, ``/i``; a whole number in a list of selectors is a name, ``[0, 2]``), a mapping of options or arguments keeps its order, and a
length or moment is written as spec text writes it. Each short form becomes
the long form that the same spec text gives, so the plan (and what
:func:`specopt.language.plan_data.dump_plan` writes) is the same whichever way it was written.
Values follow the rules of spec text wherever they come from: a string holds
no invisible character (E109), a whole number fits a float (E103).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable

from ..diagnostics import Diagnostic, SpecError
from .parse import LARGEST_WHOLE, parse_text
from .plain_text import first_invisible, invisible_at

Path_ = tuple[str | int, ...]
_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_LENGTH = re.compile(rf"\s*(?:(?P<value>{_NUMBER})\s*(?P<unit>steps?|epochs?)|(?P<share>{_NUMBER})%)\s*")
_MOMENT = re.compile(rf"\s*(?:(?P<unit>step|epoch)\s+(?P<value>{_NUMBER})|(?P<share>{_NUMBER})%)\s*")
_PAIRS = {"options": "key", "args": "name"}  # a mapping written for a list of key/value (name/value) pairs
_SELECTOR_KEYS = ("selectors", "joins")
_LENGTH_KEYS = {"at": (_MOMENT, "a moment such as step 2000, epoch 3 or 50%"),
                "warmup": (_LENGTH, "a length such as 500 steps, 5 epochs or 10%"),
                "length": (_LENGTH, "a length such as 500 steps, 5 epochs or 10%")}


def value_problems(data: Any, path: Path_ = ()) -> list[Diagnostic]:
    """E109 for strings (and keys) holding invisible characters, E103 for whole numbers past a float."""
    if isinstance(data, dict):
        out = []
        for key, value in data.items():
            out += _scalar_problems(key, path + (key,)) + value_problems(value, path + (key,))
        return out
    if isinstance(data, list):
        return [d for k, item in enumerate(data) for d in value_problems(item, path + (k,))]
    return _scalar_problems(data, path)


def _scalar_problems(value: Any, path: Path_) -> list[Diagnostic]:
    if isinstance(value, str):
        at = first_invisible(value)
        return [invisible_at(value[at], None, path)] if at is not None else []
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST_WHOLE:
        return [Diagnostic("E103", f"number too long ({len(str(abs(value)))} digits)", None,
                           "a number is at most about 1.8e308, the largest float", path=path)]
    return []


class Expansion:
    """Plan data with its short forms written out (``data``), their problems (``problems``), and the way
    back from a path in the expanded data to the file's (:meth:`original`)."""

    def __init__(self, data: Any):
        # expanded path -> (written path, what of the rest is kept: "" all of it, "value" what follows it)
        self.moves: dict[Path_, tuple[Path_, str | None]] = {}
        self.problems: list[Diagnostic] = []
        self.data = self._expand(data, ())

    def original(self, path: Path_) -> Path_:
        """Where a path of the expanded data lies in the data as written."""
        for cut in range(len(path), -1, -1):
            move = self.moves.get(path[:cut])
            if move is not None:
                written, kept = move
                rest = path[cut:]
                if kept == "":
                    return written + rest
                return written + rest[1:] if kept and rest[:1] == (kept,) else written
        return path

    def report(self, diags: list[Diagnostic], locate: Callable[[Path_], Any]) -> list[Diagnostic]:
        """The short forms' problems (positioned by ``locate``), and ``diags`` at the file's paths less those
        that lie where a problem is (a placeholder stands there)."""
        bad = [d.path for d in self.problems]
        moved = [replace(d, path=self.original(d.path)) for d in diags]
        return ([replace(d, span=locate(d.path)) for d in self.problems] +
                [d for d in moved if not any(d.path[:len(p)] == p for p in bad)])

    def _expand(self, node: Any, path: Path_) -> Any:
        if isinstance(node, list):
            return [self._expand(item, path + (k,)) for k, item in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            at = path + (key,)
            if key in _SELECTOR_KEYS and isinstance(value, (str, list)):
                out[key] = self._selectors(value, at)
            elif key in _PAIRS and isinstance(value, dict):
                out[key] = self._pairs(value, _PAIRS[key], at)
            elif key in _LENGTH_KEYS and isinstance(value, str):
                out[key] = self._length(value, key, at)
            else:
                out[key] = self._expand(value, at)
        return out

    def _pairs(self, mapping: dict, name: str, path: Path_) -> list:
        out = []
        for k, (key, value) in enumerate(mapping.items()):
            self.moves[path + (k,)] = (path + (key,), "value")
            out.append({name: key, "value": self._expand(value, path + (key,))})
        return out

    def _selectors(self, value: str | list, path: Path_) -> list:
        if isinstance(value, str):
            terms = self._terms(value, path)
            for k in range(len(terms)):
                self.moves[path + (k,)] = (path, None)
            return terms
        out: list = []
        for k, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool) and item >= 0:
                item = str(item)  # a module of an nn.Sequential: YAML reads [0, 2] as numbers
            if not isinstance(item, str):
                if len(out) != k:
                    self.moves[path + (len(out),)] = (path + (k,), "")
                out.append(self._expand(item, path + (k,)))
                continue
            for term in self._terms(item, path + (k,)):
                self.moves[path + (len(out),)] = (path + (k,), None)
                out.append(term)
        return out

    def _terms(self, text: str, path: Path_) -> list:
        """The selector terms a string writes, as data; its problems (syntax, E209) are kept at ``path``."""
        problem = _selector_problem(text)
        if problem is None:
            try:
                plan, _ = parse_text("freeze " + text, defer_imports=True)
            except SpecError as exc:
                self.problems += [_at(d, path, _SELECTOR_HINT if d.code == "E100" else d.hint)
                                  for d in exc.diagnostics]
                return [_ANY_TERM]
            stmt = plan.statements[0]
            if stmt.at is None and stmt.norms is None:
                return [_plain(t.model_dump(mode="json")) for t in stmt.selectors]
            problem = "holds more than selectors"
        self.problems.append(Diagnostic("E100", f"'{text}' is not a selector: it {problem}", None,
                                        _SELECTOR_HINT, path=path))
        return [_ANY_TERM]

    def _length(self, text: str, key: str, path: Path_) -> Any:
        pattern, expected = _LENGTH_KEYS[key]
        self.moves[path] = (path, None)
        found = pattern.fullmatch(text)
        if found is None:
            self.problems.append(Diagnostic("E108", f"'{key}' must be {expected}, got \"{text[:40]}\"", None,
                                            "or the long form, e.g. {value: 500, unit: step}", path=path))
            return {"value": 1.0, "unit": "step"}  # a placeholder, so that the rest of the plan is checked
        if found.group("share") is not None:
            return {"value": float(found.group("share")), "unit": "percent"}
        return {"value": float(found.group("value")), "unit": found.group("unit").rstrip("s")}


_ANY_TERM = {"atoms": [{"kind": "name", "pattern": "*"}]}  # a placeholder for a selector with problems
_SELECTOR_HINT = "a selector string is written as in a spec: e.g. head.*, !norm, a & !b, ndim<2 or @*Norm/i"


def _selector_problem(text: str) -> str | None:
    if not text.strip():
        return "is empty"
    bad = next((ch for ch in text if ch in ";#\n\r"), None)
    return f"holds {bad!r}" if bad is not None else None


def _at(diag: Diagnostic, path: Path_, hint: str | None) -> Diagnostic:
    return Diagnostic(diag.code, diag.message, None, hint, diag.severity, path)


def _plain(node: Any) -> Any:
    """Plan data without spans (as ``dump_plan`` writes it)."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if not k.endswith("span")}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node

