"""Hugging Face Accelerate: the spec's optimizer after ``accelerator.prepare``, and one schedule step per step.

    compiled = spec.compile(model, steps_per_epoch=math.ceil(len(loader) / accumulation))
    model, loader = accelerator.prepare(model, loader)
    optimizer, stepper = specopt.accelerate.prepare(accelerator, compiled, model)
    for batch in loader:
        with accelerator.accumulate(model):
            accelerator.backward(loss_fn(model, batch))
            optimizer.step()          # the spec's clip hook clips, on unscaled gradients
            stepper.step()            # where scheduler.step() would go
            optimizer.zero_grad()
    stepper.end_epoch()

Compile the spec on the bare model (before ``accelerator.prepare`` wraps it in
DistributedDataParallel) with the steps per epoch of the *prepared* loader,
which each process walks a share of, and give :func:`prepare` the model
``accelerator.prepare`` returned: parameters that an ``unfreeze ... at``
makes trainable later are unknown to DDP, and the optimizer step averages
their gradients over the processes itself. :func:`prepare` wraps the optimizer in
Accelerate's ``AcceleratedOptimizer`` and returns a :class:`SpecStepper` in
place of the scheduler. Do not pass ``compiled.scheduler`` to
``accelerator.prepare``: its ``AcceleratedScheduler`` steps a scheduler once
per process for every optimizer step (Accelerate assumes a schedule counted in
batches of one process), so the schedule would run N times too fast (E603,
whether ``accelerator.prepare`` got it before :func:`prepare` or after).
The stepper instead advances the schedule once per optimizer step that
happened (not while accumulating, not when the GradScaler skipped the step)
and runs the spec's ``unfreeze ... at``, lr warmups and EMA.

Clipping happens once per step, in the spec's hook. With a ``clip``
statement, calling ``accelerator.clip_grad_norm_`` (or ``clip_grad_value_``)
on the spec's parameters as well is E601, raised at that call; a spec's
``accumulate N`` must equal the Accelerator's ``gradient_accumulation_steps`` (E602),
reported together with a prepared scheduler's E603.
"""

from __future__ import annotations

from typing import Any

try:
    import accelerate
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("specopt.accelerate needs Accelerate: pip install 'specopt[accelerate]'") from exc

from ..runtime.compiled import Compiled
from ..diagnostics import Diagnostic
from .common import accumulate_clash, check_clip, reduce_unmanaged, refuse
from ..spec import Spec


def prepare(accelerator: "accelerate.Accelerator", compiled: Compiled, model) -> tuple[Any, "SpecStepper"]:
    """The prepared optimizer, and the stepper that takes the scheduler's place in the loop.

    ``model`` is what ``accelerator.prepare`` returned for the compiled model
    (its DistributedDataParallel wrapper when there are several processes).
    """
    spec = Spec(compiled.resolution.plan, compiled.source)
    clashes = accumulate_clash(spec, "the Accelerator", "gradient_accumulation_steps",
                               accelerator.gradient_accumulation_steps)
    if any(getattr(s, "scheduler", None) is compiled.scheduler for s in getattr(accelerator, "_schedulers", ())):
        clashes += _scheduler_clash(accelerator, compiled)  # it went to accelerator.prepare already
    refuse(spec, clashes)
    optimizer = accelerator.prepare_optimizer(compiled.optimizer)
    reduce_unmanaged(compiled, model)
    _guard_scheduler(accelerator, compiled, spec)
    if compiled.clipper is not None:
        for name in ("clip_grad_norm_", "clip_grad_value_"):
            _guard(accelerator, name, compiled, spec)
    return optimizer, SpecStepper(accelerator, compiled, optimizer)


class SpecStepper:
    """Stands where ``scheduler.step()`` goes in an Accelerate loop: what follows each optimizer step.

    ``state_dict``/``load_state_dict`` are the compiled spec's checkpoint
    (by name), so ``accelerator.register_for_checkpointing(stepper)`` saves it
    with ``accelerator.save_state``.
    """

    def __init__(self, accelerator, compiled: Compiled, optimizer):
        self.accelerator = accelerator
        self.compiled = compiled
        self.optimizer = optimizer

    def step(self) -> None:
        """After ``optimizer.step()``: nothing while accumulating; else schedule, events, warmups, EMA."""
        if not self.accelerator.sync_gradients:
            return
        self.compiled.after_step(not self.optimizer.step_was_skipped)

    def end_epoch(self, metric=None) -> None:
        """Close an epoch: epoch-unit schedules, a ``plateau`` phase's ``metric`` and ``at epoch N`` events."""
        self.compiled.end_epoch(metric)

    def state_dict(self) -> dict[str, Any]:
        """``compiled.state_dict()``."""
        return self.compiled.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """``compiled.load_state_dict(state)``."""
        self.compiled.load_state_dict(state)


def _scheduler_clash(accelerator, compiled: Compiled) -> list[Diagnostic]:
    """E603: the spec's scheduler went to ``accelerator.prepare``, before or after :func:`prepare`."""
    if compiled.scheduler is None:
        return []
    return [Diagnostic(
        "E603", f"the spec's scheduler went to accelerator.prepare, whose AcceleratedScheduler steps it once per "
        f"process ({accelerator.num_processes} times) for every optimizer step",
        compiled.resolution.plan.schedules[0].span,
        "leave compiled.scheduler out of accelerator.prepare: the stepper specopt.accelerate.prepare returns "
        "steps it once per optimizer step")]


def _guard_scheduler(accelerator, compiled: Compiled, spec: Spec) -> None:
    """Make ``accelerator.prepare`` (and ``prepare_scheduler``) refuse the spec's scheduler later on (E603);
    this instance only."""
    original = accelerator.prepare_scheduler

    def guarded(scheduler, *args, **kwargs):
        if compiled.scheduler is not None and scheduler is compiled.scheduler:
            refuse(spec, _scheduler_clash(accelerator, compiled))
        return original(scheduler, *args, **kwargs)

    guarded.__doc__ = original.__doc__
    accelerator.prepare_scheduler = guarded


def _guard(accelerator, name: str, compiled: Compiled, spec: Spec) -> None:
    """Make ``accelerator.<name>`` refuse (E601) the parameters the spec clips already; this instance only."""
    original = getattr(accelerator, name)
    clipped = {id(p) for p in compiled.clipper.params}

    def guarded(parameters, limit, *args, **kwargs):
        parameters = list(parameters)
        if any(id(p) in clipped for p in parameters):
            check_clip(spec, "the loop", f"accelerator.{name}", limit)
        return original(parameters, limit, *args, **kwargs)

    guarded.__doc__ = original.__doc__
    setattr(accelerator, name, guarded)
