"""What the framework adapters share: compiling for an engine's loop, and refusing to do its job twice.

Lightning, the Hugging Face Trainer and Accelerate run the loop themselves:
they accumulate gradients, may clip them and step the scheduler. A spec that
says the same thing differently would have it done twice or half, so the
adapters check, before anything is built: a spec that clips while the engine
clips too is E601, a spec's ``accumulate N`` that differs from the engine's
accumulation is E602, and a schedule the engine cannot step is E603. Each
points at the statement concerned and names the engine's setting. Under
DistributedDataParallel, :func:`reduce_unmanaged` averages the gradients of
parameters unfrozen after the wrap, which DDP does not synchronise.
"""

from __future__ import annotations

from typing import Any

from .build import compile_plan
from .clip import StepHook
from .compiled import Compiled
from .diagnostics import Diagnostic, SpecError
from .driver import average_over_ranks, unmanaged
from .extensions import check_imports
from .report import format_value
from .spec import Spec
from .timing import plan_timing


def compile_for(spec: Spec, model, options: dict[str, Any], unit: str | None) -> Compiled:
    """Compile ``spec`` against ``model``; ``options`` as for :meth:`Spec.compile`.

    ``unit="step"`` counts every schedule in optimizer steps, epochs converted
    with the steps per epoch, for an engine that steps the scheduler once per
    optimizer step whatever the spec's unit.
    """
    check_imports(spec.plan, spec.allow_import, spec.source)
    timing = plan_timing(spec.plan, options.get("epochs"), options.get("steps"), options.get("steps_per_epoch"))
    if unit is not None and timing.unit != unit:
        timing = timing.counted_in(unit)
    return compile_plan(spec.plan, model, spec.source, timing, options.get("scaler"))


def check_clip(spec: Spec, engine: str, setting: str, value: Any) -> None:
    """E601 when the spec clips and ``engine`` clips too (its ``setting`` is ``value``, not ``None``)."""
    clip = spec.plan.clip
    if clip is None or value is None:
        return
    raise SpecError([Diagnostic(
        "E601", f"the spec clips ({clip.mode} {format_value(clip.max)}) and {engine} clips too "
        f"({setting}={format_value(value)}): the gradients would be clipped twice", clip.span,
        f"leave {setting} unset, so that the spec's clip hook clips once per step on unscaled gradients, "
        "or drop the clip statement")], spec.source)


def check_accumulate(spec: Spec, engine: str, setting: str, value: int) -> None:
    """E602 when the spec's ``accumulate N`` differs from the accumulation ``engine`` runs."""
    stmt = next((s for s in spec.plan.statements if s.kind == "accumulate"), None)
    if stmt is None or spec.plan.accumulate == value:
        return
    raise SpecError([Diagnostic(
        "E602", f"the spec accumulates {spec.plan.accumulate} micro-batches per step, but {engine} "
        f"accumulates {value} ({setting}={value}), and it runs the loop", stmt.span,
        f"set {setting}={spec.plan.accumulate}, or drop the accumulate statement")], spec.source)


def check_steppable(spec: Spec, engine: str) -> None:
    """E603 when a schedule waits for a metric (``plateau``), which ``engine`` never passes to ``step()``."""
    for stmt in spec.plan.schedules:
        for phase in getattr(stmt, "phases", ()):
            if phase.kind == "plateau":
                raise SpecError([Diagnostic(
                    "E603", f"a plateau phase waits for a metric, but {engine} steps the scheduler without one",
                    phase.span, "use a schedule of fixed length, or step the scheduler with the metric in a loop "
                    "of your own (compiled.scheduler.step(metric))")], spec.source)


def reduce_unmanaged(compiled: Compiled, wrapper) -> None:
    """Under DistributedDataParallel, average over the ranks, in every optimizer step and before clipping,
    the gradients of trained parameters that DDP's reducer does not know.

    DDP registers the parameters that require gradients when it wraps the
    model; one that an ``unfreeze ... at`` makes trainable later gets only this
    rank's gradient (``compiled.train_step`` averages those itself; a
    framework's loop does not). Call right after the framework wrapped the
    model, before training changes any ``requires_grad``.
    """
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if not isinstance(wrapper, DistributedDataParallel) or dist.get_world_size(wrapper.process_group) == 1:
        return
    params = unmanaged(compiled.optimizer, wrapper)
    if not params:
        return
    StepHook(compiled.optimizer, lambda: average_over_ranks(params, wrapper.process_group))
    if compiled.clipper is not None and compiled.clipper.attached:
        compiled.clipper.attach(compiled.optimizer)  # again, so that it clips after the average
