"""The step driver: one call per micro-batch does the loop mechanics people get wrong.

    for x, y in loader:
        stepped = compiled.train_step(loss_fn(model(x), y))
    compiled.end_epoch()

``train_step(loss)`` divides the loss by the accumulation count (``accumulate
N``) and runs backward, through the ``GradScaler`` given at compile time if
any. At each accumulation boundary it unscales (``scaler.unscale_``), steps
every optimizer (the clip hook clips), updates the scaler, and then, only when
the optimizer really stepped, does what follows a step (:meth:`Driver.after_step`):
advances step-unit schedules, updates the EMA, fires the events whose moment
has come and sets the lr of ramping groups. Last it drops the gradients
(``set_to_none``). A GradScaler skips a step whose gradients hold inf or nan;
the driver sees that as the scale going down in ``update()``, as Accelerate
does (torch requires ``backoff_factor < 1 < growth_factor``, so the scale goes
down exactly when a step is skipped). That reads the scale on the host once
per optimizer step: a device sync on an accelerator, nothing on the CPU.

``end_epoch(metric=...)`` steps on a partial accumulation left at the end of an
epoch (its micro-batches were each divided by N), advances epoch-unit
schedules, passes the metric to a ``plateau`` phase and fires epoch events. A loop of its own calls ``optimizer.step()`` and then
``after_step()`` per optimizer step, and ``end_epoch()``; neither then calls
``scheduler.step()`` itself. Where a framework steps the scheduler (Lightning,
the Hugging Face Trainer), :meth:`Driver.follow_schedule` leaves that to it.

Under DistributedDataParallel (:meth:`Driver.use_ddp`), the micro-batches
before a boundary run inside the wrapper's ``no_sync()``: the driver enters it
after a step when the next micro-batch is not the last of its accumulation,
and leaves it when it is, so the forward and backward of each micro-batch see
the right mode. Gradients DDP's reducer does not know (parameters frozen when
the model was wrapped and unfrozen later) and those of a partial accumulation
flushed by ``end_epoch()`` are averaged over the ranks by the driver.
Under FSDP2 (``fully_shard``) the driver finds the sharded modules itself at
the first micro-batch, and only the backward of the last micro-batch of an
accumulation reduces the gradients (:class:`~specopt.runtime.sharded_norms.DeferredSync`).
"""

from __future__ import annotations

from typing import Any

import torch

from .unfreezing import Ramps, Switchboard
from ..resolve.norm_layers import apply_modes
from .sharded_norms import DeferredSync


