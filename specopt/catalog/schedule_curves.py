"""Closed forms of the schedule kinds: a schedule's value at any time, computed from the time alone.

A :class:`~specopt.catalog.schedule_kinds.Program` compiles into a :class:`Curve`. The value
at time ``t`` (the number of ``scheduler.step()`` calls so far) comes straight
from ``t`` by the closed form of the phase running then, never by replaying
steps, so resuming, previewing and plotting agree with training exactly.

Every closed form is ``p + (hi - lo) × s``: levels (``x0.1`` of each group's
base, or absolute) and a shape ``s`` shared by every param group. A form
returns that as a :class:`~specopt.catalog.schedule_kinds.Lerp`; the scheduler takes each
group's constants ``p`` and ``hi - lo`` once per phase and, per step, computes
the shape once and one multiply-add per group. The same value for all groups at
once is a :class:`~specopt.catalog.schedule_kinds.Mix` (``absolute + relative × base``),
which gives phase ends, continuity and previews. The one exception is
``plateau``, whose reductions depend on the metrics the training loop passes:
its curve holds the value the phase starts at, and :func:`plateau_value` applies
a number of reductions to one group.

Forms take an *ops* namespace (:mod:`specopt.catalog.curve_ops`), so one expression serves
one time (``SCALAR``, plain floats and :mod:`math`) and many (:func:`array_ops`
over numpy, torch float64...). This module never imports torch or numpy:
callers pass them in. A group's value past the float range is the largest
float (``specopt.catalog.curve_ops.MAX``), never an ``OverflowError`` (see :mod:`specopt.catalog.curve_ops`).
Where a form equals a torch scheduler it evaluates torch's own closed-form
expression in torch's order, so the values agree to the last bits.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Sequence

from .curve_ops import MAX, SCALAR, array_ops, cap, quiet_overflow
from .schedule_kinds import (SCHEDULE_KINDS, X1, ZERO, Divided, Lerp, Mix, PhaseSpec, Program, argument,
                        cycled_hyper, length_arg, level_arg, number_arg)

Form = Callable[[Any, Any], "Lerp"]
"""A prepared phase: ``form(tau, ops)`` is its value (a :class:`Lerp`) ``tau`` units after it started."""


# --- the closed forms ------------------------------------------------------------------------

def _pick(ops: Any, cond: Any, yes: Lerp, no: Lerp) -> Lerp:
    """``yes`` where ``cond`` holds, else ``no`` (elementwise over arrays of times)."""
    if ops is SCALAR:
        return yes if cond else no
    a, b = yes.mix(), no.mix()
    return Lerp(Mix(_where(ops, cond, a.absolute, b.absolute), _where(ops, cond, a.relative, b.relative)))


def _constant(phase: PhaseSpec, start: Mix) -> Form:
    value = number_arg(phase, "value", required=False)
    held = Lerp(start if value is None else Mix(0.0, value))
    return lambda tau, ops: held


def _ramp(start: Mix, end: Mix, length: float) -> Form:
    done = Lerp(end, key="end")
    if length == 0:
        return lambda tau, ops: done
    return lambda tau, ops: _pick(ops, tau >= length, done, Lerp(start, end, start, tau / length))


def _linear(phase: PhaseSpec, start: Mix) -> Form:
    return _ramp(start, level_arg(phase, "to"), length_arg(phase))


def _warmup(phase: PhaseSpec, start: Mix) -> Form:
    return _ramp(start, Mix.of_level(X1), length_arg(phase))


def _cosine(phase: PhaseSpec, start: Mix) -> Form:
    floor = level_arg(phase, "to")
    if argument(phase, "every") is not None:
        return _restarts(phase, start, floor)
    length = length_arg(phase)
    if length == 0:
        return lambda tau, ops: Lerp(floor)
    return _from_start(start, lambda tau, ops: Lerp(floor, start, floor, (1 + ops.cos(math.pi * tau / length)) / 2))


def _from_start(start: Mix, form: Form) -> Form:
    """``form``, but exactly ``start`` at time 0, as torch's recursive schedulers begin at the base.

    ``floor + (start - floor) * 1`` can miss ``start`` by an ulp.
    """
    first = Lerp(start, key="start")
    return lambda tau, ops: _pick(ops, tau <= 0, first, form(tau, ops))


def _restarts(phase: PhaseSpec, start: Mix, floor: Mix) -> Form:
    period, mult, decay = float(argument(phase, "every")), number_arg(phase, "mult"), number_arg(phase, "decay")
    if period <= 0:
        raise ValueError("cosine: 'every' must be longer than 0")

    def form(tau, ops):
        n, t_cur, t_i = cycle(tau, period, mult, ops)
        shape = (1 + ops.cos(math.pi * t_cur / t_i)) / 2
        if decay == 1:
            return Lerp(floor, start, floor, shape)
        return Lerp(floor, start * ops.power(decay, n), floor, shape, n)
    length = phase.length
    if length is None or length <= 0 or cycle(float(length), period, mult)[1] != 0:
        return form
    # A length that ends a cycle ends at that cycle's floor, not at the next cycle's peak (as timm's
    # cycle_limit and transformers' hard restarts end): the phase holds the floor, and the next starts there.
    end = Lerp(floor, key="end")
    return lambda tau, ops: _pick(ops, tau >= length, end, form(tau, ops))


def cycle(tau: Any, period: float, mult: float, ops: Any = SCALAR) -> tuple[Any, Any, Any]:
    """Warm restarts: the cycle ``n`` running at ``tau``, the time into it and its length.

    Cycle ``n`` lasts ``period * mult ** n``. The logarithm's rounding is
    corrected at the cycle boundaries, so a restart falls on the exact step.
    """
    if mult == 1:
        n = ops.floor(tau / period)
        return n, tau - n * period, period

    def begins(k):
        return period * (mult ** k - 1) / (mult - 1)
    n = ops.floor(ops.log(tau / period * (mult - 1) + 1) / math.log(mult))
    n = ops.where(begins(n + 1) <= tau, n + 1, n)
    n = ops.where(begins(n) > tau, n - 1, n)
    return n, tau - begins(n), period * mult ** n


def _step(phase: PhaseSpec, start: Mix) -> Form:
    every, gamma = number_arg(phase, "every"), number_arg(phase, "gamma")
    if every <= 0:
        raise ValueError("step: 'every' must be longer than 0")
    return lambda tau, ops: Lerp(ZERO, start, ZERO, ops.power(gamma, ops.floor(tau / every)))


def _multistep(phase: PhaseSpec, start: Mix) -> Form:
    at, gamma = tuple(float(m) for m in argument(phase, "at") or ()), number_arg(phase, "gamma")
    if not at:
        raise ValueError("multistep needs 'at': the milestones")
    return lambda tau, ops: Lerp(ZERO, start, ZERO,
                                 ops.power(gamma, sum(ops.where(tau >= m, 1.0, 0.0) for m in at)))


def _exponential(phase: PhaseSpec, start: Mix) -> Form:
    gamma, every = number_arg(phase, "gamma"), number_arg(phase, "every", required=False)
    if every is None:
        return lambda tau, ops: Lerp(ZERO, start, ZERO, ops.power(gamma, tau))
    return lambda tau, ops: Lerp(ZERO, start, ZERO, ops.power(gamma, tau / every))


def _polynomial(phase: PhaseSpec, start: Mix) -> Form:
    floor, power, length = level_arg(phase, "to"), number_arg(phase, "power"), length_arg(phase)
    if length == 0:
        return lambda tau, ops: Lerp(floor)
    return _from_start(start, lambda tau, ops: Lerp(floor, start, floor, (1.0 - tau / length) ** power))


def _inverse_sqrt(phase: PhaseSpec, start: Mix) -> Form:
    given = number_arg(phase, "timescale", required=False)
    scale = phase.start if given is None else given
    if scale <= 0:
        raise ValueError("inverse_sqrt at the start of the run needs a timescale (its default is the time "
                         "at which the phase starts)")
    return lambda tau, ops: Lerp(ZERO, start, ZERO, ops.sqrt(scale / (scale + tau)))


def _plateau(phase: PhaseSpec, start: Mix) -> Form:
    held = Lerp(start)
    return lambda tau, ops: held


def _onecycle(phase: PhaseSpec, start: Mix) -> Form:
    peak, div, final_div = level_arg(phase, "peak"), number_arg(phase, "div"), number_arg(phase, "final_div")
    initial, low = Divided(peak, (div,)), Divided(peak, (div, final_div))
    if argument(phase, "three_phase"):
        return _cycle_parts(phase, (initial, peak), (peak, initial), (initial, low))
    return _cycle_parts(phase, (initial, peak), (peak, low))


def onecycle_momentum(phase: PhaseSpec) -> Form:
    """The momentum (or beta1) a ``onecycle`` phase moves opposite to its value, absolute, as torch does."""
    top, bottom = Mix(number_arg(phase, "max_momentum"), 0.0), Mix(number_arg(phase, "base_momentum"), 0.0)
    if argument(phase, "three_phase"):
        return _cycle_parts(phase, (top, bottom), (bottom, top), (top, top))
    return _cycle_parts(phase, (top, bottom), (bottom, top))


def cycle_moves_momentum(phase: PhaseSpec) -> bool:
    """Whether a phase is a ``onecycle`` that moves momentum (or beta1) too."""
    return phase.kind == "onecycle" and bool(argument(phase, "cycle_momentum"))


def _cycle_parts(phase: PhaseSpec, *parts: tuple[Any, Any]) -> Form:
    """OneCycleLR's parts: each anneals between two levels up to its end step, as torch computes them.

    A part of length 0 (where torch would divide by zero) is at its end.
    """
    total, pct = length_arg(phase), number_arg(phase, "pct")
    ends = [float(pct * total) - 1, float(2 * pct * total) - 2][:len(parts) - 1] + [total - 1]
    begins = [0.0] + ends[:-1]
    spans = [e - b for b, e in zip(begins, ends)]
    cos = argument(phase, "anneal") == "cos"

    def part(k, tau, ops):
        (a, z), pct = parts[k], ((tau - begins[k]) / spans[k] if spans[k] else tau * 0.0 + 1.0)
        if cos:
            return Lerp(z, a, z, (ops.cos(math.pi * pct) + 1) / 2, k)
        return Lerp(a, z, a, pct, k)

    def form(tau, ops):
        tau = ops.clip(tau, 0.0, max(ends[-1], 0.0))
        if ops is SCALAR:
            return part(next((k for k, e in enumerate(ends[:-1]) if tau <= e), len(parts) - 1), tau, ops)
        out = part(len(parts) - 1, tau, ops)
        for k in range(len(parts) - 2, -1, -1):
            out = _pick(ops, tau <= ends[k], part(k, tau, ops), out)
        return out
    return form


CLOSED_FORMS: dict[str, Callable[[PhaseSpec, Mix], Form]] = {
    "constant": _constant, "linear": _linear, "warmup": _warmup, "cosine": _cosine, "step": _step,
    "multistep": _multistep, "exponential": _exponential, "polynomial": _polynomial,
    "inverse_sqrt": _inverse_sqrt, "onecycle": _onecycle, "plateau": _plateau,
}
"""Each kind's closed form: ``CLOSED_FORMS[kind](phase, start)`` prepares the phase starting at ``start``."""


