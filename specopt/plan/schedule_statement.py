"""The ``schedule`` statement: phases joined by ``then``, checked against the table of schedule kinds.

    schedule linear 500 steps from x0.01 then cosine 9500 steps to x0.1
    schedule weight_decay cosine from 0.04 to 0.4

The statement's words are read in :meth:`ScheduleStatement.from_parse`: an
optional hyperparameter, then phases, each a kind, an optional length and
``NAME VALUE`` arguments (a bare factor fills the kind's positional argument).
Everything else (known kinds and arguments, value kinds and ranges, lengths,
the order of phases) is checked by :meth:`ScheduleStatement.check` from
:data:`specopt.catalog.schedule_kinds.SCHEDULE_KINDS`, so a plan written as JSON or YAML gets
the same checks. Turning phases into times is :mod:`specopt.plan.timing`'s work.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, NamedTuple, Union

from pydantic import Field

from ..diagnostics import Diagnostic, Span, SpecError, did_you_mean
from .nodes import Length, Milestones, Node, Relative, show_value
from .options import option_hint
from ..catalog.registry import OptimizerInfo, check_bounds
from ..catalog.schedule_kinds import SCHEDULE_KINDS, ArgInfo, ScheduleKind, cycled_hyper
from .statements import CheckContext, Parts, Statement

ArgValue = Union[bool, int, float, str, Relative, Length, Milestones]
# Words users carry over from other schedulers, and the argument they mean here.
_ARG_SYNONYMS = {"floor": "to", "min": "to", "eta_min": "to", "end": "to", "final": "to", "start": "from",
                 "initial": "from", "period": "every", "t_0": "every", "interval": "every", "t_mult": "mult",
                 "milestones": "at", "step_size": "every", "max": "peak", "max_lr": "peak",
                 "pct_start": "pct", "div_factor": "div", "final_div_factor": "final_div", "min_lr": "floor"}
_KIND_WORDS = {"level": "x0.1 or a number", "factor": "a factor like x0.1", "number": "a number",
               "int": "a whole number", "length": "a length such as 500 steps, 5 epochs or 10%",
               "lengths": "points in time such as 30,60,90 epochs", "bool": "true or false",
               "name": "a name"}


class Item(NamedTuple):
    """One word or value of a ``schedule`` statement as parsed: its type, value, span and text."""

    type: str
    value: Any
    span: Span
    text: str


class PhaseArg(Node):
    """One argument of a phase: ``to x0.1``, ``every 10 epochs``; ``value_span`` covers the value."""

    name: str
    value: ArgValue
    value_span: Span | None = None


class Phase(Node):
    """One phase: a kind from the schedule table, an optional length and its arguments."""

    kind: str
    kind_span: Span | None = None
    length: Length | None = None
    args: tuple[PhaseArg, ...] = ()

    def arg(self, name: str) -> PhaseArg | None:
        """The argument called ``name``, if the phase gives it."""
        return next((a for a in self.args if a.name == name), None)

    @property
    def info(self) -> ScheduleKind | None:
        """The table entry of this phase's kind (``None`` when the kind is unknown)."""
        return SCHEDULE_KINDS.get(self.kind)


