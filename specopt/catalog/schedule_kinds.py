"""Schedule kinds: the phases a ``schedule`` statement is made of, one frozen entry each.

A schedule moves one hyperparameter of every param group over the run:

    schedule linear 500 steps from x0.01 then cosine 9500 steps to x0.1
    schedule weight_decay cosine from 0.04 to 0.4

Each phase is a kind from :data:`SCHEDULE_KINDS`, an optional length
(``500 steps``, ``5 epochs``, ``80%`` of the run) and arguments written
``NAME VALUE`` (``from x0.01``, ``to 0``, ``every 10 epochs``, ``at 30,60
epochs``), or a bare factor (``x0.1``) for the kind's positional argument.
This table drives the checks of a plan (which arguments a kind takes, their
kinds and bounds), the closed forms the compiled scheduler evaluates, the
reports, ``fmt``, the documentation and "did you mean" suggestions.

Values are *levels*: ``x0.01`` is relative to each param group's own base
value, so every group keeps its ratio to the others at every step; a plain
number is absolute and the same for every group.

This module must not import torch: ``specopt check`` validates schedules with
it alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

# What an argument's value may be:
#   level    x0.1 (relative to each group's base value) or a plain number (absolute)
#   factor   x0.1 only
#   number   a plain number;  int: a whole number
#   length   N steps | N epochs | P%  (a time span)
#   lengths  N,N,... steps|epochs     (points in time, from the start of the phase)
#   choice   one of ``choices``, written as a word;  bool: true or false
#   name     a word or a quoted string (a metric's name)
ARG_KINDS = frozenset({"level", "factor", "number", "int", "length", "lengths", "choice", "bool", "name"})


@dataclass(frozen=True)
class ArgInfo:
    """One argument of a phase kind: written ``NAME VALUE`` after the kind and its length.

    ``default`` is the value when the argument is left out; ``None`` means the
    kind decides (for ``from``: the value where the previous phase ended), and
    a ``required`` argument cannot be left out.
    Levels are written as :class:`Level` values here. ``bounds`` uses the range
    words of :func:`specopt.catalog.registry.check_bounds`; a level's bounds apply to its factor or number.
    """

    name: str
    kind: str
    summary: str
    default: Any = None
    bounds: str = ""
    choices: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Level:
    """A value in a schedule: relative (``x0.1``: 0.1 times each group's base) or absolute (``1e-6``)."""

    value: float
    relative: bool

    def of(self, base: float) -> float:
        """This level for a param group whose base value is ``base``."""
        return base * self.value if self.relative else self.value

    def __str__(self) -> str:
        return f"x{self.value:g}" if self.relative else f"{self.value:g}"


X0 = Level(0.0, True)
X1 = Level(1.0, True)


# A part of a Mix that is a plain zero stays a plain zero through arithmetic, so an array of
# times costs no array operations for the part a schedule does not use. A level past the float
# range is inf (see specopt.catalog.curve_ops), and 0 times it is 0: a plain zero wins.
def _zero(x: Any) -> bool:
    return (x.__class__ is float or x.__class__ is int) and x == 0


def _add(x: Any, y: Any) -> Any:
    return y if _zero(x) else x if _zero(y) else x + y


def _sub(x: Any, y: Any) -> Any:
    return x if _zero(y) else x - y


def _mul(x: Any, k: Any) -> Any:
    return 0.0 if _zero(x) or _zero(k) else x * k  # 0 times a level past the float range (inf) is 0


def _div(x: Any, d: Any) -> Any:
    return 0.0 if _zero(x) else x / d


@dataclass(frozen=True, slots=True)
class Mix:
    """A value as ``absolute + relative × base``: what a schedule's value is at any time.

    Every closed form is linear in its levels, so the value of a curve at a
    time is one ``Mix`` for all param groups, and each group's value is one
    multiply-add with its own base. A level is a ``Mix`` with one part zero;
    ``cosine from x1 to 1e-6`` stopped half-way is ``x0.5 + 5e-07``. The parts
    may also be arrays (one value per time), for previews.
    """

    absolute: Any
    relative: Any

    @staticmethod
    def of_level(level: Level) -> "Mix":
        """The ``Mix`` a :class:`Level` stands for."""
        return Mix(0.0, level.value) if level.relative else Mix(level.value, 0.0)

    def of(self, base: float) -> Any:
        """This value for a param group whose base value is ``base``."""
        return _add(self.absolute, _mul(self.relative, base))

    def level(self) -> Level | None:
        """This value as a :class:`Level` when one part is zero (relative wins when both are), else ``None``."""
        if self.absolute == 0:
            return Level(float(self.relative), True)
        if self.relative == 0:
            return Level(float(self.absolute), False)
        return None

    def __add__(self, other: "Mix") -> "Mix":
        return Mix(_add(self.absolute, other.absolute), _add(self.relative, other.relative))

    def __sub__(self, other: "Mix") -> "Mix":
        return Mix(_sub(self.absolute, other.absolute), _sub(self.relative, other.relative))

    def __mul__(self, k: Any) -> "Mix":
        return Mix(_mul(self.absolute, k), _mul(self.relative, k))

    def __truediv__(self, k: Any) -> "Mix":
        return Mix(_div(self.absolute, k), _div(self.relative, k))

    def __str__(self) -> str:
        level = self.level()
        return str(level) if level is not None else f"x{self.relative:g} + {self.absolute:g}"


ZERO = Mix(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Lerp:
    """A phase's value at one time: ``p + (hi - lo) * s``.

    ``p``, ``hi`` and ``lo`` are levels (:class:`Mix`, or :class:`Divided`);
    within one phase, equal ``key`` values mean equal levels, so a group's
    constants can be kept while the key stays the same. ``s`` is the shape,
    shared by every group. A group evaluates its levels with its own base first, then the
    expression, which is the order torch's closed forms compute in: cosine is
    ``eta_min + (base - eta_min) * s``, so the values agree bit for bit, even
    where that expression loses digits. :meth:`mix` gives the same value as one
    :class:`Mix` for every group (to rounding), for previews.
    """

    p: Any
    hi: Any = ZERO
    lo: Any = ZERO
    s: Any = 0.0
    key: Any = None

    def mix(self) -> Mix:
        """The value as one ``Mix`` for all groups."""
        return as_mix(self.p) + (as_mix(self.hi) - as_mix(self.lo)) * self.s

    def constants(self, bases: Sequence[float]) -> list[tuple[float, float]]:
        """Per group, ``(p, hi - lo)`` at its base: the value is then ``p + q * s``."""
        p, hi, lo = self.p, self.hi, self.lo
        return [(p.of(b), hi.of(b) - lo.of(b)) for b in bases]


@dataclass(frozen=True, slots=True)
class Divided:
    """A level divided by numbers after it is taken at a group's base, as OneCycleLR divides ``max_lr``."""

    level: Mix
    divisors: tuple[float, ...]

    def of(self, base: float) -> float:
        """The value for a group whose base is ``base``: the level, then each division in turn."""
        value = self.level.of(base)
        for d in self.divisors:
            value = value / d
        return value

    def mix(self) -> Mix:
        """The same as one ``Mix`` (to rounding)."""
        out = self.level
        for d in self.divisors:
            out = out / d
        return out


def as_mix(level: Any) -> Mix:
    """A level as a :class:`Mix` (a :class:`Divided` is divided out)."""
    return level if isinstance(level, Mix) else level.mix()


@dataclass(frozen=True)
class ScheduleKind:
    """A phase kind: its name, arguments, how long it runs, and what it equals in torch.

    ``positional`` names the argument a bare factor (``x0.1``) fills.
    ``needs_length`` says the curve is defined by its length (a linear ramp
    must know where it ends): such a phase without a length takes the rest of
    the run, which then must be known. Other kinds run open-ended when they
    are last and have no length. ``open_with`` names arguments that make a
    kind open-ended even though it otherwise needs a length (cosine with
    restarts). ``last_only`` kinds must be the last phase (their value depends
    on the run's history, so no phase can follow from a known value).
    ``torch`` names the torch scheduler the phase equals, where one does.
    """

    name: str
    summary: str
    formula: str
    example: str
    args: tuple[ArgInfo, ...] = ()
    positional: str | None = None
    needs_length: bool = True
    open_with: tuple[str, ...] = ()
    last_only: bool = False
    torch: str | None = None

    def arg(self, name: str) -> ArgInfo | None:
        """The argument called ``name``, or ``None``."""
        return next((a for a in self.args if a.name == name), None)

    def length_required(self, given: Mapping[str, Any]) -> bool:
        """Whether a phase of this kind with the arguments ``given`` needs a length to be defined."""
        return self.needs_length and not any(name in given for name in self.open_with)


def _from(default: Level | None = None) -> ArgInfo:
    return ArgInfo("from", "level", "the value at the start of the phase "
                   "(default: where the previous phase ended, x1 for the first)", default, ">=0")


def _to(default: Level | None, words: str = "the value at the end of the phase") -> ArgInfo:
    return ArgInfo("to", "level", words, default, ">=0")


SCHEDULE_KINDS: dict[str, ScheduleKind] = {k.name: k for k in (
    ScheduleKind("constant", "Hold a value: where the previous phase ended, or the factor given.",
                 "v(t) = start", "schedule warmup 2000 steps then constant 80% then linear to 0",
                 (ArgInfo("value", "factor", "the value to hold, relative to the base", None, ">=0"),),
                 positional="value", needs_length=False, torch="ConstantLR"),
    ScheduleKind("linear", "Move in a straight line from one value to another.",
                 "v(t) = from + (to - from) * t / T", "schedule linear 500 steps from x0.01",
                 (_from(), _to(X1, "the value at the end of the phase (default x1)")),
                 torch="LinearLR"),
    ScheduleKind("warmup", "Ramp linearly from x0 (or the value given) up to x1.",
                 "v(t) = from + (x1 - from) * t / T", "schedule warmup 5 epochs then cosine to x0.01",
                 (_from(X0),), torch="LinearLR"),
    ScheduleKind("cosine", "Half a cosine from one value down (or up) to another; optional warm restarts.",
                 "v(t) = to + (from - to) * (1 + cos(pi * t / T)) / 2",
                 "schedule cosine 9500 steps to x0.1",
                 (_from(), _to(X0, "the floor at the end of each cycle (default x0)"),
                  ArgInfo("every", "length", "restart the cosine after this long (the first period)"),
                  ArgInfo("mult", "number", "multiply the period by this after each restart", 1.0, ">=1"),
                  ArgInfo("decay", "factor", "multiply the peak by this after each restart", Level(1.0, True),
                          ">0")),
                 open_with=("every",), torch="CosineAnnealingLR (CosineAnnealingWarmRestarts with every)"),
    ScheduleKind("step", "Multiply by a factor once every interval.",
                 "v(t) = start * gamma ^ floor(t / every)", "schedule step every 30 epochs x0.1",
                 (ArgInfo("every", "length", "the interval", required=True),
                  ArgInfo("gamma", "factor", "the factor applied at each interval", None, ">0", required=True)),
                 positional="gamma", needs_length=False, torch="StepLR"),
    ScheduleKind("multistep", "Multiply by a factor at each of the times given.",
                 "v(t) = start * gamma ^ (number of milestones <= t)",
                 "schedule multistep at 30,60,90 epochs x0.1",
                 (ArgInfo("at", "lengths", "the milestones, from the start of the phase", required=True),
                  ArgInfo("gamma", "factor", "the factor applied at each milestone", None, ">0", required=True)),
                 positional="gamma", needs_length=False, torch="MultiStepLR"),
    ScheduleKind("exponential", "Multiply by a factor every step (or every interval given).",
                 "v(t) = start * gamma ^ (t / every)", "schedule exponential x0.95",
                 (ArgInfo("gamma", "factor", "the factor per interval", None, ">0", required=True),
                  ArgInfo("every", "length", "the interval (default: one call of scheduler.step())")),
                 positional="gamma", needs_length=False, torch="ExponentialLR"),
    ScheduleKind("polynomial", "Decay polynomially from one value to another.",
                 "v(t) = to + (from - to) * (1 - t / T) ^ power", "schedule polynomial to 0 power 2",
                 (_from(), _to(X0, "the value at the end of the phase (default x0)"),
                  ArgInfo("power", "number", "the exponent", 1.0, ">0")),
                 torch="PolynomialLR"),
    ScheduleKind("inverse_sqrt", "Decay with the inverse square root of time (the original Transformer).",
                 "v(t) = start * sqrt(timescale / (timescale + t))",
                 "schedule warmup 4000 steps then inverse_sqrt",
                 (ArgInfo("timescale", "length", "how fast it decays (default: the time at which the "
                          "phase starts, so after a warmup of W steps v = peak * sqrt(W / step))"),),
                 needs_length=False),
    ScheduleKind("onecycle", "The one-cycle policy: up from peak/div to the peak, then down to "
                 "peak/div/final_div; momentum (or beta1) moves the opposite way.",
                 "as torch's OneCycleLR, with max_lr = the peak",
                 "schedule onecycle 10000 steps",
                 (ArgInfo("peak", "level", "the highest value (default x1, the base)", X1, ">=0"),
                  ArgInfo("pct", "number", "the share of the phase spent going up", 0.3, "(0,1)"),
                  ArgInfo("div", "number", "start at peak / div", 25.0, ">0"),
                  ArgInfo("final_div", "number", "end at peak / div / final_div", 1e4, ">0"),
                  ArgInfo("three_phase", "bool", "go back down to peak / div before the final decay", False),
                  ArgInfo("anneal", "choice", "the shape of each part", "cos", choices=("cos", "linear")),
                  ArgInfo("cycle_momentum", "bool", "move momentum (or beta1) opposite to the value", True),
                  ArgInfo("base_momentum", "number", "momentum at the peak", 0.85, "[0,1]"),
                  ArgInfo("max_momentum", "number", "momentum at the start and the end", 0.95, "[0,1]")),
                 torch="OneCycleLR"),
    ScheduleKind("plateau", "Multiply by a factor when a metric the training loop passes stops improving.",
                 "v = max(start * factor ^ reductions, floor)", "schedule plateau x0.5 patience 3",
                 (ArgInfo("factor", "factor", "the factor applied at each reduction", Level(0.1, True), "(0,1)"),
                  ArgInfo("patience", "int", "calls without improvement before a reduction", 10, ">=0"),
                  ArgInfo("mode", "choice", "whether lower or higher is better", "min", choices=("min", "max")),
                  ArgInfo("threshold", "number", "the least change that counts as better", 1e-4, ">=0"),
                  ArgInfo("threshold_mode", "choice", "whether the threshold is relative or absolute", "rel",
                          choices=("rel", "abs")),
                  ArgInfo("cooldown", "int", "calls to wait after a reduction", 0, ">=0"),
                  ArgInfo("floor", "level", "the lowest value (default 0)", Level(0.0, False), ">=0"),
                  ArgInfo("eps", "number", "changes smaller than this are ignored", 1e-8, ">=0"),
                  ArgInfo("monitor", "name", "the metric's name, for frameworks (Lightning)", "val_loss")),
                 positional="factor", needs_length=False, last_only=True, torch="ReduceLROnPlateau"),
)}


# --- what the compiled scheduler runs --------------------------------------------------------

@dataclass(frozen=True)
class PhaseSpec:
    """One phase, ready to run: its kind, where it starts and how long it lasts, in scheduler units.

    ``args`` holds every argument of the kind with defaults filled in: levels as
    :class:`Level`, lengths in scheduler units (``float``), lists of lengths as
    tuples. ``from`` is there only when the spec wrote it (or the kind gives it a
    default, as ``warmup`` does): otherwise the phase starts where the previous
    one ended, x1 for the first. ``length`` is ``None`` for an open-ended last phase.
    """

    kind: str
    start: float
    length: float | None
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Program:
    """One hyperparameter's schedule: its phases in order, back to back from time 0.

    ``hyper`` is an option name of the optimizer (``lr``, ``weight_decay``,
    ``momentum``) or ``beta1`` / ``beta2``, an element of ``betas``.
    """

    hyper: str
    phases: tuple[PhaseSpec, ...]


def program(*phases: tuple, hyper: str = "lr") -> Program:
    """A program from ``(kind, length, args)`` triples run back to back from time 0 (``None``: open-ended)."""
    out, start = [], 0.0
    for kind, length, args in phases:
        out.append(PhaseSpec(kind, start, length, args))
        start += length or 0.0
    return Program(hyper, tuple(out))


# --- reading a phase's arguments and a group's values -------------------------------------

def argument(phase: PhaseSpec, name: str) -> Any:
    """The argument ``name`` of a phase: as given, else the table's default."""
    if name in phase.args:
        return phase.args[name]
    return SCHEDULE_KINDS[phase.kind].arg(name).default


def level_arg(phase: PhaseSpec, name: str) -> Mix | None:
    """A level argument as a :class:`Mix` (``None`` when absent and without a default)."""
    value = argument(phase, name)
    if value is None or isinstance(value, Mix):
        return value
    if not isinstance(value, Level):
        raise ValueError(f"{phase.kind}: '{name}' must be a Level (x0.1 or an absolute number), not {value!r}")
    return Mix.of_level(value)


def number_arg(phase: PhaseSpec, name: str, required: bool = True) -> float | None:
    """A number or factor argument as a float (a factor's ``Level`` must be relative)."""
    value = argument(phase, name)
    if value is None:
        if required:
            raise ValueError(f"{phase.kind} needs '{name}'")
        return None
    if isinstance(value, Level):
        if not value.relative:
            raise ValueError(f"{phase.kind}: '{name}' is a factor, written x{value.value:g}, not {value}")
        return value.value
    return float(value)


def length_arg(phase: PhaseSpec) -> float:
    """A phase's length; raises ``ValueError`` for a phase without one."""
    if phase.length is None:
        raise ValueError(f"{phase.kind} needs a length: a ramp must know where it ends")
    return phase.length


def cycled_hyper(keys: Any) -> str | None:
    """What a ``onecycle`` moves opposite to its value, given an optimizer's option names (as torch picks)."""
    if "betas" in keys:
        return "beta1"
    return "momentum" if "momentum" in keys else None


def hyper_value(group: Mapping[str, Any], hyper: str) -> float:
    """A param group's value of a hyperparameter: an option, or ``beta1``/``beta2`` from ``betas``."""
    if hyper in ("beta1", "beta2"):
        if "betas" not in group:
            raise ValueError(f"{hyper} is an element of betas, which this optimizer does not have")
        return float(group["betas"][0 if hyper == "beta1" else 1])
    if hyper not in group:
        raise ValueError(f"this optimizer has no option {hyper!r} to schedule")
    value = group[hyper]
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise ValueError(f"{hyper} is {value!r}, not a number, so it cannot be scheduled")
    return float(value)


def fingerprint(programs: Sequence[Program]) -> str:
    """A short digest of programs: equal for the same schedules, different when any phase or argument changes."""
    text = json.dumps([_plain(p) for p in programs], sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, Program):
        return {"hyper": value.hyper, "phases": [_plain(p) for p in value.phases]}
    if isinstance(value, PhaseSpec):
        return {"kind": value.kind, "start": value.start, "length": value.length,
                "args": {k: _plain(v) for k, v in value.args.items()}}
    if isinstance(value, Level):
        return {"level": value.value, "relative": value.relative}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