# --- programs ---------------------------------------------------------------------------------

class Curve:
    """A :class:`Program` ready to evaluate: its phases' start times, start and end levels, and forms.

    ``track`` is ``"value"`` for the program's own hyperparameter, or
    ``"momentum"`` for the momentum (or beta1) its ``onecycle`` phases move the
    opposite way: during such a phase as torch's OneCycleLR moves it, and
    elsewhere holding where the last cycle left it (before the first, where it begins).
    """

    def __init__(self, program: Program, track: str = "value", hyper: str | None = None):
        if track not in ("value", "momentum"):
            raise ValueError(f"unknown track {track!r}: 'value' or 'momentum'")
        self.program, self.track = program, track
        self.hyper = program.hyper if hyper is None else hyper
        phases = program.phases
        _check_phases(program)
        self.starts = tuple(float(p.start) for p in phases)
        self.lengths = tuple(None if p.length is None else float(p.length) for p in phases)
        self.levels: list[Mix] = []
        self.ends: list[Mix | None] = []
        self.forms: list[Form] = []
        start = self._first_level()
        for phase, length in zip(phases, self.lengths):
            start, form = self._prepare(phase, start)
            end = None if length is None else form(length, SCALAR).mix()
            self.levels.append(start)
            self.ends.append(end)
            self.forms.append(form)
            start = end
        self.plateau = len(phases) - 1 if phases[-1].kind == "plateau" and track == "value" else None

    def _first_level(self) -> Mix:
        if self.track == "value":
            return Mix.of_level(X1)
        cycling = [p for p in self.program.phases if cycle_moves_momentum(p)]
        if not cycling:
            raise ValueError(f"schedule {self.hyper}: no onecycle phase moves momentum")
        return onecycle_momentum(cycling[0])(0.0, SCALAR).mix()

    def _prepare(self, phase: PhaseSpec, start: Mix) -> tuple[Mix, Form]:
        if self.track == "momentum":
            if cycle_moves_momentum(phase):
                form = onecycle_momentum(phase)
                return form(0.0, SCALAR).mix(), form
            held = Lerp(start)
            return start, (lambda tau, ops: held)
        given = level_arg(phase, "from") if SCHEDULE_KINDS[phase.kind].arg("from") else None
        start = given if given is not None else start
        return start, CLOSED_FORMS[phase.kind](phase, start)

    @property
    def boundaries(self) -> tuple[float, ...]:
        """The phase start times, then the time the last phase ends if it has a length."""
        last = self.lengths[-1]
        return self.starts + (() if last is None else (self.starts[-1] + last,))

    @property
    def end_time(self) -> float | None:
        """When the last phase ends (the value holds from then on), or ``None`` when it is open-ended."""
        last = self.lengths[-1]
        return None if last is None else self.starts[-1] + last

    def phase_index(self, t: float) -> int:
        """The index of the phase running at time ``t``."""
        return max(bisect.bisect_right(self.starts, t) - 1, 0)

    def lerp_at(self, t: float) -> tuple[int, Lerp]:
        """The phase running at time ``t`` and its value there, as a :class:`Lerp`."""
        k = self.phase_index(t)
        return k, self.forms[k](SCALAR.clip(t - self.starts[k], 0.0, self.lengths[k]), SCALAR)

    def at(self, t: float) -> Mix:
        """The value at time ``t`` as one ``Mix`` for all groups (plateau phases: before any reduction)."""
        return self.lerp_at(t)[1].mix()

    def values(self, t: float, bases: Sequence[float]) -> list[float]:
        """Each group's value at time ``t``, given the groups' bases (plateau phases: before any reduction)."""
        lerp = self.lerp_at(t)[1]
        return group_values(lerp.constants(bases), lerp.s)

    def over(self, ts: Any, xp: Any) -> Mix:
        """The value at every time of the array ``ts`` (a float64 array of namespace ``xp``)."""
        ops = array_ops(xp, ts)
        out = None
        with quiet_overflow():  # past the float range a part is inf or nan; values() makes it MAX
            for begin, length, form in zip(self.starts, self.lengths, self.forms):
                value = form(ops.clip(ts - begin, 0.0, length), ops).mix()
                if out is not None:
                    later = ts >= begin
                    value = Mix(_where(ops, later, value.absolute, out.absolute),
                                _where(ops, later, value.relative, out.relative))
                out = value
        return Mix(ops.full(out.absolute), ops.full(out.relative))


