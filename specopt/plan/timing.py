"""Timing: a spec's schedules as runnable programs, with every length in the scheduler's unit.

The compiled scheduler's ``step()`` is called once per optimizer step or once
per epoch. The unit is ``step`` as soon as any length of any schedule (or the
run, where a phase depends on it) is in steps; otherwise ``epoch``. Epochs are
then converted with the steps per epoch, a share of the run (``80%``) with
the run's length, and a phase without a length takes what the others leave
of the run. The run's length and the steps per epoch come from the spec
(``run 90 epochs``, ``steps_per_epoch 500``) or from the caller at compile
time, whose numbers win. A number that is needed but nobody gave is an error
at the phase that needs it, naming the number.
"""

from __future__ import annotations

import math
import numbers as numbers_
import sys
from dataclasses import dataclass, replace
from typing import Any, Sequence

from ..catalog.schedule_curves import Curve, cycle
from ..diagnostics import Diagnostic, Source, Span, SpecError
from .nodes import Length, Milestones, Relative
from .schedule_statement import Phase, ScheduleStatement
from ..catalog.curve_ops import MAX, SCALAR
from ..catalog.schedule_kinds import SCHEDULE_KINDS, Level, PhaseSpec, Program, argument, number_arg
from .statements import StepStatement

RUN_HINT = "add 'run N epochs' (or 'run N steps') to the spec, or pass epochs= or steps= when compiling"
SPE_HINT = "add 'steps_per_epoch N' to the spec, or pass steps_per_epoch= when compiling"


@dataclass(frozen=True)
class Timing:
    """The scheduler's unit, the run's length as given, and the steps per epoch.

    ``run_length`` and ``steps_per_epoch`` are ``None`` when nobody gave them.
    """

    unit: str
    run_length: Length | None
    steps_per_epoch: int | None

    @property
    def run(self) -> float | None:
        """The run's length in this timing's unit (``None`` when unknown or not convertible)."""
        return _in_unit(self.run_length, self.unit, self.steps_per_epoch)

    @property
    def run_text(self) -> str | None:
        """The run's length as a spec writes it (``90 epochs``)."""
        return self.run_length.text if self.run_length else None

    def counted_in(self, unit: str) -> "Timing":
        """The same timing with lengths counted in ``unit`` (``step`` or ``epoch``)."""
        return replace(self, unit=unit)

    def convert(self, length: Length, span: Span | None) -> float:
        """A length in scheduler units; a missing run length or steps per epoch raises E216."""
        if length.unit == "percent":
            if self.run is None:
                raise _missing(f"{length.text} is a share of the run, whose length nobody gave", span, RUN_HINT)
            return self.run * length.value / 100
        if length.unit == self.unit:
            return length.value
        if self.steps_per_epoch is None:
            raise _missing(f"{length.text} must be converted to steps, since the schedule runs in steps, "
                           "but nobody gave the steps per epoch", span, SPE_HINT)
        return length.value * self.steps_per_epoch


def plan_timing(plan, epochs: int | None = None, steps: int | None = None,
                steps_per_epoch: int | None = None, source: Source | None = None) -> Timing:
    """The timing of a plan's schedules; the caller's ``epochs``/``steps``/``steps_per_epoch`` win.

    They follow the rules of the spec's ``run`` and ``steps_per_epoch``: whole
    numbers of at least 1 (E207; E206 for what is not a number), and only one
    of ``epochs`` and ``steps`` (E236).
    """
    diags = given_problems(epochs=epochs, steps=steps, steps_per_epoch=steps_per_epoch)
    if diags:
        raise SpecError(diags, source)
    run = _run_length(plan, epochs, steps)
    spe = int(steps_per_epoch) if steps_per_epoch is not None else (
        plan.steps_per_epoch.steps if plan.steps_per_epoch else None)
    unit = "step" if "step" in _units(plan, run) else "epoch"
    return Timing(unit, run, spe)


