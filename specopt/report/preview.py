"""Previews of a schedule: every curve per param group as one line of text, or as data for JSON.

A preview evaluates the same closed forms the scheduler runs (the values are
equal to the last bit), at chosen times, without stepping anything:

    lr: warmup 0..500, cosine 500..10,000
      [0] head     start 0  peak 0.01 at 500  end 0.001  ▁▅██▇▇▆▆▅▄▄▃▂▂▂▂
      [1] default  start 0  peak 0.001 at 500  end 0.0001  ▁▅██▇▇▆▆▅▄▄▃▂▂▂▂

The times: every unit from 0 to ``until`` when that is at most
``max_points`` times (1,001 by default); otherwise ``max_points`` times spread
evenly over the run, plus each phase boundary and the unit before it, so the
data stays bounded (at most ``max_points`` + 2 per boundary) and the peak and
the corners of every phase are among them. ``until`` defaults to the end of
the last phase with a length; an open-ended last phase is shown up to twice
the time it starts (100 units when it starts at 0), and the preview says so.
Plateau phases hold the value they start at: their reductions follow the
metrics of a run. No torch is needed to preview programs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..catalog.schedule_curves import Curve, curves_for, moves, plateau_value
from ..catalog.schedule_kinds import Program, hyper_value

BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 24


@dataclass(frozen=True)
class GroupCurve:
    """One param group's values of one hyperparameter at the preview's times, and its landmarks."""

    index: int
    name: str
    base: float
    values: tuple[float, ...]
    spark: str

    @property
    def start(self) -> float:
        """The value at time 0."""
        return self.values[0]

    @property
    def end(self) -> float:
        """The value at the last time shown."""
        return self.values[-1]

    def peak(self, times: Sequence[float]) -> tuple[float, float]:
        """The highest value among the times shown, and the first time it is reached."""
        top = max(self.values)
        return top, times[self.values.index(top)]


@dataclass(frozen=True)
class CurvePreview:
    """One scheduled hyperparameter: its phases, boundaries, the times shown and each group's values."""

    hyper: str
    phases: tuple[tuple[str, float, float | None], ...]
    boundaries: tuple[float, ...]
    times: tuple[float, ...]
    groups: tuple[GroupCurve, ...]
    moved_by: str | None = None


@dataclass(frozen=True)
class Preview:
    """A preview of every scheduled hyperparameter of every group from time 0 to ``until``."""

    unit: str
    until: float
    sampled: bool
    open_ended: bool
    curves: tuple[CurvePreview, ...]

    def text(self) -> str:
        """One line per hyperparameter (its phases), then one per group: start, peak, end and a sparkline."""
        lines = [f"schedule preview: 0 to {_time(self.until)} {self.unit}s"
                 + (" (the last phase is open-ended)" if self.open_ended else "")]
        for curve in self.curves:
            by = f" (moved opposite to {curve.moved_by} by onecycle)" if curve.moved_by else ""
            lines.append(f"{curve.hyper}{by}: " + ", ".join(_phase(p) for p in curve.phases))
            width = max(len(g.name) for g in curve.groups)
            for g in curve.groups:
                peak, at = g.peak(curve.times)
                lines.append(f"  [{g.index}] {g.name:<{width}}  start {_num(g.start)}  peak {_num(peak)} at "
                             f"{_time(at)}  end {_num(g.end)}  {g.spark}")
        return "\n".join(lines) + "\n"

    def data(self) -> dict[str, Any]:
        """The same as plain data for JSON: times, and per group its values, start, peak and end."""
        return {"unit": self.unit, "until": _plain_time(self.until), "sampled": self.sampled,
                "open_ended": self.open_ended, "curves": [_curve_data(c) for c in self.curves]}


def preview(scheduler: Any, until: float | None = None, max_points: int = 1001) -> Preview:
    """The preview of a :class:`~specopt.runtime.scheduler.SpecScheduler` (its curves, each group's bases and names)."""
    names = [_name(g, k) for k, g in enumerate(scheduler.optimizer.param_groups)]
    return _build(scheduler.curves, scheduler.bases, names, scheduler.unit, until, max_points, scheduler.members)


def preview_programs(programs: Sequence[Program], groups: Sequence[Mapping[str, Any]], unit: str = "step",
                     until: float | None = None, max_points: int = 1001) -> Preview:
    """The preview of programs over param groups given as mappings (``{"name": ..., "lr": ..., ...}``).

    Each group's base values are its values of the scheduled hyperparameters;
    ``betas`` or ``momentum`` in the groups decide what a ``onecycle`` moves.
    """
    if not groups:
        raise ValueError("a preview needs at least one param group")
    curves = curves_for(programs, [list(g) for g in groups])
    members = {c.hyper: [k for k, g in enumerate(groups) if moves(c, g)] for c in curves}
    missing = [h for h, found in members.items() if not found]
    if missing:
        raise ValueError(f"no param group has {missing[0]!r} to schedule")
    bases = {c.hyper: [hyper_value(groups[k], c.hyper) for k in members[c.hyper]] for c in curves}
    return _build(curves, bases, [_name(g, k) for k, g in enumerate(groups)], unit, until, max_points, members)