class ScheduleStatement(Statement):
    """``schedule [HYPERPARAMETER] PHASE [then PHASE ...]``: move one hyperparameter over the run."""

    keyword: ClassVar[str] = "schedule"
    role: ClassVar[str] = "schedule"
    syntax: ClassVar[str] = "schedule [HYPERPARAMETER] KIND [LENGTH] [ARG VALUE ...] [then ...]"
    summary: ClassVar[str] = ("Move a hyperparameter (lr by default) over the run, phase by phase; "
                              "every group keeps its ratio.")
    example: ClassVar[str] = "schedule warmup 5 epochs then cosine to x0.01"

    kind: Literal["schedule"] = "schedule"
    hyper: str = "lr"
    hyper_span: Span | None = None
    phases: tuple[Phase, ...] = Field(min_length=1)

    def unique_key(self) -> tuple[str, str]:
        return (f"schedule {self.hyper}", f"schedule for '{self.hyper}'")

    @property
    def text(self) -> str:
        """The statement as a spec writes it (canonical spacing; values as parsed)."""
        head = ["schedule"] + ([self.hyper] if self.hyper_span is not None or self.hyper != "lr" else [])
        return " ".join(head) + " " + " then ".join(_phase_text(p) for p in self.phases)

    def check(self, ctx: CheckContext) -> list[Diagnostic]:
        diags = [d for phase in self.phases for d in _check_phase(phase)] + _check_order(self.phases)
        infos = ctx.every
        if len(infos) > 1:
            return diags + self._check_several(infos, ctx.statements)
        return diags + (self.check_options(ctx.optimizer, ctx.statements) if ctx.optimizer else [])

    def _check_several(self, infos: list[OptimizerInfo], statements: tuple) -> list[Diagnostic]:
        """With several optimizers the schedule moves the groups that have the hyperparameter."""
        holders = [info for info in infos if self.hyper in schedulable(info)]
        if not holders:
            names = list(dict.fromkeys(n for info in infos for n in schedulable(info)))
            which = " nor ".join(info.name for info in infos)
            return [Diagnostic("E204", f"neither {which} has a hyperparameter '{self.hyper}' to schedule",
                               self.hyper_span or self.span, option_hint(self.hyper, names, "they", verb="take"))]
        found = [d for info in infos for phase in self.phases for d in _check_cycle(phase, info, statements)]
        return list(dict.fromkeys(found))

    def check_options(self, info: OptimizerInfo, statements: tuple = ()) -> list[Diagnostic]:
        if self.hyper not in schedulable(info):
            return [Diagnostic("E204", f"{info.name} has no hyperparameter '{self.hyper}' to schedule",
                               self.hyper_span or self.span, option_hint(self.hyper, schedulable(info), info.name))]
        return [d for phase in self.phases for d in _check_cycle(phase, info, statements)]

    @property
    def cycles(self) -> bool:
        """Whether a ``onecycle`` phase moves momentum (or beta1) opposite to this schedule's value."""
        return any(_cycles(phase) for phase in self.phases)

    @classmethod
    def from_parse(cls, parts: Parts) -> "ScheduleStatement":
        items = list(parts.children)
        hyper, hyper_span = "lr", None
        if _names_hyper(items):
            word = items.pop(0)
            hyper, hyper_span = word.value, word.span
        phases = [_phase(chunk, parts.span) for chunk in _split_then(items, parts.span)]
        return cls(hyper=hyper, hyper_span=hyper_span, phases=tuple(phases), span=parts.span)


def _phase_text(phase: Phase) -> str:
    words = [phase.kind] + ([phase.length.text] if phase.length else [])
    positional = phase.info.positional if phase.info else None
    for arg in phase.args:
        value = _arg_text(arg.value)
        words += [value] if arg.name == positional and isinstance(arg.value, Relative) else [arg.name, value]
    return " ".join(words)


def _arg_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return show_value(value) if not isinstance(value, float) else f"{value:g}"


def schedulable(info: OptimizerInfo) -> list[str]:
    """The hyperparameters of ``info`` a schedule can move: numeric per-group options, and beta1/beta2."""
    names = [o.name for o in info.options if o.per_group and o.kind.rstrip("?") in ("number", "int")]
    if any(o.name == "betas" for o in info.options):
        names += ["beta1", "beta2"]
    return names


# --- reading the words of a schedule statement -----------------------------------------------

def _names_hyper(items: list) -> bool:
    """Whether the first word names a hyperparameter rather than the first phase's kind."""
    if len(items) < 2 or items[0].type != "word" or items[0].value in SCHEDULE_KINDS:
        return False
    return items[1].type == "word" and items[1].value in SCHEDULE_KINDS


def _split_then(items: list, span: Span | None) -> list[list]:
    chunks: list[list] = [[]]
    for item in items:
        if item.type == "word" and item.value == "then":
            if not chunks[-1]:
                raise _syntax(item.span, "'then' needs a phase before it", "e.g. warmup 5 epochs then cosine")
            chunks.append([])
        else:
            chunks[-1].append(item)
    if not chunks[-1]:
        raise _syntax(Span(start=span.end, end=span.end) if span else None, "a phase is missing after 'then'",
                      "e.g. then cosine to x0.01")
    return chunks


