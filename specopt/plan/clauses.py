"""The clauses a ``freeze`` or ``unfreeze`` may end with: ``at``, ``warmup`` and ``norms=``.

    freeze backbone norms=eval
    unfreeze backbone.layer4 at epoch 3
    unfreeze encoder.layer.{10,11} at step 2000 warmup 500 steps

``at epoch N`` / ``at step N`` / ``at P%`` applies the statement from that
point of the run on (a moment is kept as a :class:`~specopt.plan.nodes.Length`:
``epoch 3`` is ``Length(3, "epoch")``, its span the whole clause, as a warmup's); ``warmup LENGTH`` ramps the learning
rate of the parameters the statement unfreezes linearly from 0; ``norms=eval``
keeps the norm layers of the selection in eval mode. This module reads them
from the parse tree and checks them; turning moments into times is
:mod:`specopt.runtime.unfreezing`' work.
"""

from __future__ import annotations

import math
from typing import Any

from ..diagnostics import Diagnostic, Span, SpecError
from .nodes import UNIT_WORDS, Length

NORM_MODES = ("eval", "train")
_FIELDS = {"moment": "at", "ramp": "warmup", "norms": "norms"}  # grammar rule -> node field (and word)


def moment_text(at: Length) -> str:
    """A moment as a spec writes it: ``epoch 3``, ``step 2000``, ``50%``."""
    if at.unit == "percent":
        return f"{at.value:g}%"
    return f"{at.unit} {at.value:g}"


def read_clauses(trees: list, parts) -> dict[str, Any]:
    """The clauses of a freeze or unfreeze statement as node fields (``at``, ``warmup``, ``norms``).

    A clause given twice is E203.
    """
    fields: dict[str, Any] = {}
    for tree in trees:
        span = Span(start=parts.offset + tree.meta.start_pos, end=parts.offset + tree.meta.end_pos)
        field = _FIELDS[tree.data]
        if field in fields:
            raise SpecError([Diagnostic("E203", f"'{field}' is given twice", span, f"give '{field}' once")])
        fields[field] = _READERS[tree.data](tree.children, span, parts)
        if field == "norms":
            fields["norms_span"] = span
    return fields


def _moment(children: list, span: Span, parts) -> Length:
    if len(children) == 1:
        return Length(value=float(str(children[0])[:-1]), unit="percent", span=span)
    unit, number = children
    if str(unit) not in ("epoch", "step"):
        raise SpecError([Diagnostic("E100", f"a moment is written 'at {UNIT_WORDS[str(unit)]} N', not "
                                    f"'at {unit} N'", parts.span_of(unit),
                                    "e.g. at epoch 3, at step 2000 or at 50%")])
    return Length(value=float(parts.whole(number)), unit=UNIT_WORDS[str(unit)], span=span)


def _ramp(children: list, span: Span, parts) -> Length:
    return children[0].model_copy(update={"span": span})


def _norms(children: list, span: Span, parts) -> str:
    key, value = children
    if str(key) != "norms":
        raise SpecError([Diagnostic("E100", f"unexpected '{key}='; a freeze or unfreeze sets only norms=",
                                    parts.span_of(key), "set hyperparameters with a group statement, "
                                    "e.g. group head.* lr=1e-3")])
    return str(value)


_READERS = {"moment": _moment, "ramp": _ramp, "norms": _norms}


def check_clauses(stmt) -> list[Diagnostic]:
    """Everything wrong with the clauses of a freeze or unfreeze statement."""
    diags = []
    if stmt.at is not None:
        diags += _check_point(stmt.at, stmt.at.span or stmt.span)
    if stmt.warmup is not None:
        diags += _check_warmup(stmt)
    if stmt.norms is not None and stmt.norms not in NORM_MODES:
        diags.append(Diagnostic("E206", f"norms takes eval or train, not '{stmt.norms}'",
                                stmt.norms_span or stmt.span,
                                "norms=eval keeps the selected norm layers' running statistics fixed"))
    return diags


def _check_point(at: Length, span: Span | None) -> list[Diagnostic]:
    if not at.value > 0:
        return [Diagnostic("E212", f"a moment is after the start of the run, got {moment_text(at)}", span,
                           "without 'at', a statement applies from the start")]
    if at.unit == "percent" and at.value > 100:
        return [Diagnostic("E212", f"a share of the run is at most 100%, got {moment_text(at)}", span)]
    if at.unit != "percent" and not (math.isfinite(at.value) and at.value.is_integer()):
        return [Diagnostic("E212", f"a moment is a whole number of {at.unit}s, got {moment_text(at)}", span,
                           "e.g. at epoch 3, at step 2000 or at 50%")]
    return []


def _check_warmup(stmt) -> list[Diagnostic]:
    span = stmt.warmup.span or stmt.span
    if not stmt.freezes and stmt.at is None:
        return [Diagnostic("E230", "a warmup ramps what the statement unfreezes at a point of the run, but "
                           "this statement has no 'at'", span,
                           "e.g. unfreeze encoder.layer.11 at step 2000 warmup 500 steps")]
    if stmt.freezes:
        return [Diagnostic("E230", "only an unfreeze can ramp the learning rate of what it unfreezes", span,
                           "move the warmup to the unfreeze statement")]
    length = stmt.warmup
    if not length.value > 0:
        return [Diagnostic("E212", f"a length must be greater than 0, got {length.text}", span)]
    if not math.isfinite(length.value):
        return [Diagnostic("E212", f"a warmup must end, got {length.text}", span)]
    if length.unit == "percent" and length.value > 100:
        return [Diagnostic("E212", f"a share of the run is at most 100%, got {length.text}", span)]
    return []
