"""The runtime of a ``schedule``: :class:`SpecScheduler`, a torch LR scheduler that runs compiled programs.

One scheduler moves every scheduled hyperparameter (``lr``, ``weight_decay``,
``momentum``, ``beta1``...) of every param group of one optimizer. Each group's
value is the closed form of its program at ``t`` (the number of ``step()``
calls so far) applied to that group's own base values, read when the scheduler
is built, so a group with ten times the base learning rate keeps that ratio at
every step. Nothing is accumulated from step to step: a scheduler rebuilt from
a checkpoint, a preview and a plot all compute the same values.

A scheduler run in a way that cannot be what was meant warns once, with a
:class:`ScheduleWarning`: a plateau phase running without metrics (W313), more
calls than the optimizer's steps, or both the step driver and the loop
stepping it (W314), calls past the run's length (W315), and a value past the
float range, held at the largest float (W316).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler

from ..catalog.schedule_curves import Curve, curves_for, group_values, moves, plateau_value
from ..diagnostics import Diagnostic
from ..catalog.curve_ops import MAX
from ..catalog.schedule_kinds import Program, argument, fingerprint, hyper_value

STATE_FORMAT = "specopt.schedule/1"


class SpecScheduler(LRScheduler):
    """Runs schedule :class:`~specopt.catalog.schedule_kinds.Program` values (at most one per hyperparameter).

    ``unit`` says what one ``step()`` call counts (``"step"`` or ``"epoch"``);
    it labels previews and warnings. ``run`` (the run's length in units) and
    ``steps_per_epoch``, when known, let the scheduler warn when it is stepped
    past the run or more often than the optimizer's steps allow. Each group's base value of a hyperparameter is
    kept in the group as ``initial_<name>`` (``initial_lr``, as torch's
    schedulers do), so a second scheduler built on the same optimizer reads the
    same bases. Raises ``ValueError`` when a program cannot run on this
    optimizer: two programs for one hyperparameter, an option the optimizer
    lacks, or a ``onecycle`` that must move momentum on an optimizer without
    momentum or betas.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, programs: Sequence[Program], unit: str = "step",
                 run: float | None = None, steps_per_epoch: int | None = None):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if unit not in ("step", "epoch"):
            raise ValueError(f"unit must be 'step' or 'epoch', not {unit!r}")
        self.programs = tuple(programs)
        self.unit = unit
        groups = optimizer.param_groups
        self.curves: list[Curve] = curves_for(self.programs, [list(g) for g in groups])
        self.members: dict[str, list[int]] = {c.hyper: _members(c, groups) for c in self.curves}
        self.bases: dict[str, list[float]] = {c.hyper: _bases(optimizer, c.hyper, self.members[c.hyper])
                                              for c in self.curves}
        self._lr = next((c for c in self.curves if c.hyper == "lr"), None)
        self._others = [c for c in self.curves if c.hyper != "lr"]
        self._fingerprint = fingerprint(self.programs)
        self._plateaus = {c.hyper: _Plateau(c) for c in self.curves if c.plateau is not None}
        self._held = {h: p.values(self.bases[h]) for h, p in self._plateaus.items()}
        self._constants: dict[str, tuple[Any, list[tuple[float, float]]]] = {}
        self._warned_metric = False
        self.run, self.steps_per_epoch = run, steps_per_epoch
        self._warned: set[str] = set()
        self._pace = _Pace(optimizer)
        self._ready = self._driven = self._driving = False
        super().__init__(optimizer)
        self._ready = True

    @property
    def needs_metric(self) -> bool:
        """Whether a ``plateau`` phase waits for metrics: pass one to ``step(metric)``."""
        return bool(self._plateaus)

    @property
    def monitor(self) -> str | None:
        """The metric name a ``plateau`` phase gives (for Lightning's ``monitor``), or ``None``."""
        for plateau in self._plateaus.values():
            return plateau.arg("monitor")
        return None

    def step(self, metric: Any = None) -> None:  # type: ignore[override]
        """Advance by one unit; ``metric`` (a number or 0-dim tensor) feeds a running ``plateau`` phase.

        A metric counts towards patience and cooldown only while a plateau
        phase runs; calls without one just advance the time (an epoch-unit
        call without one while a plateau runs warns once: W313).
        """
        if metric is not None:
            self._observe(float(metric))
        elif self._ready and self.unit == "epoch":
            self._expect_metric()
        if self._ready:
            self._check_pace()
        super().step()
        t = self.last_epoch
        groups = self.optimizer.param_groups
        for curve in self._others:
            for k, value in zip(self.members[curve.hyper], self._values(curve, t)):
                _write(groups[k], curve.hyper, value)

    def advance(self, metric: Any = None) -> None:
        """``step(metric)`` as the step driver calls it: from then on a direct ``step()`` warns (W314)."""
        self._driven = self._driving = True
        try:
            self.step(metric)
        finally:
            self._driving = False

    def observe(self, metric: Any = None) -> None:
        """Count a metric at the current time without advancing it (a step-unit schedule at an epoch's end).

        A reduction it brings applies at once. ``None`` says an epoch ended
        without a metric: while a plateau phase runs, that warns once (W313).
        """
        if metric is None:
            self._expect_metric()
        elif self._observe(float(metric)):
            self._apply(self.last_epoch)

    def get_lr(self) -> list[Any]:
        """The learning rate of every param group at the current time (``last_epoch``)."""
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        if self._lr is not None:
            for k, value in zip(self.members["lr"], self._values(self._lr, self.last_epoch)):
                lrs[k] = value
        return lrs

    _get_closed_form_lr = get_lr

    def values_at(self, t: float) -> dict[str, list[float]]:
        """Every scheduled hyperparameter at time ``t``, without stepping: one value per group it moves.

        ``members[hyper]`` lists those groups (all of them, unless the spec has
        several optimizers whose groups differ). Plateau phases apply the
        reductions made so far.
        """
        return {curve.hyper: self._values(curve, t) for curve in self.curves}

    def _values(self, curve: Curve, t: float) -> list[float]:
        """Each group's value of one curve at ``t``: per-group constants of the phase, times the shared shape."""
        k, lerp = curve.lerp_at(t)
        if k == curve.plateau:
            return list(self._held[curve.hyper])
        key = (k, lerp.key)
        cached = self._constants.get(curve.hyper)
        if cached is None or cached[0] != key:
            cached = self._constants[curve.hyper] = (key, lerp.constants(self.bases[curve.hyper]))
        out = group_values(cached[1], lerp.s)
        if MAX in out:
            self._warn("W316", f"{curve.hyper} passed the largest float at {self.unit} {t:g}: it holds there "
                       f"({MAX:.4g})", "give the run's length (run N steps) so that compiling checks the "
                       "schedule's range (E223), or let the schedule grow less")
        return out

    def _observe(self, metric: float) -> bool:
        """Count a metric; whether a plateau reduced."""
        if not self._plateaus:
            if not self._warned_metric:
                warnings.warn("this schedule has no plateau phase: the metric passed to step() is ignored",
                              stacklevel=3)
                self._warned_metric = True
            return False
        reduced = False
        for hyper, plateau in self._plateaus.items():
            if plateau.observe(metric, self.last_epoch):
                self._held[hyper] = plateau.values(self.bases[hyper])
                reduced = True
        return reduced

    def _expect_metric(self) -> None:
        """W313 when a plateau phase runs now and an epoch ended before any metric reached it.

        A loop that validates every few epochs passes a metric now and then, which is fine.
        """
        running = [p for p in self._plateaus.values() if self.last_epoch >= p.phase.start and not p.fed]
        if running:
            self._warn("W313", f"a plateau phase is running, but an epoch ended without the metric it watches "
                       f"({running[0].arg('monitor')}), and none has reached it: without metrics its value "
                       "never goes down",
                       "pass it each epoch: compiled.end_epoch(metric=...), or scheduler.step(metric) in a loop "
                       "that steps the scheduler itself")

    def _check_pace(self) -> None:
        """W314 for a scheduler stepped more often than it can be meant to be; W315 past the run's length."""
        if self._driven and not self._driving:
            self._warn("W314", "the scheduler is stepped directly, and the step driver steps it too "
                       "(compiled.train_step, after_step and end_epoch do): the schedule runs ahead",
                       "drop the scheduler.step() call; pass a plateau's metric to compiled.end_epoch(metric=...)")
        ahead = self._pace.ahead(self.unit, self.steps_per_epoch)
        if ahead:
            self._warn("W314", ahead, f"the schedule counts {self.unit}s: call scheduler.step() once per "
                       f"{'optimizer step' if self.unit == 'step' else 'epoch'} (compiled.schedule_unit), "
                       "or let compiled.train_step and compiled.end_epoch() step it")
        if self.run is not None and self.last_epoch + 1 > math.ceil(self.run):
            per_epoch = ("step it once per epoch, not once per batch (compiled.schedule_unit is 'epoch'); "
                         if self.unit == "epoch" else "")
            self._warn("W315", f"the scheduler is stepped past the run's length ({self.run:g} {self.unit}s): "
                       "the schedule holds its last value from here on",
                       f"{per_epoch}if the run is longer, give its real length (run N {self.unit}s, or epochs= "
                       "or steps= when compiling)")

    def _warn(self, code: str, message: str, hint: str) -> None:
        if code not in self._warned:
            self._warned.add(code)
            warnings.warn(ScheduleWarning(code, message, hint), stacklevel=4)

    def state_dict(self) -> dict[str, Any]:
        """The position (``last_epoch``), plateau state and a fingerprint of the programs."""
        return {"format": STATE_FORMAT, "last_epoch": self.last_epoch, "_step_count": self._step_count,
                "fingerprint": self._fingerprint,
                "plateau": {h: p.state() for h, p in self._plateaus.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue where ``state_dict`` left off; warns when the programs changed since it was saved.

        Under the same programs the run continues exactly. Under changed ones it
        continues at the same time on the new curves, each group relative to
        this scheduler's bases; a plateau keeps its saved counters when the new
        programs still end that hyperparameter's schedule with a plateau.
        """
        if state_dict.get("format") != STATE_FORMAT:
            raise ValueError(f"not a SpecScheduler state (format {state_dict.get('format')!r})")
        if state_dict["fingerprint"] != self._fingerprint:
            warnings.warn(f"the schedule changed since this state was saved: continuing at {self.unit} "
                          f"{state_dict['last_epoch']} on the new schedule", stacklevel=2)
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        self._pace.restart()
        saved = state_dict.get("plateau", {})
        for hyper, plateau in self._plateaus.items():
            plateau.load(saved.get(hyper))
            self._held[hyper] = plateau.values(self.bases[hyper])
        self._apply(self.last_epoch)

    def _apply(self, t: int) -> None:
        """Set every scheduled value of every group to its value at ``t``."""
        groups = self.optimizer.param_groups
        for curve in self.curves:
            for k, value in zip(self.members[curve.hyper], self._values(curve, t)):
                _write(groups[k], curve.hyper, value)
        self._last_lr = [g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
                         for g in self.optimizer.param_groups]


class ScheduleWarning(UserWarning):
    """A schedule run in a way that cannot be what was meant, found while it runs (W313-W316).

    ``diagnostic`` holds the code, message and hint as a :class:`~specopt.diagnostics.Diagnostic`.
    """

    def __init__(self, code: str, message: str, hint: str):
        super().__init__(f"{message} [{code}]; hint: {hint}")
        self.diagnostic = Diagnostic(code, message, None, hint, "warning")


class _Tally:
    """A step hook that counts one optimizer's steps (a plain object, so the optimizer still pickles)."""

    def __init__(self):
        self.count = 0

    def __call__(self, optimizer, args, kwargs) -> None:
        self.count += 1


class _Pace:
    """Scheduler calls against optimizer steps, both counted since the scheduler was built or loaded.

    A combined optimizer's steps are the most any of its parts took (stepping
    it steps each part once). A GradScaler skips a step now and then while the
    loop still steps the scheduler, so a few more calls than steps are normal.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.tallies = [_Tally() for _ in getattr(optimizer, "parts", None) or [optimizer]]
        for part, tally in zip(getattr(optimizer, "parts", None) or [optimizer], self.tallies):
            part.register_step_post_hook(tally)
        self.calls = 0

    def restart(self) -> None:
        """Count afresh (a loaded state continues at a position neither count knows)."""
        self.calls = 0
        for tally in self.tallies:
            tally.count = 0

    def ahead(self, unit: str, steps_per_epoch: int | None) -> str | None:
        """Count one call; say how it runs ahead of the optimizer, if it clearly does."""
        self.calls += 1
        steps = max(t.count for t in self.tallies)
        if self.calls - steps > max(16, steps // 4):
            return (f"the scheduler has been stepped {self.calls} times, and the optimizer only {steps} times: "
                    "the schedule runs ahead of the training")
        if unit == "epoch" and steps_per_epoch and self.calls > 2 * steps / steps_per_epoch + 2:
            return (f"the schedule counts epochs, but it has been stepped {self.calls} times in {steps} optimizer "
                    f"steps, about {steps / steps_per_epoch:.3g} epochs of {steps_per_epoch} steps")
        return None


class _Plateau:
    """ReduceLROnPlateau's bookkeeping for one curve's ``plateau`` phase: best, bad calls, cooldown, reductions."""

    def __init__(self, curve: Curve):
        self.curve = curve
        self.phase = curve.program.phases[curve.plateau]
        self.mode, self.threshold_mode = self.arg("mode"), self.arg("threshold_mode")
        self.threshold, self.patience = float(self.arg("threshold")), int(self.arg("patience"))
        self.cooldown = int(self.arg("cooldown"))
        self.load(None)

    def arg(self, name: str) -> Any:
        """An argument of the plateau phase (the table's default when not given)."""
        return argument(self.phase, name)

    def observe(self, metric: float, t: int) -> bool:
        """Count a metric measured at time ``t`` as torch does; return whether a reduction happened."""
        if t < self.phase.start:
            return False
        if self._better(metric):
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad = 0
        if self.bad > self.patience:
            self.reductions += 1
            self.cooldown_left, self.bad = self.cooldown, 0
            return True
        return False

    @property
    def fed(self) -> bool:
        """Whether a metric has been counted (since the start, a checkpoint included)."""
        return math.isfinite(self.best) or bool(self.bad or self.reductions or self.cooldown_left)

    def _better(self, metric: float) -> bool:
        low = self.mode == "min"
        if self.threshold_mode == "rel":
            bar = self.best * (1.0 - self.threshold if low else self.threshold + 1.0)
        else:
            bar = self.best - self.threshold if low else self.best + self.threshold
        return metric < bar if low else metric > bar

    def values(self, bases: list[float]) -> list[float]:
        """Each group's value after the reductions made so far."""
        return [plateau_value(self.curve, b, self.reductions) for b in bases]

    def state(self) -> dict[str, Any]:
        """The counters, for a checkpoint."""
        return {"best": self.best, "bad": self.bad, "cooldown_left": self.cooldown_left,
                "reductions": self.reductions}

    def load(self, state: dict[str, Any] | None) -> None:
        """Restore saved counters, or start afresh with ``None``."""
        worst = math.inf if self.mode == "min" else -math.inf
        state = state or {"best": worst, "bad": 0, "cooldown_left": 0, "reductions": 0}
        self.best, self.bad = float(state["best"]), int(state["bad"])
        self.cooldown_left, self.reductions = int(state["cooldown_left"]), int(state["reductions"])


def _members(curve: Curve, groups: Sequence[dict[str, Any]]) -> list[int]:
    """The groups a curve moves: those that have its hyperparameter (raises when none has it)."""
    found = [k for k, g in enumerate(groups) if moves(curve, g)]
    if not found:
        raise ValueError(f"no param group has {curve.hyper!r} to schedule")
    return found


def _bases(optimizer: torch.optim.Optimizer, hyper: str, members: Sequence[int]) -> list[float]:
    """Each member group's base value of ``hyper``, kept in the group as ``initial_<hyper>`` the first time.

    Every group is checked before any is changed.
    """
    groups = [optimizer.param_groups[k] for k in members]
    current = []
    for k, group in zip(members, groups):
        try:
            current.append(hyper_value(group, hyper))
        except ValueError as exc:
            raise ValueError(f"param group {k}: {exc}") from None
    return [float(g.setdefault(f"initial_{hyper}", v)) for g, v in zip(groups, current)]


def _write(group: dict[str, Any], hyper: str, value: float) -> None:
    """Set one hyperparameter of a group; a tensor value is filled in place, ``betas`` keeps its other element."""
    if hyper in ("beta1", "beta2"):
        index = 0 if hyper == "beta1" else 1
        betas = group["betas"]
        if isinstance(betas[index], torch.Tensor):
            betas[index].fill_(value)
        else:
            group["betas"] = tuple(value if i == index else b for i, b in enumerate(betas))
    elif isinstance(group[hyper], torch.Tensor):
        group[hyper].fill_(value)
    else:
        group[hyper] = value