def given_problems(**numbers) -> list[Diagnostic]:
    """What is wrong with the run's length and steps per epoch a caller gave to compile (``None``: not given)."""
    given = {name: value for name, value in numbers.items() if value is not None}
    diags = []
    if "epochs" in given and "steps" in given:
        diags.append(Diagnostic("E236", f"compile got the run's length twice: epochs={given['epochs']!r} and "
                                f"steps={given['steps']!r}", None, "give epochs= or steps=, not both"))
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, numbers_.Real):
            diags.append(Diagnostic("E206", f"compile's {name}= takes a whole number, not {_shown(value)}", None))
        elif not _whole_and_positive(value):
            diags.append(Diagnostic("E207", f"compile's {name}= must be a whole number of at least 1, got "
                                    f"{_shown(value)}", None, f"leave {name}= out to use the spec's"))
    return diags


def _whole_and_positive(value) -> bool:
    if isinstance(value, numbers_.Integral):
        return 1 <= value <= _LARGEST  # a longer run than a float holds cannot be counted
    return math.isfinite(value) and float(value).is_integer() and value >= 1


_LARGEST = int(sys.float_info.max)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _in_unit(run: Length | None, unit: str, spe: int | None) -> float | None:
    """The run's length in scheduler units (``None`` when unknown or not convertible)."""
    if run is None or (run.unit != unit and spe is None):
        return None
    if run.unit == unit:
        return run.value
    return run.value * spe if unit == "step" else run.value / spe


def _run_length(plan, epochs, steps) -> Length | None:
    """The caller's run length, else the spec's ``run``, else ``None``."""
    if epochs is not None or steps is not None:
        unit, value = ("epoch", epochs) if epochs is not None else ("step", steps)
        return Length(value=float(value), unit=unit)
    return plan.run.length if plan.run is not None else None


def _units(plan, run: Length | None) -> set[str]:
    """Every unit the schedules are written in; the run's unit too when a phase depends on the run."""
    units: set[str] = set()
    for stmt in plan.schedules:
        if isinstance(stmt, StepStatement):
            units.add(stmt.unit)
            continue
        for phase in stmt.phases:
            lengths = [phase.length] + [a.value for a in phase.args if isinstance(a.value, (Length, Milestones))]
            units |= {length.unit for length in lengths if length is not None}
            if phase.length is None and phase.info and phase.info.length_required(_given(phase)):
                units.add("percent")
    if "percent" in units and run is not None:
        units.add(run.unit)
    return units


def _given(phase: Phase) -> dict[str, Any]:
    return {a.name: a.value for a in phase.args}


# --- programs --------------------------------------------------------------------------------

def programs(plan, timing: Timing, source: Source | None = None) -> list[Program]:
    """Every schedule of ``plan`` as a :class:`Program`; raises :class:`SpecError` with every problem."""
    out, diags = [], []
    for stmt in plan.schedules:
        try:
            out.append(_program(stmt, timing))
        except SpecError as exc:
            diags += exc.diagnostics
    if diags:
        raise SpecError(diags, source)
    return out


def _program(stmt, timing: Timing) -> Program:
    if isinstance(stmt, StepStatement):
        every = timing.convert(Length(value=float(stmt.every), unit=stmt.unit), stmt.span)
        return Program("lr", (PhaseSpec("step", 0.0, None, {"every": every, "gamma": Level(stmt.gamma, True)}),))
    lengths = [timing.convert(p.length, p.length.span or p.span) if p.length else None for p in stmt.phases]
    lengths = _fill_remainder(stmt, lengths, timing)
    phases, start = [], 0.0
    for phase, length in zip(stmt.phases, lengths):
        phases.append(PhaseSpec(phase.kind, start, length, _args(phase, timing)))
        start += length or 0.0
    return Program(stmt.hyper, tuple(phases))