def _where(ops: Any, cond: Any, x: Any, y: Any) -> Any:
    """``x`` where ``cond``, else ``y``; two equal plain numbers stay a number (no array operation)."""
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x == y:
        return x
    return ops.where(cond, x, y)


def group_values(constants: Sequence[tuple[float, float]], s: Any) -> list[float]:
    """Each group's ``p + q * s`` from its constants (:meth:`Lerp.constants`), ``MAX`` past the float range.

    Past the float range a level or shape is ``inf``: a group it does not
    move (``q`` or ``s`` 0) keeps ``p``, any other is the largest float.
    Values are at least 0, so one sum (``inf`` or ``nan`` when any value is)
    keeps the check off the per-group work.
    """
    out = [p + q * s for p, q in constants]
    if sum(out) <= MAX:
        return out
    return [cap(p) if q == 0 or s == 0 else cap(p + q * s) for p, q in constants]


def _check_phases(program: Program) -> None:
    """Phases exist, are known, run back to back from 0, and only the last is open-ended."""
    phases = program.phases
    if not phases:
        raise ValueError(f"schedule {program.hyper}: no phases")
    if phases[0].start != 0:
        raise ValueError(f"schedule {program.hyper}: the first phase starts at {phases[0].start}, not 0")
    for k, phase in enumerate(phases):
        kind = SCHEDULE_KINDS.get(phase.kind)
        if kind is None:
            raise ValueError(f"unknown schedule kind {phase.kind!r}")
        last = k == len(phases) - 1
        if phase.length is not None and phase.length < 0:
            raise ValueError(f"{phase.kind}: a negative length ({phase.length})")
        if not last and phase.length is None:
            raise ValueError(f"{phase.kind} is followed by another phase, so it needs a length")
        if not last and kind.last_only:
            raise ValueError(f"{phase.kind} must be the last phase")
        if not last and not math.isclose(phases[k + 1].start, phase.start + phase.length,
                                         rel_tol=1e-9, abs_tol=1e-9):
            raise ValueError(f"phase {k + 1} ({phases[k + 1].kind}) starts at {phases[k + 1].start}, "
                             f"not where {phase.kind} ends ({phase.start + phase.length})")


