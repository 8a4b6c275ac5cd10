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

Clipping happens once per step. ``TrainingArguments.max_grad_norm`` is 1.0
unless set otherwise, so rather than refuse every spec that clips, the spec
wins: with a ``clip`` statement, ``max_grad_norm`` is set to 0 and the spec's
clip hook clips inside ``optimizer.step()`` (on unscaled gradients: the
Trainer's Accelerate unscales before stepping); without one, the Trainer
clips at ``max_grad_norm``. Either way a log line says which. The Trainer
accumulates gradients itself: a spec's ``accumulate N`` must equal
``gradient_accumulation_steps`` (E602), and a ``plateau`` phase, which waits
for a metric the Trainer never passes, is E603.
"""

from __future__ import annotations

import logging
import math
from typing import Any

try:
    import transformers
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("specopt.hf needs transformers: pip install 'specopt[hf]'") from exc

import torch

from .compiled import Compiled
from .engines import check_accumulate, check_steppable, compile_for, reduce_unmanaged
from .report import format_value
from .spec import Spec

log = logging.getLogger("specopt")


def attach(trainer, spec: Spec, **options: Any) -> Compiled:
    """Compile ``spec`` for ``trainer`` and give it the optimizer, scheduler and a callback; before ``train()``.

    ``options`` go to :meth:`Spec.compile` (``epochs``, ``steps``,
    ``steps_per_epoch``); by default they are the Trainer's.
    """
    args = trainer.args
    engine = "the Hugging Face Trainer"
    check_accumulate(spec, engine, "gradient_accumulation_steps", args.gradient_accumulation_steps)
    check_steppable(spec, engine)
    timing = _timing(trainer)
    if "epochs" in options or "steps" in options:
        timing.pop("steps", None)
    compiled = compile_for(spec, trainer.model, {**timing, **options}, unit="step")
    _settle_clipping(spec, args)
    compiled.driver.follow_schedule()
    scheduler = compiled.scheduler or torch.optim.lr_scheduler.ConstantLR(compiled.optimizer, 1.0, total_iters=0)
    trainer.optimizer, trainer.lr_scheduler = compiled.optimizer, scheduler
    trainer.add_callback(SpecTrainerCallback(trainer, compiled))
    return compiled


class SpecTrainerCallback(transformers.TrainerCallback):
    """Runs a compiled spec's training-time control after each Trainer step and epoch."""

    def __init__(self, trainer, compiled: Compiled):
        self.trainer = trainer
        self.compiled = compiled
        self._wrapped = False

    def on_train_begin(self, args, state, control, **kwargs):
        """Once the Trainer wrapped the model: average what DDP does not (:func:`specopt.engines.reduce_unmanaged`)."""
        if not self._wrapped:
            reduce_unmanaged(self.compiled, self.trainer.model_wrapped)
            self._wrapped = True

    def on_step_end(self, args, state, control, **kwargs):
        """After an optimizer step (the Trainer stepped the scheduler unless the step was skipped)."""
        self.compiled.after_step(not self.trainer.accelerator.optimizer_step_was_skipped)

    def on_epoch_end(self, args, state, control, **kwargs):
        """Epoch events (``at epoch N``)."""
        self.compiled.end_epoch()


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