def _fill_remainder(stmt: ScheduleStatement, lengths: list, timing: Timing) -> list:
    """Give the phase without a length what the others leave of the run, where it needs it."""
    missing = [k for k, length in enumerate(lengths) if length is None]
    if not missing:
        return lengths
    k = missing[0]
    phase = stmt.phases[k]
    last_and_open = k == len(lengths) - 1 and not phase.info.length_required(_given(phase))
    if timing.run is None:
        if last_and_open:
            return lengths
        raise _missing(f"this '{phase.kind}' phase has no length, so it takes the rest of the run, whose "
                       "length nobody gave", phase.span, RUN_HINT + "; or give the phase a length")
    rest = timing.run - sum(x for x in lengths if x is not None)
    if rest <= 0:
        raise SpecError([Diagnostic("E216", f"the other phases already take the whole run "
                                    f"({timing.run_text}), leaving nothing for this '{phase.kind}' phase",
                                    phase.span, "shorten the other phases or lengthen the run")])
    lengths[k] = rest
    return lengths


def _args(phase: Phase, timing: Timing) -> dict[str, Any]:
    info = SCHEDULE_KINDS[phase.kind]
    out = {a.name: a.default for a in info.args if a.default is not None}
    for arg in phase.args:
        out[arg.name] = _value(arg.value, info.arg(arg.name).kind, timing, arg.value_span or arg.span)
    return out


def _value(value, kind: str, timing: Timing, span: Span | None):
    if isinstance(value, Relative):
        return Level(value.factor, True)
    if kind == "level":
        return Level(float(value), False)
    if isinstance(value, Length):
        converted = timing.convert(value, span)
        return (converted,) if kind == "lengths" else converted
    if isinstance(value, Milestones):
        return tuple(timing.convert(Length(value=v, unit=value.unit), span) for v in value.values)
    return value


def _missing(message: str, span: Span | None, hint: str) -> SpecError:
    return SpecError([Diagnostic("E216", message, span, hint)])


# --- ranges ----------------------------------------------------------------------------------

def check_ranges(progs: list[Program], plan, groups, infos, source: Source | None = None,
                 timing: Timing | None = None) -> None:
    """E217 when a schedule takes a group's hyperparameter out of the range its optimizer allows; with
    ``timing``, also E223 when it passes the float range within the run (:func:`check_float_range`).

    Every level a phase names (its start, end, peak, floor) is applied to each
    group's base value; a beta must stay below 1, a learning rate at least 0.
    ``infos`` holds each optimizer's entry by slot (a group names its slot);
    groups without the hyperparameter are not moved by its schedule.
    """
    from ..catalog.registry import check_bounds

    diags = []
    statements = {s.hyper: s for s in plan.schedules}
    for program in progs:
        for group in groups:
            if not _has(group.settings, program.hyper):
                continue
            info = infos[group.optimizer]
            bounds = "[0,1)" if program.hyper in ("beta1", "beta2") else _bounds(info, program.hyper)
            base = _base(group.settings, program.hyper)
            for level in _levels(program):
                value = level.of(base)
                why = check_bounds(bounds, value)
                if why:
                    diags.append(_out_of_range(statements[program.hyper], program.hyper, group.name,
                                               level, base, value, why))
                    break
    if timing is not None:
        diags += float_range_diagnostics(progs, plan, groups, timing)
    if diags:
        raise SpecError(diags, source)


def _has(settings, hyper: str) -> bool:
    return ("betas" if hyper in ("beta1", "beta2") else hyper) in settings


def _bounds(info, hyper: str) -> str:
    option = info.option(hyper)
    return option.bounds if option else ""


def _base(settings, hyper: str) -> float:
    if hyper in ("beta1", "beta2"):
        return float(settings["betas"][0 if hyper == "beta1" else 1])
    return float(settings[hyper])


def _levels(program: Program) -> list[Level]:
    out = [Level(1.0, True)]
    for phase in program.phases:
        out += [v for v in phase.args.values() if isinstance(v, Level)]
    return out


def _out_of_range(stmt, hyper: str, group: str, level: Level, base: float, value: float, why: str) -> Diagnostic:
    shown = f"{level} of {base:g}" if level.relative else str(level)
    return Diagnostic("E217", f"the schedule makes {hyper} {value:g} ({shown}) in param group '{group}', but "
                      f"{hyper} {why}", stmt.span, "change the schedule's levels or that group's base value")


