"""The runtime of a ``schedule``: :class:`SpecScheduler`, a torch LR scheduler that runs compiled programs.

One scheduler moves every scheduled hyperparameter (``lr``, ``weight_decay``,
``momentum``, ``beta1``...) of every param group of one optimizer. Each group's
value is the closed form of its program at ``t`` (the number of ``step()``
calls so far) applied to that group's own base values, read when the scheduler
is built, so a group with ten times the base learning rate keeps that ratio at
every step. Nothing is accumulated from step to step: a scheduler rebuilt from
a checkpoint, a preview and a plot all compute the same values.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler

from .curves import Curve, curves_for, moves, plateau_value
from .schedules import Program, argument, fingerprint, hyper_value

STATE_FORMAT = "specopt.schedule/1"


class SpecScheduler(LRScheduler):
    """Runs schedule :class:`~specopt.schedules.Program` values (at most one per hyperparameter).

    ``unit`` says what one ``step()`` call counts (``"step"`` or ``"epoch"``);
    it only labels previews. Each group's base value of a hyperparameter is
    kept in the group as ``initial_<name>`` (``initial_lr``, as torch's
    schedulers do), so a second scheduler built on the same optimizer reads the
    same bases. Raises ``ValueError`` when a program cannot run on this
    optimizer: two programs for one hyperparameter, an option the optimizer
    lacks, or a ``onecycle`` that must move momentum on an optimizer without
    momentum or betas.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, programs: Sequence[Program], unit: str = "step"):
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
        super().__init__(optimizer)

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
        phase runs; calls without one just advance the time.
        """
        if metric is not None:
            self._observe(float(metric))
        super().step()
        t = self.last_epoch
        groups = self.optimizer.param_groups
        for curve in self._others:
            for k, value in zip(self.members[curve.hyper], self._values(curve, t)):
                _write(groups[k], curve.hyper, value)

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
        s = lerp.s
        return [p + q * s for p, q in cached[1]]

    def _observe(self, metric: float) -> None:
        if not self._plateaus:
            if not self._warned_metric:
                warnings.warn("this schedule has no plateau phase: the metric passed to step() is ignored",
                              stacklevel=3)
                self._warned_metric = True
            return
        for hyper, plateau in self._plateaus.items():
            if plateau.observe(metric, self.last_epoch):
                self._held[hyper] = plateau.values(self.bases[hyper])

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
