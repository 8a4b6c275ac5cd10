"""Owners: which of a spec's optimizers trains each parameter.

A spec builds one optimizer, or several:

    optimizer adamw lr=3e-4 betas=(0.9, 0.95) weight_decay=0.1
    optimizer muon for ndim==2 & !embed* & !lm_head lr=0.02

Each ``optimizer ... for SELECTORS`` takes the trainable parameters its
selectors pick; the optimizer without ``for`` (adam with torch's defaults when
the spec names none) takes every other one. A parameter two ``for`` clauses
pick is an error, and so is one its optimizer cannot take (Muon takes only
2-D parameters): every trainable parameter is in exactly one optimizer.
Optimizers are numbered in *slots*: 0 for the one without ``for``, then the
others in the order the spec writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .cascade import Rules, Setting
from ..diagnostics import Diagnostic, Span
from ..plan.extensions import plan_optimizer_info
from ..catalog.registry import OptimizerInfo
from ..plan.statements import OptimizerStatement

SHOWN = 5


@dataclass(frozen=True)
class OptimizerSlot:
    """One optimizer of a spec: its statement (``None``: the default adam), entry and base values."""

    index: int
    statement: OptimizerStatement | None
    info: OptimizerInfo
    base: Mapping[str, Setting]


def slot_statements(plan) -> list[OptimizerStatement | None]:
    """The optimizer statements in slot order: the one without ``for`` (or ``None``), then the others."""
    return [plan.optimizer] + [s for s in plan.optimizers if not s.takes_rest]


def make_slots(plan, defaults: Sequence[Mapping[str, Any]], origin_of) -> tuple[OptimizerSlot, ...]:
    """A slot per optimizer, each with its base values: the constructor's defaults, then the statement's."""
    out = []
    for k, (stmt, found) in enumerate(zip(slot_statements(plan), defaults)):
        info = plan_optimizer_info(stmt)
        origin = origin_of(plan.statements.index(stmt)) if stmt is not None else None
        base = {key: Setting(found[key], None) for key in info.group_keys if key in found}
        for opt in stmt.options if stmt is not None else ():
            if opt.key in base:
                base[opt.key] = Setting(opt.value, origin)
        out.append(OptimizerSlot(k, stmt, info, base))
    return tuple(out)


def claims(plan, origin_of, matcher) -> Rules:
    """The ``for`` clauses as rules over the selector atoms, in slot order (slot = position + 1)."""
    return Rules(plan.statements, origin_of, matcher,
                 chosen=lambda s: isinstance(s, OptimizerStatement) and not s.takes_rest)


def owner(hits: frozenset[int], names, owners: Rules) -> tuple[int, ...]:
    """The slots whose ``for`` clause picks a parameter with these atoms (empty: the default's)."""
    return tuple(k + 1 for k, rule in enumerate(owners.rules) if rule.selects(hits, names))


# --- problems ----------------------------------------------------------------------------------

def ownership_errors(slots: Sequence[OptimizerSlot], owned: Sequence[tuple[int, ...]], trained: Sequence[bool],
                     names: Sequence[str], ranks: Sequence[int]) -> list[Diagnostic]:
    """E304 for trainable parameters two ``for`` clauses pick, E303 for ones their optimizer cannot take.

    The sequences run over the parameters in model order: the slots that
    claim each, whether it is ever trained, its name and its rank.
    """
    twice: dict[tuple[int, ...], list[str]] = {}
    refused: dict[int, list[str]] = {}
    for claimed, used, name, rank in zip(owned, trained, names, ranks):
        if not used:
            continue
        if len(claimed) > 1:
            twice.setdefault(claimed, []).append(name)
            continue
        slot = slots[claimed[0] if claimed else 0]
        if slot.info.param_ndims and rank not in slot.info.param_ndims:
            refused.setdefault(slot.index, []).append(f"{name} ({rank}-D)")
    return ([_twice(slots, claimed, found) for claimed, found in twice.items()]
            + [_refused(slots[k], found) for k, found in refused.items()])


def _twice(slots: Sequence[OptimizerSlot], claimed: tuple[int, ...], names: list[str]) -> Diagnostic:
    first, second = (slots[k] for k in claimed[:2])
    return Diagnostic("E304", f"{_count(names)} selected by the 'for' of {first.info.name} and of "
                      f"{second.info.name}: {_list(names)}", _span(second),
                      "every trainable parameter is in exactly one optimizer: narrow one 'for', e.g. with & !...")


def _refused(slot: OptimizerSlot, names: list[str]) -> Diagnostic:
    ranks = " or ".join(f"{r}-D" for r in slot.info.param_ndims)
    where = "takes" if slot.statement is None or slot.statement.takes_rest else "is given"
    return Diagnostic("E303", f"{slot.info.name} trains only {ranks} parameters, but it {where} "
                      f"{_count(names)} of other ranks: {_list(names)}", _span(slot),
                      "give those parameters another optimizer, e.g. optimizer muon for ndim==2 & ..., "
                      "or freeze them")


def _span(slot: OptimizerSlot) -> Span | None:
    return slot.statement.span if slot.statement is not None else None


def _count(names: list[str]) -> str:
    return f"{len(names)} parameter{'s' if len(names) != 1 else ''}"


def _list(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
