"""Events: freeze and unfreeze statements with ``at``, turned into times and applied during the run.

Each timed statement waits on a clock: ``at step N`` on optimizer steps that
really happened, ``at epoch N`` on ``end_epoch()`` calls, and ``at P%`` on the
clock of the run's length (``run 90 epochs`` counts epochs), at ``P%`` of it.
An event fires at the first tick of its clock at or after its moment. A
``warmup`` is always counted in optimizer steps. Turning lengths into those
units needs the run's length or the steps per epoch, as schedule lengths do
(E216 when nobody gave them).

At run time a :class:`Switchboard` keeps the set of fired statements. When
events fire, each parameter they select gets the state the cascade gives over
the statements without ``at`` and the fired ones (:func:`specopt.resolve.timeline.state`):
``requires_grad`` turns on, or off with its gradient dropped, and parameters
an ``unfreeze ... warmup`` makes trainable start their lr ramp (:class:`Ramps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..resolve.built_flags import set_requires_grad
from ..plan.clauses import moment_text
from ..diagnostics import Diagnostic, Source, Span, SpecError
from ..plan.nodes import Length
from ..resolve.resolution import origin_of
from ..plan.statements import FreezeStatement
from ..resolve.timeline import Switch, state, switches_of
from ..plan.timing import RUN_HINT, SPE_HINT, Timing


@dataclass(frozen=True)
class Event:
    """A timed statement: its index, the clock it waits on, its moment on that clock, and its lr warmup in steps."""

    index: int
    clock: str
    at: float
    ramp: float | None
    label: str
    moment: str

    def due(self, steps: int, epochs: int) -> bool:
        """Whether the event's moment has come after ``steps`` optimizer steps and ``epochs`` epochs."""
        return (steps if self.clock == "step" else epochs) >= self.at

    @property
    def when(self) -> str:
        """The moment, with its value on its clock when the spec wrote a share of the run."""
        unit = f"{self.clock} {self.at:g}"
        return self.moment if self.moment == unit else f"{self.moment} ({unit})"


def compile_events(plan, timing: Timing, source: Source | None = None) -> tuple[Event, ...]:
    """Every timed freeze and unfreeze of ``plan`` as an :class:`Event`; E216 for a number nobody gave."""
    out, diags = [], []
    for i, stmt in enumerate(plan.statements):
        if isinstance(stmt, FreezeStatement) and stmt.timed:
            try:
                out.append(_event(plan, i, stmt, timing, source))
            except SpecError as exc:
                diags += exc.diagnostics
    if diags:
        raise SpecError(diags, source)
    return tuple(out)


def _event(plan, i: int, stmt: FreezeStatement, timing: Timing, source: Source | None) -> Event:
    at = stmt.at
    clock = at.unit if at.unit != "percent" else (timing.run_length.unit if timing.run_length else "step")
    moment = timing.counted_in(clock).convert(at, stmt.at.span or stmt.span)
    ramp = None
    if stmt.warmup is not None:
        ramp = in_steps(stmt.warmup, timing, stmt.warmup.span or stmt.span)
    return Event(i, clock, moment, ramp, origin_of(plan, i, source).label, moment_text(at))


def in_steps(length: Length, timing: Timing, span: Span | None) -> float:
    """A warmup's length in optimizer steps (E216 when the steps per epoch or the run's length is missing)."""
    steps = timing.counted_in("step")
    if length.unit == "epoch" and timing.steps_per_epoch is None:
        raise SpecError([Diagnostic("E216", f"a warmup counts optimizer steps: {length.text} must be converted "
                                    "to steps, but nobody gave the steps per epoch", span, SPE_HINT)])
    if length.unit == "percent" and steps.run is None:
        missing = "the run's length" if timing.run_length is None else "the steps per epoch"
        raise SpecError([Diagnostic("E216", f"a warmup counts optimizer steps: {length.text} of the run needs "
                                    f"{missing}, which nobody gave", span,
                                    RUN_HINT if timing.run_length is None else SPE_HINT)])
    return steps.convert(length, span)


# --- at run time -------------------------------------------------------------------------------

@dataclass
class _Entry:
    """Parameters with the same switches and built flag: they always share their state."""

    switches: tuple[Switch, ...]
    built: bool
    tensors: list
    groups: set