def plateau_value(curve: Curve, base: float, reductions: int) -> float:
    """One group's value in a curve's ``plateau`` phase after ``reductions`` reductions, as torch makes them.

    Each reduction multiplies by ``factor`` down to the ``floor``, and is
    skipped when it would lower the value by ``eps`` or less; once skipped it
    stays skipped (the value and floor no longer change), so a group's value
    depends on the count of reductions alone.
    """
    phase = curve.program.phases[curve.plateau]
    factor, eps = number_arg(phase, "factor"), number_arg(phase, "eps")
    floor = level_arg(phase, "floor").of(base)
    value = curve.levels[curve.plateau].of(base)
    for _ in range(reductions):
        lower = max(value * factor, floor)
        if value - lower <= eps:
            break
        value = lower
    return cap(value)


def value_at(program: Program, base: float, t: float, reductions: int = 0) -> float:
    """A program's value at time ``t`` for a param group whose base value is ``base``.

    ``reductions`` counts the plateau reductions made so far (when ``t`` falls in a plateau phase).
    Each call compiles the program: keep a :class:`Curve` to evaluate many times.
    """
    curve = Curve(program)
    if curve.plateau is not None and curve.phase_index(t) == curve.plateau:
        return plateau_value(curve, base, reductions)
    return curve.values(t, [base])[0]


