"""The plan: immutable Pydantic models for a parsed spec, validated as a whole.

A :class:`Plan` is what every later stage consumes: its statements in source
order, each a node of one of the kinds in :data:`STATEMENT_KINDS` (see
:mod:`specopt.plan.statements` and :mod:`specopt.plan.schedule_statement`). Each node keeps the
source span it came from. Constructing a plan runs :func:`check_plan`, so a
``Plan`` value is always valid: the same checks apply whether the plan came
from spec text or from JSON. A plan round-trips through JSON and publishes a
JSON Schema.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from ..diagnostics import Diagnostic, SpecError
from .extensions import find_optimizer, plan_optimizer_info
from .nodes import Length, Milestones, Node, Option, Relative, Selector, Term, Value  # noqa: F401 (re-exported)
from .layers_statement import LayersStatement
from .schedule_statement import Phase, PhaseArg, ScheduleStatement
from ..catalog.registry import OptimizerInfo, parse_clip_mode  # noqa: F401 (re-exported)
from .statements import (CheckContext, ClipStatement, FreezeStatement, GroupStatement, OptimizerStatement,
                         RunStatement, Statement, StepsPerEpochStatement, StepStatement, UnfreezeStatement)
from .loop_statements import AccumulateStatement, DeviceStatement, EmaStatement

__all__ = ["Plan", "STATEMENT_KINDS", "StatementNode", "check_plan", "Phase", "PhaseArg"]

# Every statement kind, in the order `specopt list` and the docs show them.
STATEMENT_KINDS: tuple[type[Statement], ...] = (
    OptimizerStatement, FreezeStatement, UnfreezeStatement, GroupStatement, LayersStatement, ClipStatement,
    ScheduleStatement, StepStatement, RunStatement, StepsPerEpochStatement,
    AccumulateStatement, EmaStatement, DeviceStatement,
)
BY_KEYWORD: dict[str, type[Statement]] = {cls.keyword: cls for cls in STATEMENT_KINDS}

StatementNode = Annotated[
    Union[OptimizerStatement, FreezeStatement, UnfreezeStatement, GroupStatement, LayersStatement, ClipStatement,
          ScheduleStatement, StepStatement, RunStatement, StepsPerEpochStatement,
          AccumulateStatement, EmaStatement, DeviceStatement],
    Field(discriminator="kind"),
]


class Plan(Node):
    """A whole spec: its statements in source order. Always valid once constructed."""

    version: Literal[1] = 1
    statements: tuple[StatementNode, ...] = ()

    @model_validator(mode="after")
    def _validate(self) -> "Plan":
        errors = [d for d in check_plan(self) if d.severity == "error"]
        if errors:
            raise SpecError(errors)
        return self

    def first(self, kind: str):
        """The first statement of ``kind`` (``"run"``, ``"ema"``...), or ``None``."""
        return next((s for s in self.statements if s.kind == kind), None)

    def of_role(self, role: str) -> list:
        """The statements whose kind plays ``role``.

        Roles: ``optimizer``, ``selection``, ``clip``, ``schedule``, ``timing`` and ``training``.
        """
        return [s for s in self.statements if s.role == role]

    @property
    def optimizers(self) -> list[OptimizerStatement]:
        """Every ``optimizer`` statement, in order."""
        return self.of_role("optimizer")

    @property
    def optimizer(self) -> OptimizerStatement | None:
        """The ``optimizer`` statement without ``for``, which takes every parameter no ``for`` takes."""
        return next((s for s in self.optimizers if s.takes_rest), None)

    @property
    def optimizer_info(self) -> OptimizerInfo:
        """The registry entry of the chosen optimizer (the default when none is named).

        An import path must have been imported with permission first (see
        :func:`specopt.plan.extensions.import_diagnostics`); otherwise this raises the refusal.
        """
        return plan_optimizer_info(self.optimizer)

    @property
    def clip(self) -> ClipStatement | None:
        """The ``clip`` statement, if any."""
        return next(iter(self.of_role("clip")), None)

    @property
    def schedules(self) -> list[ScheduleStatement | StepStatement]:
        """The schedule statements (``schedule`` and ``step``), one per hyperparameter."""
        return self.of_role("schedule")

    @property
    def schedule(self) -> ScheduleStatement | StepStatement | None:
        """The learning-rate schedule, if any."""
        return next((s for s in self.schedules if s.hyper == "lr"), None)

    @property
    def run(self) -> RunStatement | None:
        """The ``run`` statement, if any."""
        return self.first("run")

    @property
    def steps_per_epoch(self) -> StepsPerEpochStatement | None:
        """The ``steps_per_epoch`` statement, if any."""
        return self.first("steps_per_epoch")

    @property
    def accumulate(self) -> int:
        """Micro-batches per optimizer step: the ``accumulate`` statement's count, or 1."""
        stmt = self.first("accumulate")
        return stmt.count if stmt else 1

    @property
    def ema(self) -> EmaStatement | None:
        """The ``ema`` statement, if any."""
        return self.first("ema")

    @property
    def device(self) -> DeviceStatement | None:
        """The ``device`` statement, if any."""
        return self.first("device")

    @property
    def timed(self) -> list[FreezeStatement]:
        """The freeze and unfreeze statements that apply from a point of the run (``at``)."""
        return [s for s in self.of_role("selection") if isinstance(s, FreezeStatement) and s.timed]


def check_plan(plan: Plan) -> list[Diagnostic]:
    """Every problem of a plan: each statement's own checks, repeated statements, the optimizers' names."""
    diags, infos = _check_repeats(plan.statements), []
    for stmt in plan.optimizers:
        info, found = find_optimizer(stmt)
        infos.append((stmt, info))
        diags += found
    default = plan.optimizer
    info = next((i for s, i in infos if s is default), None) if default else find_optimizer(None)[0]
    ctx = CheckContext(plan.statements, info, tuple(infos))
    for stmt in plan.statements:
        diags += stmt.check(ctx)
    return diags


def _check_repeats(statements) -> list[Diagnostic]:
    diags, seen = [], set()
    for s in statements:
        key = s.unique_key()
        if key is None:
            continue
        if key[0] in seen:
            diags.append(Diagnostic("E202", f"a second {key[1]}", s.span,
                                    f"a spec has at most one {key[1]}; remove one"))
        seen.add(key[0])
    return diags