class Switchboard:
    """Which timed statements have fired, and the parameters they switch (see the module's docstring)."""

    def __init__(self, events: tuple[Event, ...], resolution, ramps: "Ramps"):
        self.events = events
        self.ramps = ramps
        self.fired: frozenset[int] = frozenset()
        self.entries: dict[tuple, _Entry] = {}
        self._ramp_of = {e.index: e.ramp for e in events}
        if events:
            self._collect(resolution)

    def _collect(self, resolution) -> None:
        """Group the parameters that timed statements select by their switches.

        An entry's groups are positions in the optimizer's ``param_groups``,
        which the ramps index: with several optimizers the parts list their
        groups optimizer by optimizer, not in the resolution's order.
        """
        tensors = resolution.tensors
        position = {id(t): k for k, g in enumerate(self.ramps.param_groups) for t in g["params"]}
        for p in resolution.params:
            switches = switches_of(p.touched, resolution.plan) if p.touched else ()
            if not any(s.timed for s in switches):
                continue
            key = (p.info.requires_grad,) + tuple(s.index for s in switches)
            entry = self.entries.setdefault(key, _Entry(switches, p.info.requires_grad, [], set()))
            entry.tensors.append(tensors[p.info.name])
            if p.group is not None:
                entry.groups.add(position[id(tensors[p.info.name])])

    def due(self, steps: int, epochs: int) -> list[Event]:
        """The events not fired yet whose moment has come."""
        return [e for e in self.events if e.index not in self.fired and e.due(steps, epochs)]

    def fire(self, indices, steps: int) -> bool:
        """Apply the statements ``indices`` from now on (after ``steps`` optimizer steps); whether any state changed."""
        fired = self.fired | frozenset(indices)
        changed = False
        for entry in self.entries.values():
            before = state(entry.switches, entry.built, self.fired)[0]
            after, decider = state(entry.switches, entry.built, fired)
            if before != after:
                changed = True
                self._switch(entry, after, decider, steps)
        self.fired = fired
        return changed

    def _switch(self, entry: _Entry, trainable: bool, decider: Switch, steps: int) -> None:
        for tensor in entry.tensors:
            set_requires_grad(tensor, trainable)
            if not trainable:
                tensor.grad = None
        ramp = self._ramp_of.get(decider.index) if trainable else None
        for group in entry.groups:
            if ramp is not None:
                self.ramps.start(group, steps, ramp)
            else:
                self.ramps.stop(group)


@dataclass
class Ramp:
    """An lr warmup in progress: the step it started after, its length in steps, and the group's scheduled lr."""

    start: int
    length: float
    scheduled: Any


class Ramps:
    """The lr warmups of param groups: each group's lr is its scheduled lr times ``min(1, k / length)``.

    ``k`` counts the optimizer steps since the ramp started, so the first step
    after an unfreeze has lr 0, as a ``warmup`` schedule phase starts at 0.
    Whatever scheduler writes ``group["lr"]`` composes with it: :meth:`restore`
    puts back the scheduled values before the scheduler steps (a chainable
    scheduler reads them), :meth:`capture` reads the new ones after it, and
    :meth:`apply` multiplies the ramp in.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.active: dict[int, Ramp] = {}

    @property
    def param_groups(self) -> list[dict]:
        """The optimizer's param groups (looked up each time: loading a state dict replaces them)."""
        return self.optimizer.param_groups

    def spec_lr(self, group: int, resolution) -> Any:
        """The lr ``resolution`` gives the parameters of param group ``group`` (its position here)."""
        return resolution.groups[resolution.param(self.param_groups[group]["param_names"][0]).group].settings["lr"]

    def start(self, group: int, steps: int, length: float) -> None:
        """Start (or restart) group ``group``'s ramp after ``steps`` optimizer steps."""
        old = self.active.get(group)
        scheduled = old.scheduled if old is not None else self.param_groups[group]["lr"]
        self.active[group] = Ramp(steps, length, scheduled)

    def stop(self, group: int) -> None:
        """End a group's ramp, putting back its scheduled lr."""
        ramp = self.active.pop(group, None)
        if ramp is not None:
            self.param_groups[group]["lr"] = ramp.scheduled

    def restore(self) -> None:
        """Put every ramped group's scheduled lr back (before a scheduler steps)."""
        for group, ramp in self.active.items():
            self.param_groups[group]["lr"] = ramp.scheduled

    def capture(self) -> None:
        """Read every ramped group's new scheduled lr (after a scheduler stepped)."""
        for group, ramp in self.active.items():
            ramp.scheduled = self.param_groups[group]["lr"]

    def apply(self, steps: int) -> None:
        """Set each ramped group's lr for the next optimizer step; a finished ramp ends."""
        for group, ramp in list(self.active.items()):
            k = steps - ramp.start
            if k >= ramp.length:
                self.stop(group)
            else:
                self.param_groups[group]["lr"] = ramp.scheduled * (k / ramp.length)
