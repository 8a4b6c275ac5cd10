"""When a parameter is trainable: the freeze and unfreeze statements that select it, with their moments.

A statement with ``at`` applies from its moment on. A parameter's state at a
time is the cascade over the statements without ``at`` and those whose moment
has come, in statement order; the model's own ``requires_grad`` flag is where
the cascade starts. Which moments have come is a set of statement indices
(``fired``), so everything here works without knowing how long the run is;
:mod:`specopt.runtime.unfreezing` turns moments into times. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..plan.clauses import moment_text
from ..plan.nodes import Length


@dataclass(frozen=True)
class Switch:
    """A freeze or unfreeze statement selecting a parameter: what it sets, from when, and its lr warmup.

    ``origin`` is the statement's :class:`specopt.resolve.cascade.Origin`.
    """

    origin: Any
    freezes: bool
    at: Length | None = None
    warmup: Length | None = None

    @property
    def timed(self) -> bool:
        """Whether it applies from a point of the run rather than from the start."""
        return self.at is not None

    @property
    def index(self) -> int:
        """The statement's index in the plan."""
        return self.origin.index


def state(switches: Iterable[Switch], built: bool, fired: frozenset[int] = frozenset()) -> tuple[bool, Switch | None]:
    """Whether the parameter is trainable once the moments of ``fired`` have come, and the switch deciding it.

    ``built`` is the parameter's ``requires_grad`` as its model's code built it;
    the deciding switch is ``None`` when no statement applies.
    """
    trainable, decider = built, None
    for switch in switches:
        if not switch.timed or switch.index in fired:
            trainable, decider = not switch.freezes, switch
    return trainable, decider


def ever_trained(switches: tuple[Switch, ...], built: bool) -> bool:
    """Whether the parameter is trainable at some point of the run (and so belongs in the optimizer)."""
    if state(switches, built)[0]:
        return True
    last = _last_untimed(switches)
    return any(s.timed and not s.freezes for s in switches[last + 1:])


def _last_untimed(switches: tuple[Switch, ...]) -> int:
    """The position of the last statement without ``at`` (-1: none); it overrides every switch before it
    at every moment."""
    return next((k for k in range(len(switches) - 1, -1, -1) if not switches[k].timed), -1)


def ramp_key(switches: tuple[Switch, ...], built: bool) -> tuple:
    """What keeps parameters with an lr warmup in param groups of their own.

    Parameters that an ``unfreeze ... warmup`` selects share a group only with
    parameters of the same history (the same statements and the same built
    flag), so a ramp never reaches a parameter that it should not; for all
    others this is ``()``, and the fewest groups stay the fewest.
    """
    if not any(s.warmup is not None for s in switches):
        return ()
    return (built,) + tuple(s.index for s in switches)


def timed_changes(switches: tuple[Switch, ...], built: bool) -> set[int]:
    """The timed statements that change the parameter's state at their moment, for some order of moments."""
    changed = set()
    untimed, everything = built, built  # the state before each switch: no moment come, and every moment come
    for switch in switches:
        if switch.timed and switch.freezes in (untimed, everything):
            changed.add(switch.index)
        everything = not switch.freezes
        untimed = untimed if switch.timed else everything
    return changed


def timed_deciders(switches: tuple[Switch, ...]) -> set[int]:
    """The timed statements that decide the parameter's state from their moment at least for a while."""
    return {s.index for s in switches[_last_untimed(switches) + 1:] if s.timed}


@dataclass(frozen=True)
class Change:
    """A point of the run where a parameter's state changes: its moment, the new state, and who did it."""

    moment: Length
    trainable: bool
    by: Any
    warmup: Length | None = None

    @property
    def text(self) -> str:
        """``trainable from epoch 3 (unfreeze@2:1, lr warmup 500 steps)``."""
        what = "trainable" if self.trainable else "frozen"
        ramp = f", lr warmup {self.warmup.text}" if self.warmup is not None and self.trainable else ""
        return f"{what} from {moment_text(self.moment)} ({self.by.label}{ramp})"


def changes(switches: tuple[Switch, ...], built: bool) -> tuple[Change, ...]:
    """The parameter's state changes over the run, in the order of their moments.

    Moments are ordered when they are in the same unit; otherwise they keep
    statement order (only the run's timing can order epochs against steps).
    """
    timed = [(k, s) for k, s in enumerate(switches) if s.timed]
    if len({s.at.unit for _, s in timed}) == 1:
        timed.sort(key=lambda item: item[1].at.value)
    out = []
    current = state(switches, built)[0]
    deciding = _last_untimed(switches)  # the decider is the last statement that applies: it only moves on
    for k, switch in timed:
        deciding = max(deciding, k)
        decider = switches[deciding]
        if decider.freezes == current:
            current = not decider.freezes
            out.append(Change(switch.at, current, decider.origin, decider.warmup))
    return tuple(out)


def switches_of(touched, plan) -> tuple[Switch, ...]:
    """The freeze and unfreeze statements among ``touched`` (origins, in statement order) as switches,
    with the layers that ``layers ... freeze_below=`` freezes."""
    out = []
    for origin in touched:
        if origin.kind in ("freeze", "unfreeze"):
            stmt = plan.statements[origin.index]
            out.append(Switch(origin, stmt.freezes, stmt.at, getattr(stmt, "warmup", None)))
        elif getattr(origin, "frozen", False):  # a layer that a layers statement's freeze_below freezes
            out.append(Switch(origin, True))
    return tuple(out)