# --- the float range ---------------------------------------------------------------------------

def check_schedules(plan, groups, timing: Timing, source: Source | None = None) -> list[Program]:
    """The plan's programs, checked as compiling checks them against the groups' values where nothing is built
    (E216, E223); raises :class:`SpecError` with every problem."""
    progs = programs(plan, timing, source)
    check_float_range(progs, plan, groups, timing, source)
    return progs


def check_float_range(progs: list[Program], plan, groups, timing: Timing, source: Source | None = None) -> None:
    """E223 when a schedule takes a group's value past the largest float within the run (see below)."""
    diags = float_range_diagnostics(progs, plan, groups, timing)
    if diags:
        raise SpecError(diags, source)


def float_range_diagnostics(progs: list[Program], plan, groups, timing: Timing) -> list[Diagnostic]:
    """E223 for each schedule that takes a group's value past the largest float within the run.

    The run is ``timing``'s where known, else it lasts until the last phase
    ends (the value holds from then on). A schedule open-ended in a run of
    unknown length is not checked: past the float range its values hold at
    the largest float, and the scheduler warns when it gets there (W316).
    """
    diags = []
    statements = {s.hyper: s for s in plan.schedules}
    for program in progs:
        curve = Curve(program)
        horizon = timing.run if timing.run is not None else curve.end_time
        members = [g for g in groups if _has(g.settings, program.hyper)]
        if horizon is None or not members:
            continue
        bases = [_base(g.settings, program.hyper) for g in members]
        t = first_past_range(curve, bases, math.floor(horizon))
        if t is None:
            continue
        group = next(g.name for g, base in zip(members, bases) if _past(curve, [base], t))
        within = f"the run ({timing.run_text})" if timing.run is not None else "the schedule"
        diags.append(Diagnostic("E223", f"the schedule makes {program.hyper} pass the largest float ({MAX:.4g}) "
                                f"in param group '{group}' at {timing.unit} {t:,}, within {within}",
                                statements[program.hyper].span, "let the schedule grow less, or give the phase "
                                "that grows a length so that it stops in time"))
    return diags


def first_past_range(curve: Curve, bases: Sequence[float], last: int) -> int | None:
    """The first whole time up to ``last`` at which a group's value passes the float range, or ``None``.

    Within a phase a value passes the float range by growing steadily (step,
    multistep, exponential) or at the peaks of growing restarts, so looking
    at the phase boundaries, the last time and each restart phase's last peak
    finds whether it does; bisection between two of those finds when.
    """
    marks = {0, last} | {m for b in curve.boundaries if 0 <= b <= last
                         for m in (math.floor(b) - 1, math.floor(b), math.ceil(b)) if 0 <= m <= last}
    marks |= {_peak_time(curve, t) for t in list(marks)}
    before = 0
    for mark in sorted(marks):
        if _past(curve, bases, mark):
            lo, hi = before, mark  # lo is in range (or 0), hi is not
            if _past(curve, bases, lo):
                return lo
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if _past(curve, bases, mid) else (mid, hi)
            return hi
        before = mark
    return None


def _past(curve: Curve, bases: Sequence[float], t: int) -> bool:
    """Whether a group's value at ``t``, or at the peak of the restart cycle running then, is past the range."""
    return any(MAX in curve.values(u, bases) for u in {t, _peak_time(curve, t)})


def _peak_time(curve: Curve, t: int) -> int:
    """The first whole time of the restart cycle running at ``t`` (``t`` itself outside restarts)."""
    k = curve.phase_index(t)
    phase = curve.program.phases[k]
    every = argument(phase, "every") if phase.kind == "cosine" else None
    if every is None or curve.track != "value":
        return t
    tau = SCALAR.clip(t - curve.starts[k], 0.0, curve.lengths[k])
    return min(max(math.ceil(t - cycle(tau, float(every), number_arg(phase, "mult"))[1]), 0), t)
