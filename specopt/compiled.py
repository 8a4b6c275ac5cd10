"""The result of compiling a spec against a model, and name-keyed optimizer checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .clip import Clipper
from .diagnostics import Source
from .implementation import Implementation
from .loop import TrainingLoop
from .resolve import Resolution
from .resume import load_training_state, training_state
from .timing import Timing

if TYPE_CHECKING:
    from .driver import Driver

STATE_FORMAT = "specopt.optimizer/1"


@dataclass
class Compiled(TrainingLoop):
    """A compiled spec: the torch optimizer, LR scheduler (or ``None``) and clipper (or ``None``).

    ``resolution`` is the report of the assignment: every parameter's frozen
    state and hyperparameters, each with the statement that set it.
    ``implementation`` says which optimizer implementation was chosen and why.
    ``driver`` runs the training loop's mechanics (:class:`specopt.loop.TrainingLoop`),
    and ``device`` is where the ``device`` statement moved the model (``None`` without one).
    """

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    clipper: Clipper | None
    resolution: Resolution
    source: Source | None = None
    implementation: "Implementation | None" = None
    timing: "Timing | None" = None
    driver: "Driver | None" = None
    device: "torch.device | None" = None

    @property
    def schedule_unit(self) -> str | None:
        """What one ``scheduler.step()`` call counts: ``"epoch"``, ``"step"``, or ``None`` without a schedule."""
        return self.timing.unit if self.scheduler is not None and self.timing else None

    @property
    def frozen(self) -> list[str]:
        """Names of the parameters this spec leaves frozen."""
        return [p.info.name for p in self.resolution.params if p.frozen]

    def explain(self, selector: str | None = None, model=None) -> str:
        """Every statement that touched each parameter (or those ``selector`` picks) and its final values.

        A selector is matched against ``model``, by default the module this spec
        was compiled against; ``specopt.explain.explain`` returns the same as data.
        """
        from .explain import explain, render_text

        return render_text(explain(self, selector, model))

    def lightning(self) -> dict[str, Any]:
        """The optimizer and scheduler in the form Lightning's ``configure_optimizers`` returns."""
        out: dict[str, Any] = {"optimizer": self.optimizer}
        if self.scheduler is not None:
            out["lr_scheduler"] = {"scheduler": self.scheduler, "interval": self.schedule_unit, "frequency": 1}
        return out

    def state_dict(self) -> dict[str, Any]:
        """Optimizer (and scheduler) state keyed by parameter name, not by position."""
        raw = self.optimizer.state_dict()
        names = [n for g in self.optimizer.param_groups for n in g["param_names"]]
        out = {"format": STATE_FORMAT, "param_names": names,
               "state": {names[i]: s for i, s in raw["state"].items()}}
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler.state_dict()
        if self.driver is not None:
            out["training"] = training_state(self.driver, self.resolution)
        return out

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Restore per-parameter state by name; hyperparameters stay as this spec sets them.

        With ``strict``, a saved name that this model lacks, or a trainable
        parameter without saved state, is an error rather than silently skipped.
        """
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a specopt optimizer checkpoint (format {state.get('format')!r})")
        canonical = {n: p.info.name for p in self.resolution.params for n in p.info.names}
        current = self.optimizer.state_dict()
        position = {n: i for i, n in enumerate(n for g in self.optimizer.param_groups for n in g["param_names"])}
        saved = {canonical.get(n, n): s for n, s in state["state"].items()}
        known = {canonical.get(n, n) for n in state["param_names"]}
        unknown = sorted(n for n in known if n not in position)
        missing = sorted(n for n in position if n not in known)
        if strict and (unknown or missing):
            raise ValueError(_mismatch(unknown, missing))
        restored = {position[n]: s for n, s in saved.items() if n in position}
        self.optimizer.load_state_dict({"state": restored, "param_groups": current["param_groups"]})
        if self.scheduler is not None and "scheduler" in state:
            self._resume_schedule(state["scheduler"])
        if self.driver is not None and "training" in state:
            load_training_state(self.driver, state["training"], self.resolution)

    def _resume_schedule(self, saved: dict[str, Any]) -> None:
        """Continue the schedule where the checkpoint left it, under this spec's schedule settings.

        Only the schedule's progress is restored; each group's learning rate is
        then recomputed from this spec's base values, so a resumed run with the
        same spec continues exactly, and a changed schedule applies from now on.
        """
        self.scheduler.last_epoch = saved["last_epoch"]
        self.scheduler._step_count = saved.get("_step_count", saved["last_epoch"] + 1)
        lrs = self.scheduler._get_closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self.scheduler._last_lr = list(lrs)


def _mismatch(unknown: list[str], missing: list[str]) -> str:
    parts = []
    if unknown:
        parts.append(f"saved state for parameters this optimizer does not train: {', '.join(unknown[:8])}")
    if missing:
        parts.append(f"no saved state for: {', '.join(missing[:8])}")
    return "; ".join(parts) + " (pass strict=False to restore the rest)"