def values(program: Program, base: float, ts: Any, xp: Any) -> Any:
    """A program's values at every time of the float64 array ``ts`` (namespace ``xp``: numpy, torch...).

    Plateau phases show the value they start at: reductions need the metrics of a run.
    """
    mix = Curve(program).over(ts, xp)
    with quiet_overflow():
        return array_ops(xp, ts).cap(mix.of(base))


def phase_levels(program: Program) -> list[tuple[Mix, Mix | None]]:
    """Each phase's start and end value (``None`` for an open-ended last phase), for continuity checks."""
    curve = Curve(program)
    return list(zip(curve.levels, curve.ends))


def boundaries(program: Program) -> tuple[float, ...]:
    """The phase start times of a program, then the end of its last phase if that has a length."""
    return Curve(program).boundaries


# --- param groups ------------------------------------------------------------------------------

def curves_for(programs: Sequence[Program], keys: Any) -> list[Curve]:
    """The curves that run ``programs`` on param groups whose options are ``keys``: one per hyperparameter.

    ``keys`` is one group's option names, or a list of several groups' (the
    groups of several optimizers differ). Adds the momentum (or beta1) track of
    ``onecycle`` phases with ``cycle_momentum``, each group moving the one it
    has (see :func:`~specopt.catalog.schedule_kinds.cycled_hyper`). Raises ``ValueError``
    for two programs of one hyperparameter, or a onecycle that must move
    momentum on an optimizer without one.
    """
    groups = list(keys) if isinstance(keys, list) else [keys]
    curves = [Curve(p) for p in programs]
    hypers = [c.hyper for c in curves]
    twice = sorted({h for h in hypers if hypers.count(h) > 1})
    if twice:
        raise ValueError(f"more than one schedule for {', '.join(twice)}")
    for program in programs:
        if not any(cycle_moves_momentum(p) for p in program.phases):
            continue
        moved = [cycled_hyper(g) for g in groups]
        if None in moved:
            raise ValueError(f"schedule {program.hyper}: onecycle moves momentum or beta1 (cycle_momentum), "
                             "but the optimizer has neither; write cycle_momentum false")
        for hyper in dict.fromkeys(moved):
            if hyper in hypers:
                raise ValueError(f"schedule {program.hyper}: onecycle moves {hyper} (cycle_momentum), and "
                                 f"another schedule sets {hyper}; write cycle_momentum false on the onecycle")
            curves.append(Curve(program, "momentum", hyper))
            hypers.append(hyper)
    return curves


def moves(curve: Curve, group: Any) -> bool:
    """Whether ``curve`` moves a param group with these options (a cycled track: the group's own kind)."""
    if curve.track == "momentum":
        return cycled_hyper(group) == curve.hyper
    return curve.hyper in group or (curve.hyper in ("beta1", "beta2") and "betas" in group)