class Driver:
    """The loop state of one compiled spec: step, epoch and micro-batch counts, and what runs between steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler, unit: str | None, accumulate: int, scaler,
                 board: Switchboard, ramps: Ramps, norms: list, model, ema=None):
        self.optimizer = optimizer  # the spec's one optimizer (a combined one when it names several)
        self.scheduler = scheduler
        self.unit = unit
        self.accumulate = accumulate
        self.scaler = scaler
        self.board = board
        self.ramps = ramps
        self.norms = norms
        self.model = model
        self.ema = ema
        self.steps = 0
        self.epochs = 0
        self.micro = 0
        self.wrapper = None
        self._no_sync = None
        self._sharded = None  # FSDP2's deferred reduction (sharded.DeferredSync), False without fully_shard
        self._unmanaged: list[torch.Tensor] = []
        self._scale = None
        self.follows_schedule = False
        self._schedule_seen = None
        apply_modes(norms, board.fired, model)

    # --- one micro-batch ----------------------------------------------------------------------

    def train_step(self, loss: torch.Tensor) -> bool:
        """Backward on ``loss``; at an accumulation boundary, step and what follows. Whether it stepped."""
        if self.accumulate > 1:
            loss = loss / self.accumulate
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        if self._sharded is None:
            self._sharded = (DeferredSync.of(self.model) if self.accumulate > 1 else None) or False
        if self._sharded:
            self._sharded.before_backward(self.micro + 1 >= self.accumulate)
        loss.backward()
        self.micro += 1
        if self.micro < self.accumulate:
            self._sync_next()
            return False
        return self._boundary()

    def _boundary(self, flushing: bool = False) -> bool:
        self.micro = 0
        if self._sharded:
            self._sharded.flush()
        self._reduce(flushing)
        stepped = self._step()
        self.after_step(stepped)
        self.optimizer.zero_grad(set_to_none=True)
        self._sync_next()
        return stepped

    def _step(self) -> bool:
        """Step the optimizer (through the scaler); whether the step really happened."""
        if self.scaler is None:
            self.optimizer.step()
            return True
        self.scaler.unscale_(self.optimizer)
        self.scaler.step(self.optimizer)
        before = self._scale if self._scale is not None else self.scaler.get_scale()
        self.scaler.update()
        self._scale = self.scaler.get_scale()
        return self._scale >= before

    def after_step(self, stepped: bool = True) -> None:
        """What follows an optimizer step that happened: schedule, EMA, events, ramps (nothing if it was skipped)."""
        if not stepped:
            return
        self.steps += 1
        self._follow_schedule()
        if self.unit == "step":
            self._advance_schedule()
        if self.ema is not None and self.ema.due(self.steps):
            self.ema.update(self.model, self.steps)
        self._fire()
        self.ramps.apply(self.steps)

    def end_epoch(self, metric=None) -> None:
        """Close an epoch: step on a partial accumulation, advance epoch-unit schedules, fire epoch events.

        ``metric`` feeds a running ``plateau`` phase as ``scheduler.step(metric)`` would, once per epoch;
        a step-unit schedule counts it without advancing.
        """
        if self.micro:
            self._boundary(flushing=True)
        self.epochs += 1
        self._follow_schedule()
        self._advance_schedule(metric, advance=self.unit == "epoch")
        self._fire()
        self.ramps.apply(self.steps)

    def _advance_schedule(self, metric=None, advance: bool = True) -> None:
        if self.scheduler is None or self.follows_schedule:
            return
        self.ramps.restore()
        if advance:
            self.scheduler.advance(metric)
        else:
            self.scheduler.observe(metric)
        self.ramps.capture()

    def follow_schedule(self) -> None:
        """Let the loop around step the scheduler (Lightning, the Hugging Face Trainer): ``after_step`` and
        ``end_epoch`` then leave it alone and take the values it set as the scheduled ones of lr warmups."""
        self.follows_schedule = True
        self._schedule_seen = self.scheduler.last_epoch if self.scheduler is not None else None

    def _follow_schedule(self) -> None:
        if self.follows_schedule and self.scheduler is not None and self.scheduler.last_epoch != self._schedule_seen:
            self._schedule_seen = self.scheduler.last_epoch
            self.ramps.capture()

    def _fire(self) -> None:
        due = self.board.due(self.steps, self.epochs)
        if due:
            self.board.fire([e.index for e in due], self.steps)
            apply_modes(self.norms, self.board.fired, self.model)

    # --- DistributedDataParallel ----------------------------------------------------------------

    def use_ddp(self, wrapper) -> Any:
        """Run micro-batches before a boundary in ``wrapper.no_sync()``; call right after wrapping the model.

        The parameters trainable now are those DDP's reducer synchronises; the
        driver averages the gradients of the others (unfrozen later) itself.
        """
        if not hasattr(wrapper, "no_sync"):
            raise TypeError(f"{type(wrapper).__name__} has no no_sync(): pass the DistributedDataParallel wrapper")
        self.wrapper = wrapper
        self._unmanaged = unmanaged(self.optimizer, wrapper)
        self._sync_next()
        return wrapper

    def _sync_next(self) -> None:
        """Enter ``no_sync()`` when the next micro-batch is not the last of its accumulation; leave it when it is."""
        if self.wrapper is None:
            return
        last = self.micro + 1 >= self.accumulate
        if last and self._no_sync is not None:
            self._no_sync.__exit__(None, None, None)
            self._no_sync = None
        elif not last and self._no_sync is None:
            self._no_sync = self.wrapper.no_sync()
            self._no_sync.__enter__()

    def _reduce(self, flushing: bool) -> None:
        """Average over the ranks the gradients DDP did not (all of them for a flushed partial accumulation)."""
        if self.wrapper is None:
            return
        held = [p for g in self.optimizer.param_groups for p in g["params"]] if flushing else self._unmanaged
        average_over_ranks(held, getattr(self.wrapper, "process_group", None))


def unmanaged(optimizer: torch.optim.Optimizer, wrapper) -> list[torch.Tensor]:
    """The tensors ``optimizer`` holds that DistributedDataParallel's reducer does not synchronise.

    DDP registers the parameters that require gradients when it wraps the
    model; one that an ``unfreeze ... at`` makes trainable later is not among them.
    """
    managed = {id(p) for p in wrapper.parameters() if p.requires_grad}
    return [p for g in optimizer.param_groups for p in g["params"] if id(p) not in managed]


def average_over_ranks(params: list[torch.Tensor], group) -> None:
    """Average the gradients of ``params`` (those that have one) over the ranks of ``group``."""
    import torch.distributed as dist

    size = dist.get_world_size(group)
    for param in params:
        if param.grad is not None:
            dist.all_reduce(param.grad, group=group)
            param.grad.div_(size)
