"""What a compiled spec offers a training loop: the step driver, the EMA copy and evaluation mode.

:class:`TrainingLoop` is a base of :class:`specopt.runtime.compiled.Compiled`; its
methods hand over to the :class:`specopt.runtime.driver.Driver` the build made.

    compiled = spec.compile(model, scaler=torch.amp.GradScaler())
    for epoch in range(epochs):
        for x, y in loader:
            compiled.train_step(loss_fn(model(x), y))
        compiled.end_epoch()
        with compiled.evaluating(ema=True) as averaged:
            accuracy = evaluate(averaged)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from .devices import release_cached_memory


class TrainingLoop:
    """The loop-facing part of a compiled spec (``driver`` and ``resolution`` come from :class:`Compiled`)."""

    def train_step(self, loss: torch.Tensor) -> bool:
        """One micro-batch: backward on ``loss`` (divided by the accumulation count), and at an accumulation
        boundary unscale, step (clipping), update the scaler and, if the step happened, advance step-unit
        schedules, the EMA, events and lr warmups; then drop the gradients. Returns whether it stepped."""
        return self.driver.train_step(loss)

    def after_step(self, stepped: bool = True) -> None:
        """For a loop of its own, after each ``optimizer.step()``: what ``train_step`` does after stepping.

        Pass ``stepped=False`` when a GradScaler skipped the step. Do not call
        ``scheduler.step()`` as well: this advances step-unit schedules.
        """
        self.driver.after_step(stepped)

    def end_epoch(self, metric=None) -> None:
        """Close an epoch: step on a partial accumulation, advance epoch-unit schedules, fire epoch events.

        Pass ``metric`` (a number or 0-dim tensor, such as the validation loss)
        when the schedule has a ``plateau`` phase: it counts as
        ``scheduler.step(metric)`` would, and an epoch without one warns while a
        plateau phase runs (W313). Do not call ``scheduler.step()`` as well.
        """
        self.driver.end_epoch(metric)

    def use_ddp(self, wrapper):
        """Let ``train_step`` skip gradient synchronisation before each boundary; returns ``wrapper``.

        Call it right after wrapping the compiled model in DistributedDataParallel.
        """
        return self.driver.use_ddp(wrapper)

    @property
    def steps(self) -> int:
        """Optimizer steps taken so far (skipped ones not counted)."""
        return self.driver.steps

    @property
    def epochs(self) -> int:
        """Epochs closed so far with ``end_epoch()``."""
        return self.driver.epochs

    @property
    def ema(self) -> torch.optim.swa_utils.AveragedModel | None:
        """The averaged copy of the model (``ema`` statement), for evaluation; ``None`` without one."""
        return self.driver.ema.averaged if self.driver.ema is not None else None

    @contextmanager
    def evaluating(self, ema: bool = False, release_memory: bool = False) -> Iterator[torch.nn.Module]:
        """Evaluate under ``torch.inference_mode()`` with the model (or its EMA copy) in eval mode.

        Yields the module to evaluate. On exit every submodule gets back the
        mode it had (locked norm layers stay locked); ``release_memory``
        then hands the accelerator's cached memory back.
        """
        if ema and self.ema is None:
            raise ValueError("this spec keeps no EMA of the weights: add an 'ema' statement")
        model = self.ema if ema else self.resolution.model
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            with torch.inference_mode():
                yield model
        finally:
            for module, mode in modes:
                module.training = mode
            if release_memory:
                release_cached_memory()
