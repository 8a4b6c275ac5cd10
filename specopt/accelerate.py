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
batches of one process), so the schedule would run N times too fast (E603).
The stepper instead advances the schedule once per optimizer step that
happened (not while accumulating, not when the GradScaler skipped the step)
and runs the spec's ``unfreeze ... at``, lr warmups and EMA.

Clipping happens once per step, in the spec's hook. With a ``clip``
statement, calling ``accelerator.clip_grad_norm_`` (or ``clip_grad_value_``)
on the spec's parameters as well is E601, raised at that call; a spec's
``accumulate N`` must equal the Accelerator's ``gradient_accumulation_steps`` (E602).
"""

from __future__ import annotations

from typing import Any

try:
    import accelerate
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("specopt.accelerate needs Accelerate: pip install 'specopt[accelerate]'") from exc

from .compiled import Compiled
from .diagnostics import Diagnostic, SpecError
from .engines import check_accumulate, check_clip, reduce_unmanaged
from .spec import Spec


def prepare(accelerator: "accelerate.Accelerator", compiled: Compiled, model) -> tuple[Any, "SpecStepper"]:
    """The prepared optimizer, and the stepper that takes the scheduler's place in the loop.

    ``model`` is what ``accelerator.prepare`` returned for the compiled model
    (its DistributedDataParallel wrapper when there are several processes).
    """
    spec = Spec(compiled.resolution.plan, compiled.source)
    check_accumulate(spec, "the Accelerator", "gradient_accumulation_steps", accelerator.gradient_accumulation_steps)
    _refuse_prepared_scheduler(accelerator, compiled, spec)
    optimizer = accelerator.prepare_optimizer(compiled.optimizer)
    reduce_unmanaged(compiled, model)
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


def _refuse_prepared_scheduler(accelerator, compiled: Compiled, spec: Spec) -> None:
    """E603 when ``accelerator.prepare`` already wrapped the spec's scheduler."""
    prepared = getattr(accelerator, "_schedulers", ())
    wrapped = [s for s in prepared if getattr(s, "scheduler", None) is compiled.scheduler]
    if compiled.scheduler is None or not wrapped:
        return
    times = accelerator.num_processes
    raise SpecError([Diagnostic(
        "E603", f"accelerator.prepare wrapped the spec's scheduler in an AcceleratedScheduler, which steps it "
        f"once per process ({times} times) for every optimizer step", compiled.resolution.plan.schedules[0].span,
        "leave compiled.scheduler out of accelerator.prepare: the stepper specopt.accelerate.prepare returns "
        "steps it once per optimizer step")], spec.source)


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
