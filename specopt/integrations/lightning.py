"""PyTorch Lightning: a spec compiled before Lightning wraps the model, and a callback for its events.

    spec = specopt.lightning.SpecCallback(specopt.load("train.opt"))

    class Classifier(pl.LightningModule):
        def configure_optimizers(self):
            return specopt.lightning.configure_optimizers(self)

    pl.Trainer(callbacks=[spec], max_epochs=10).fit(Classifier())

:class:`SpecCallback` compiles the spec in Lightning's ``setup`` hook, before
the strategy wraps the module in DistributedDataParallel (a freeze after the
wrap breaks DDP), with the steps per epoch Lightning will take.
:func:`configure_optimizers` returns the optimizer and the scheduler with its
``interval`` (the schedule's unit), ``frequency`` and, for a ``plateau``
phase, ``monitor``. Lightning steps the scheduler; the callback runs what
follows each optimizer step that happened (``unfreeze ... at``, lr warmups,
the EMA) and each epoch, and saves and restores that state in Lightning's
checkpoints (Lightning restores the optimizer and scheduler, but not
``requires_grad`` after a gradual unfreeze).

Clipping happens once per step, by the spec's clip hook inside
``optimizer.step(closure)``, on unscaled gradients. A Trainer that clips too
(``gradient_clip_val``) while the spec has a ``clip`` statement is error E601:
the two would clip twice with two maxima, so specopt does not pick one
silently. Likewise Lightning accumulates gradients itself: a spec's
``accumulate N`` must equal ``Trainer(accumulate_grad_batches=N)`` (E602).
Both are reported together, with what checking the spec against the module finds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("specopt.lightning needs PyTorch Lightning: pip install 'specopt[lightning]'") from exc

from ..runtime.checkpoint_checks import spec_record_diagnostics, training_diagnostics
from ..runtime.compiled import CheckpointError, Compiled
from .common import accumulate_clash, clip_clash, compile_for, reduce_unmanaged, refuse
from ..report.spec_changes import SpecChange, plan_hash, spec_record
from ..runtime.training_state import load_training_state, training_state
from ..spec import Spec, load


class SpecCallback(pl.Callback):
    """Compiles a spec for a Lightning run and runs its training-time control.

    ``spec`` is a :class:`specopt.Spec` or a spec file's path; ``module`` the
    attribute path of the submodule to compile against (default: the
    LightningModule itself); ``options`` go to :meth:`Spec.compile`
    (``epochs``, ``steps``, ``steps_per_epoch``: by default taken from the Trainer).
    """

    def __init__(self, spec: Spec | str | Path, module: str | None = None, **options: Any):
        self.spec = spec if isinstance(spec, Spec) else load(spec)
        self.module = module
        self.options = options
        self.compiled: Compiled | None = None
        self._stepped = False
        self._scale: float | None = None
        self._pending: dict[str, Any] | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Compile against the module before the strategy wraps it (only when fitting)."""
        if stage != "fit":
            return
        target = pl_module
        for part in self.module.split(".") if self.module else ():
            target = getattr(target, part)
        engine = "the Lightning Trainer"
        options = _timing(trainer, self.options)
        clashes = clip_clash(self.spec, engine, "gradient_clip_val", trainer.gradient_clip_val or None)
        clashes += accumulate_clash(self.spec, engine, "accumulate_grad_batches", trainer.accumulate_grad_batches)
        refuse(self.spec, clashes, target, options)
        self.compiled = compile_for(self.spec, target, options, unit=None)
        self.compiled.driver.follow_schedule()
        self.compiled.optimizer.register_step_post_hook(self._mark)

    def _mark(self, optimizer, args, kwargs) -> None:
        self._stepped = True

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        """Remember the GradScaler's scale: a step it skips lowers it."""
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self._scale = scaler.get_scale() if scaler is not None else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """After an optimizer step that happened: events, lr warmups, the EMA (Lightning stepped the scheduler)."""
        if not self._stepped:
            return
        self._stepped = False
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        skipped = scaler is not None and self._scale is not None and scaler.get_scale() < self._scale
        self.compiled.after_step(not skipped)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Epoch events (``at epoch N``)."""
        self.compiled.end_epoch()

    def state_dict(self) -> dict[str, Any]:
        """The loop's state (counts, fired events, ``requires_grad`` flags, warmups, EMA) and the spec."""
        if self.compiled is None:
            return {}
        return {"training": training_state(self.compiled.driver, self.compiled.resolution),
                "spec": spec_record(self.compiled.resolution.plan, self.compiled.source)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the saved state until Lightning has restored the optimizer and scheduler."""
        self._pending = state_dict or None

    def on_train_start(self, trainer, pl_module) -> None:
        """Average what DDP does not (:func:`specopt.integrations.common.reduce_unmanaged`); restore the loop's state
        saved in a Lightning checkpoint (see :meth:`state_dict`)."""
        reduce_unmanaged(self.compiled, trainer.strategy.model)
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        _check_loop_state(self.compiled, state)
        _check_same_spec(self.compiled, state.get("spec"))
        _scheduled_lrs(self.compiled, state["training"])
        load_training_state(self.compiled.driver, state["training"], self.compiled.resolution)
        self.compiled.driver.follow_schedule()


def _check_loop_state(compiled: Compiled, state: dict[str, Any]) -> None:
    """The saved loop state and spec record, checked as ``compiled.load_state_dict`` checks them (E511-E514).

    Lightning has restored the model and the optimizer by now; the loop itself is still untouched on error.
    """
    found = spec_record_diagnostics(state, True) + training_diagnostics(state.get("training"), compiled)
    problems = [d for d in found if d.severity == "error"]
    if problems:
        raise CheckpointError(problems, compiled.source)


def configure_optimizers(pl_module) -> dict[str, Any]:
    """What ``LightningModule.configure_optimizers`` returns for the spec of the run's :class:`SpecCallback`."""
    callbacks = [c for c in pl_module.trainer.callbacks if isinstance(c, SpecCallback)]
    if len(callbacks) != 1:
        raise ValueError(f"specopt.lightning.configure_optimizers needs one SpecCallback in the Trainer's "
                         f"callbacks, and there are {len(callbacks)}: pl.Trainer(callbacks=[SpecCallback(...)])")
    if callbacks[0].compiled is None:
        raise ValueError("the SpecCallback compiles its spec when fitting starts (Lightning's setup hook); "
                         "configure_optimizers was called outside trainer.fit")
    return callbacks[0].compiled.lightning()


def _timing(trainer, options: dict[str, Any]) -> dict[str, Any]:
    """``epochs``/``steps`` and ``steps_per_epoch`` for the compile: the caller's, else the Trainer's.

    Lightning steps the optimizer every ``accumulate_grad_batches`` batches and
    on the last batch of an epoch, so an epoch has ``ceil(batches / N)`` steps.
    """
    out = dict(options)
    if "steps_per_epoch" not in out:
        trainer.estimated_stepping_batches  # noqa: B018 - sets up the training data if it is not yet
        batches = trainer.num_training_batches
        if math.isfinite(batches):
            out["steps_per_epoch"] = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
    if "epochs" not in out and "steps" not in out:
        if trainer.max_steps not in (-1, None):
            out["steps"] = trainer.max_steps
        elif trainer.max_epochs is not None and trainer.max_epochs > 0:
            out["epochs"] = trainer.max_epochs
    return out


def _check_same_spec(compiled: Compiled, saved: Any) -> None:
    """E505 when the checkpoint was saved under another spec: Lightning restores the optimizer by position."""
    if not isinstance(saved, dict) or saved.get("hash") == plan_hash(compiled.resolution.plan):
        return
    change = SpecChange(str(saved.get("name")), str(saved.get("hash")), plan_hash(compiled.resolution.plan),
                        "  (Lightning restores optimizer state by position, so a run resumes only under the spec it "
                        "was saved with)")
    raise CheckpointError([change.diagnostic()], compiled.source)


def _scheduled_lrs(compiled: Compiled, training: dict[str, Any]) -> None:
    """Put back the spec's lr in groups that were warming up: Lightning restored their ramped values."""
    if compiled.scheduler is not None:
        return  # restoring the scheduler wrote every group's scheduled values
    for group in training.get("ramps", {}):
        compiled.optimizer.param_groups[int(group)]["lr"] = compiled.driver.ramps.spec_lr(int(group),
                                                                                          compiled.resolution)