def _build(curves: Sequence[Curve], bases: Mapping[str, Sequence[float]], names: Sequence[str], unit: str,
           until: float | None, max_points: int, members: Mapping[str, Sequence[int]] | None = None) -> Preview:
    if max_points < 2:
        raise ValueError("a preview needs max_points of at least 2")
    ends = [c.end_time for c in curves]
    open_ended = any(e is None for e in ends)
    if until is None:
        until = max(e if e is not None else (2 * c.starts[-1] or 100.0) for c, e in zip(curves, ends))
    if until <= 0:
        raise ValueError(f"a preview needs a run longer than 0 (until={until})")
    sampled = until + 1 > max_points
    marks = sorted({b for c in curves for b in c.boundaries if 0 <= b <= until})
    times = _times(until, max_points, marks) if sampled else tuple(float(t) for t in range(int(until) + 1))
    if not sampled and times[-1] != until:
        times += (float(until),)
    spark = [until * k / (SPARK_WIDTH - 1) for k in range(SPARK_WIDTH)]
    every = list(range(len(names)))
    shown = tuple(_curve(c, bases[c.hyper], names, times, spark, until, (members or {}).get(c.hyper, every))
                  for c in curves)
    return Preview(unit, float(until), sampled, open_ended and until > max(c.starts[-1] for c in curves), shown)


def _times(until: float, count: int, marks: Sequence[float]) -> tuple[float, ...]:
    """``count`` times spread evenly from 0 to ``until`` (whole units), plus each boundary and the unit before."""
    spread = {float(round(until * k / (count - 1))) for k in range(count)}
    spread |= {float(m) for m in marks} | {float(m - 1) for m in marks if m >= 1}
    return tuple(sorted(t for t in spread if 0 <= t <= until))


def _curve(curve: Curve, bases: Sequence[float], names: Sequence[str], times: Sequence[float],
           spark: Sequence[float], until: float, members: Sequence[int]) -> CurvePreview:
    """One curve over the groups it moves (``members``, indices into ``names``; ``bases`` in that order)."""
    per_time = [_values(curve, t, bases) for t in times]
    per_spark = [_values(curve, t, bases) for t in spark]
    groups = tuple(GroupCurve(g, names[g], bases[k], tuple(v[k] for v in per_time),
                              _sparkline([v[k] for v in per_spark]))
                   for k, g in enumerate(members))
    phases = tuple((p.kind, float(p.start), None if p.length is None else float(p.start + p.length))
                   for p in curve.program.phases)
    moved_by = curve.program.hyper if curve.track == "momentum" else None
    return CurvePreview(curve.hyper, phases, tuple(b for b in curve.boundaries if b <= until), tuple(times), groups,
                        moved_by)


def _values(curve: Curve, t: float, bases: Sequence[float]) -> list[float]:
    if curve.plateau is not None and curve.phase_index(t) == curve.plateau:
        return [plateau_value(curve, b, 0) for b in bases]
    return curve.values(t, bases)


def _sparkline(values: Sequence[float]) -> str:
    """Bars from the lowest to the highest of ``values``; a flat curve is a row of the lowest bar."""
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-12 * max(abs(hi), abs(lo)):
        return BARS[0] * len(values)
    top = len(BARS) - 1
    return "".join(BARS[round((v - lo) / (hi - lo) * top)] for v in values)


def _curve_data(curve: CurvePreview) -> dict[str, Any]:
    return {"hyper": curve.hyper, "moved_by": curve.moved_by,
            "phases": [{"kind": k, "start": _plain_time(s), "end": None if e is None else _plain_time(e)}
                       for k, s, e in curve.phases],
            "boundaries": [_plain_time(b) for b in curve.boundaries],
            "t": [_plain_time(t) for t in curve.times],
            "groups": [_group_data(g, curve.times) for g in curve.groups]}


def _group_data(group: GroupCurve, times: Sequence[float]) -> dict[str, Any]:
    peak, at = group.peak(times)
    return {"index": group.index, "name": group.name, "base": group.base, "start": group.start, "peak": peak,
            "peak_at": _plain_time(at), "end": group.end, "values": list(group.values)}


def _name(group: Mapping[str, Any], index: int) -> str:
    name = group.get("name")
    return str(name) if name else f"group {index}"


def _phase(phase: tuple[str, float, float | None]) -> str:
    kind, start, end = phase
    return f"{kind} {_time(start)}.." + ("" if end is None else _time(end))


def _num(value: float) -> str:
    return f"{value:.4g}"


def _time(t: float) -> str:
    return f"{int(t):,}" if float(t).is_integer() else f"{t:,.4g}"


def _plain_time(t: float) -> float | int:
    return int(t) if float(t).is_integer() else t
