"""The result of compiling a spec against a model: its optimizer, scheduler, clipper and loop.

Checkpoints of it are :mod:`specopt.runtime.checkpoint`'s; ``state_dict`` and
``load_state_dict`` are its two doors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from . import checkpoint
from .checkpoint import STATE_FORMAT, CheckpointError, CheckpointWarning, LoadResult  # noqa: F401 (the API)
from .clip_hook import Clipper
from ..diagnostics import Source
from .implementation import Implementation
from .loop_methods import TrainingLoop
from ..resolve.resolution import Resolution
from ..plan.timing import Timing

if TYPE_CHECKING:
    from .driver import Driver


@dataclass
class Compiled(TrainingLoop):
    """A compiled spec: the torch optimizer, LR scheduler (or ``None``) and clipper (or ``None``).

    ``optimizer`` is one torch optimizer: with several ``optimizer`` statements,
    a :class:`~specopt.runtime.combined.CombinedOptimizer` over ``optimizers``, the
    real ones in slot order (each with its ``implementation`` in ``implementations``).
    ``resolution`` is the report of the assignment: every parameter's frozen
    state, optimizer and hyperparameters, each with the statement that set it.
    ``implementation`` says which implementation the first optimizer runs and why.
    ``driver`` runs the training loop's mechanics (:class:`specopt.runtime.loop_methods.TrainingLoop`),
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
    optimizers: list = field(default_factory=list)
    implementations: list = field(default_factory=list)

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
        was compiled against; ``specopt.report.explain.explain`` returns the same as data.
        """
        from ..report.explain import explain, render_text

        return render_text(explain(self, selector, model))

    def lightning(self) -> dict[str, Any]:
        """The optimizer and scheduler in the form Lightning's ``configure_optimizers`` returns.

        The scheduler's ``interval`` is its unit (``step`` or ``epoch``); a schedule
        that reduces on a plateau is stepped with the metric its ``monitor`` names.
        """
        out: dict[str, Any] = {"optimizer": self.optimizer}
        if self.scheduler is not None:
            config = {"scheduler": self.scheduler, "interval": self.schedule_unit, "frequency": 1}
            if self.scheduler.needs_metric:
                config.update(monitor=self.scheduler.monitor, reduce_on_plateau=True)
            out["lr_scheduler"] = config
        return out

    def state_dict(self) -> dict[str, Any]:
        """Optimizer (and scheduler) state keyed by parameter name, not by position (:func:`specopt.runtime.checkpoint.save`).

        The checkpoint also records which optimizer made the state and each
        parameter's shape and dtype, which :meth:`load_state_dict` checks.
        """
        return checkpoint.save(self)

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> LoadResult:
        """Restore per-parameter state by name; hyperparameters stay as this spec sets them.

        Everything is checked before anything is restored, so on any error the
        model, optimizer, scheduler, EMA and loop are unchanged; see
        :func:`specopt.runtime.checkpoint.load` for the codes and what ``strict`` does.
        """
        return checkpoint.load(self, state, strict)
