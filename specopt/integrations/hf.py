"""The Hugging Face ``Trainer``: a spec's optimizer and schedule, counted in the Trainer's steps.

    trainer = Trainer(model=model, args=args, train_dataset=train)
    compiled = specopt.hf.attach(trainer, specopt.load("train.opt"))
    trainer.train()

:func:`attach` compiles the spec against ``trainer.model`` before the Trainer
wraps it, and hands the Trainer the optimizer and the scheduler, as
``Trainer(optimizers=(optimizer, scheduler))`` would. The Trainer steps the
scheduler once per optimizer step (after gradient accumulation, and not when
a GradScaler skipped the step), so every schedule is counted in those steps:
epochs are converted with the Trainer's own steps per epoch,
``ceil(len(train_dataloader) / gradient_accumulation_steps)``, and a share of
the run with its ``max_steps`` (or ``num_train_epochs`` times the steps per
epoch). A spec without a schedule gets a scheduler that leaves the lr alone,
since the Trainer would otherwise make its own linear decay. A callback runs
what follows each step and epoch (``unfreeze ... at``, lr warmups, the EMA).

The Trainer saves the scheduler's state in each checkpoint folder
(``scheduler.pt``), and the scheduler it holds (:class:`TrainerScheduler`)
puts the loop's state there too: step and epoch counts, which timed
statements fired, ``requires_grad`` flags, lr warmups and the EMA.
``trainer.train(resume_from_checkpoint=...)`` restores it with the optimizer
and the schedule, so a resumed run continues bit for bit as the uninterrupted
one (under the spec it was saved with: another is E505).

Clipping happens once per step. ``TrainingArguments.max_grad_norm`` is 1.0
unless set otherwise, so rather than refuse every spec that clips, the spec
wins: with a ``clip`` statement, ``max_grad_norm`` is set to 0 and the spec's
clip hook clips inside ``optimizer.step()`` (on unscaled gradients: the
Trainer's Accelerate unscales before stepping); without one, the Trainer
clips at ``max_grad_norm``. Either way a log line says which. The Trainer
accumulates gradients itself: a spec's ``accumulate N`` must equal
``gradient_accumulation_steps`` (E602), and a ``plateau`` phase, which waits
for a metric the Trainer never passes, is E603; both are reported together.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

try:
    import transformers
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("specopt.hf needs transformers: pip install 'specopt[hf]'") from exc

import torch

from ..runtime.compiled import CheckpointWarning, Compiled
from .common import (accumulate_clash, check_same_spec, compile_for, plateau_clash, reduce_unmanaged, refuse,
                      restore_loop)
from ..report.spec_changes import spec_record
from ..report.resolution_report import format_value
from ..runtime.training_state import training_state
from ..spec import Spec

log = logging.getLogger("specopt")
ENGINE = "the Hugging Face Trainer"
STATE_FORMAT = "specopt.hf/1"


def attach(trainer, spec: Spec, **options: Any) -> Compiled:
    """Compile ``spec`` for ``trainer`` and give it the optimizer, scheduler and a callback; before ``train()``.

    ``options`` go to :meth:`Spec.compile` (``epochs``, ``steps``,
    ``steps_per_epoch``); by default they are the Trainer's. Every clash with
    the Trainer's settings (E602, E603) is reported at once.
    """
    args = trainer.args
    timing = _timing(trainer)
    if "epochs" in options or "steps" in options:
        timing.pop("steps", None)
    options = {**timing, **options}
    clashes = accumulate_clash(spec, ENGINE, "gradient_accumulation_steps", args.gradient_accumulation_steps)
    refuse(spec, clashes + plateau_clash(spec, ENGINE), trainer.model, options)
    compiled = compile_for(spec, trainer.model, options, unit="step")
    _settle_clipping(spec, args)
    compiled.driver.follow_schedule()
    callback = SpecTrainerCallback(trainer, compiled)
    scheduler = compiled.scheduler or torch.optim.lr_scheduler.ConstantLR(compiled.optimizer, 1.0, total_iters=0)
    trainer.optimizer, trainer.lr_scheduler = compiled.optimizer, TrainerScheduler(scheduler, callback)
    trainer.add_callback(callback)
    return compiled


class SpecTrainerCallback(transformers.TrainerCallback):
    """Runs a compiled spec's training-time control after each Trainer step and epoch."""

    def __init__(self, trainer, compiled: Compiled):
        self.trainer = trainer
        self.compiled = compiled
        self._wrapped = False
        self._resumed: str | None = None  # "loop", or "schedule" from a checkpoint without the loop's state

    def wrapped(self) -> None:
        """Once the Trainer wrapped the model, and before a resume changes any ``requires_grad``: average what
        DDP does not (:func:`specopt.integrations.common.reduce_unmanaged`)."""
        if not self._wrapped:
            reduce_unmanaged(self.compiled, self.trainer.model_wrapped)
            self._wrapped = True

    def resume(self, training: dict[str, Any] | None) -> None:
        """Continue the loop from a checkpoint's training state; ``None`` when the checkpoint has none."""
        self.wrapped()
        if training is not None:
            restore_loop(self.compiled, training)
        self._resumed = "loop" if training is not None else "schedule"

    def on_train_begin(self, args, state, control, **kwargs):
        """Average what DDP does not. After a resume, close the epoch that a checkpoint saved on its last step
        left open (the Trainer goes on with the next epoch and never ends that one), or warn that the
        checkpoint had no loop state (here: the Trainer drops a single warning raised while it loads)."""
        self.wrapped()
        resumed, self._resumed = self._resumed, None
        if resumed == "schedule":
            warnings.warn("the checkpoint holds no specopt loop state (saved by an older specopt.hf): the schedule "
                          "continues, but the step count, timed unfreezes, lr warmups and the EMA start over",
                          CheckpointWarning, stacklevel=2)
        elif resumed == "loop":
            for _ in range(int(state.epoch or 0) - self.compiled.epochs):
                self.compiled.end_epoch()

    def on_step_end(self, args, state, control, **kwargs):
        """After an optimizer step (the Trainer stepped the scheduler unless the step was skipped)."""
        self.compiled.after_step(not self.trainer.accelerator.optimizer_step_was_skipped)

    def on_epoch_end(self, args, state, control, **kwargs):
        """Epoch events (``at epoch N``)."""
        self.compiled.end_epoch()