def _phase(items: list, span: Span | None) -> Phase:
    head, rest = items[0], items[1:]
    if head.type != "word":
        raise _syntax(head.span, f"a phase starts with its kind, not {head.text}",
                      "kinds: " + ", ".join(SCHEDULE_KINDS))
    length = None
    if rest and rest[0].type == "length":
        length = rest.pop(0).value
    args = _args(head.value, rest)
    end = (items[-1].span.end if items[-1].span else None)
    phase_span = Span(start=head.span.start, end=end) if head.span and end is not None else span
    return Phase(kind=head.value, kind_span=head.span, length=length, args=tuple(args), span=phase_span)


def _args(kind: str, items: list) -> list[PhaseArg]:
    info = SCHEDULE_KINDS.get(kind)
    args, k = [], 0
    while k < len(items):
        item = items[k]
        if item.type == "factor" and info is not None and info.positional:
            args.append(PhaseArg(name=info.positional, value=item.value, value_span=item.span, span=item.span))
            k += 1
            continue
        if item.type != "word":
            raise _syntax(item.span, f"unexpected {item.text} in a '{kind}' phase", _takes(info))
        if k + 1 >= len(items):
            raise _syntax(item.span, f"'{item.value}' needs a value", _takes(info))
        value = items[k + 1]
        joined = Span(start=item.span.start, end=value.span.end) if item.span and value.span else None
        args.append(PhaseArg(name=item.value, value=value.value, value_span=value.span, span=joined))
        k += 2
    return args


def _takes(info: ScheduleKind | None) -> str | None:
    if info is None:
        return None
    words = [f"{a.name} {_KIND_WORDS.get(a.kind, '/'.join(a.choices))}" for a in info.args]
    return f"{info.name} takes: " + "; ".join(words) if words else f"{info.name} takes no arguments"


def _syntax(span: Span | None, message: str, hint: str | None) -> SpecError:
    return SpecError([Diagnostic("E100", message, span, hint)])


# --- checks against the table ----------------------------------------------------------------

def _check_phase(phase: Phase) -> list[Diagnostic]:
    info = phase.info
    if info is None:
        return [Diagnostic("E213", f"unknown schedule kind '{phase.kind}'", phase.kind_span or phase.span,
                           did_you_mean(phase.kind, SCHEDULE_KINDS) or "kinds: " + ", ".join(SCHEDULE_KINDS))]
    diags = _check_length(phase.length, phase.span) if phase.length else []
    seen: set[str] = set()
    for arg in phase.args:
        spec = info.arg(arg.name)
        if arg.name in seen:
            diags.append(Diagnostic("E203", f"'{arg.name}' is given twice", arg.span, "give each argument once"))
        elif spec is None:
            diags.append(Diagnostic("E214", f"{info.name} has no argument '{arg.name}'", arg.span,
                                    _arg_hint(arg.name, info)))
        else:
            diags += _check_arg(arg, spec)
        seen.add(arg.name)
    missing = [a.name for a in info.args if a.required and a.name not in seen]
    if missing:
        diags.append(Diagnostic("E214", f"{info.name} needs {' and '.join(repr(m) for m in missing)}",
                                phase.span, f"e.g. {info.example.removeprefix('schedule ')}"))
    return diags


def _arg_hint(name: str, info: ScheduleKind) -> str | None:
    close = did_you_mean(name, [a.name for a in info.args])
    meant = _ARG_SYNONYMS.get(name.lower())
    if close is None and meant is not None and info.arg(meant) is not None:
        close = f"did you mean '{meant}'? ({info.arg(meant).summary})"
    return close or _takes(info)