class TrainerScheduler:
    """The scheduler the Trainer holds: it steps the spec's schedule, and its state carries the loop's.

    The Trainer saves ``state_dict()`` in each checkpoint folder
    (``scheduler.pt``) and loads it on ``train(resume_from_checkpoint=...)``
    right after the optimizer's state. With the schedule's position come the
    loop's step and epoch counts, the ``unfreeze ... at`` that fired, the
    ``requires_grad`` flags, lr warmups in progress and the EMA
    (:mod:`specopt.runtime.training_state`), so a resumed run continues as the uninterrupted
    one would have. ``scheduler`` is the spec's (or a constant one); its other
    attributes (``last_epoch``, ...) read through.
    """

    def __init__(self, scheduler, callback: SpecTrainerCallback):
        self.scheduler = scheduler
        self.optimizer = scheduler.optimizer
        self.callback = callback

    def __getattr__(self, name: str) -> Any:
        if name in ("scheduler", "callback", "optimizer"):  # not set yet (while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.scheduler, name)

    def step(self) -> None:
        """One optimizer step of the schedule."""
        self.scheduler.step()

    def get_last_lr(self) -> list[float]:
        """Each group's lr after the last step, as the Trainer logs it."""
        return self.scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """The schedule's state, the loop's (:func:`specopt.runtime.training_state.training_state`) and the spec's record."""
        compiled = self.callback.compiled
        return {"format": STATE_FORMAT, "scheduler": self.scheduler.state_dict(),
                "training": training_state(compiled.driver, compiled.resolution),
                "spec": spec_record(compiled.resolution.plan, compiled.source)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s data: E505 when saved under another spec, E501 when it does not fit.

        A checkpoint saved before specopt kept the loop's state here holds the
        schedule alone: it is restored, and when training begins a warning says what starts over.
        """
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            self.scheduler.load_state_dict(state)
            self.callback.resume(None)
            return
        check_same_spec(self.callback.compiled, state, ENGINE)
        self.scheduler.load_state_dict(state["scheduler"])
        self.callback.resume(state.get("training") or {})


def _timing(trainer) -> dict[str, Any]:
    """The Trainer's steps per epoch and run length, in optimizer steps, as its training loop counts them."""
    args = trainer.args
    try:
        batches = len(trainer.get_train_dataloader())
    except TypeError:  # an iterable dataset without a length
        return {"steps": args.max_steps} if args.max_steps > 0 else {}
    steps_per_epoch = max(1, math.ceil(batches / args.gradient_accumulation_steps))
    steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
    return {"steps_per_epoch": steps_per_epoch, "steps": steps}


def _settle_clipping(spec: Spec, args) -> None:
    """One of the spec's clip and ``max_grad_norm`` clips; say which in the log."""
    clip = spec.plan.clip
    if clip is None:
        if args.max_grad_norm and args.max_grad_norm > 0:
            log.info("specopt: the spec has no clip statement; the Trainer clips at max_grad_norm=%s",
                     format_value(args.max_grad_norm))
        return
    if args.max_grad_norm and args.max_grad_norm > 0:
        log.info("specopt: the spec clips (clip %s %s), so the Trainer's max_grad_norm=%s is turned off "
                 "(set to 0)", clip.mode, format_value(clip.max), format_value(args.max_grad_norm))
    args.max_grad_norm = 0.0