def _check_arg(arg: PhaseArg, spec: ArgInfo) -> list[Diagnostic]:
    value, span = arg.value, arg.value_span or arg.span
    problem = _kind_problem(value, spec)
    if problem:
        return [Diagnostic("E206", f"'{arg.name}' takes {problem}, not {show_value(value)}", span)]
    if isinstance(value, (Length, Milestones)):
        return _check_length(value, span)
    number = value.factor if isinstance(value, Relative) else value
    why = check_bounds(spec.bounds, number) if not isinstance(number, (str, bool)) else None
    return [Diagnostic("E207", f"'{arg.name}' {why}, got {show_value(value)}", span)] if why else []


def _kind_problem(value, spec: ArgInfo) -> str | None:
    """What ``value`` should have been for ``spec`` (``None`` when it fits)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    fits = {"level": isinstance(value, Relative) or number, "factor": isinstance(value, Relative),
            "number": number, "int": number and float(value).is_integer(),
            "length": isinstance(value, Length), "lengths": isinstance(value, (Length, Milestones)),
            "bool": isinstance(value, bool), "name": isinstance(value, str) and not isinstance(value, bool),
            "choice": isinstance(value, str) and value in spec.choices}[spec.kind]
    if fits:
        return None
    if spec.kind in ("length", "lengths") and number:
        return _KIND_WORDS[spec.kind] + f" (with a unit: {value:g} steps or {value:g} epochs)"
    return _KIND_WORDS.get(spec.kind) or " or ".join(spec.choices)


def _check_length(length: Length | Milestones, span: Span | None) -> list[Diagnostic]:
    values = length.values if isinstance(length, Milestones) else (length.value,)
    span = length.span or span
    if any(v <= 0 or v != v for v in values):
        return [Diagnostic("E212", f"a length must be greater than 0, got {length.text}", span)]
    if any(v == math.inf for v in values):
        return [Diagnostic("E212", f"a length must be finite, got {length.text}", span)]
    if getattr(length, "unit", None) == "percent" and any(v > 100 for v in values):
        return [Diagnostic("E212", f"a share of the run is at most 100%, got {length.text}", span)]
    if isinstance(length, Milestones) and list(values) != sorted(set(values)):
        return [Diagnostic("E212", f"milestones must increase, got {length.text}", span)]
    return []


def _cycles(phase: Phase) -> bool:
    if phase.kind != "onecycle":
        return False
    given = phase.arg("cycle_momentum")
    return given.value is not False if given else bool(phase.info.arg("cycle_momentum").default)


def _check_cycle(phase: Phase, info: OptimizerInfo, statements: tuple) -> list[Diagnostic]:
    """E219 for a onecycle that would move momentum the optimizer lacks, or another schedule sets."""
    if not _cycles(phase):
        return []
    moved = cycled_hyper([o.name for o in info.options])
    if moved is None:
        return [Diagnostic("E219", f"onecycle moves momentum opposite to the value, but {info.name} has "
                           "neither momentum nor betas", phase.span, "add cycle_momentum false to the phase")]
    clash = next((s for s in statements if getattr(s, "hyper", None) == moved and s.role == "schedule"), None)
    if clash is not None:
        return [Diagnostic("E219", f"onecycle moves {moved} opposite to the value, and another schedule "
                           f"sets {moved} too", phase.span, f"add cycle_momentum false to the phase, or drop "
                           f"the schedule for {moved}")]
    return []


def _check_order(phases: tuple[Phase, ...]) -> list[Diagnostic]:
    diags = []
    lengthless = [p for p in phases if p.length is None]
    for extra in lengthless[1:]:
        diags.append(Diagnostic("E215", "only one phase may leave out its length: it takes what remains "
                                "of the run", extra.span, "give this phase a length, e.g. 1000 steps or 10%"))
    for phase in phases[:-1]:
        if phase.info is not None and phase.info.last_only:
            diags.append(Diagnostic("E215", f"a '{phase.kind}' phase must be the last one", phase.span,
                                    "its value depends on the metrics seen, so no phase can follow it"))
    shares = sum(p.length.value for p in phases if p.length and p.length.unit == "percent")
    if shares > 100:
        diags.append(Diagnostic("E215", f"the phases take {shares:g}% of the run", phases[-1].span,
                                "shares of the run add up to at most 100%"))
    return diags
