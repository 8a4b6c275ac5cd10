"""What the framework adapters share: compiling for an engine's loop, and refusing to do its job twice.

Lightning, the Hugging Face Trainer and Accelerate run the loop themselves:
they accumulate gradients, may clip them and step the scheduler. A spec that
says the same thing differently would have it done twice or half, so the
adapters check, before anything is built: a spec that clips while the engine
clips too is E601, a spec's ``accumulate N`` that differs from the engine's
accumulation is E602, and a schedule the engine cannot step is E603. Each
points at the statement concerned and names the engine's setting, and every
clash is reported in one round (:func:`refuse`), together with what checking
the spec against the model finds. Under DistributedDataParallel,
:func:`reduce_unmanaged` averages the gradients of parameters unfrozen after
the wrap, which DDP does not synchronise. An engine that restores the
optimizer and scheduler from its own checkpoints by position resumes the
loop's state with :func:`check_same_spec` and :func:`restore_loop`.
"""

from __future__ import annotations

from typing import Any

from ..build.assemble import compile_plan, resolve_model
from ..runtime.clip_hook import StepHook
from ..runtime.compiled import CheckpointError, Compiled
from ..diagnostics import Diagnostic, SpecError
from ..runtime.driver import average_over_ranks, unmanaged
from ..plan.extensions import check_imports
from ..report.spec_changes import spec_change
from ..report.resolution_report import format_value
from ..runtime.training_state import load_training_state
from ..spec import Spec
from ..plan.timing import plan_timing


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


def refuse(spec: Spec, clashes: list[Diagnostic], model=None, options: dict[str, Any] | None = None) -> None:
    """Raise every clash with the framework at once, with what checking the spec against ``model`` finds.

    Nothing is built and the model is not changed: with ``model`` (and the
    compile ``options``), the spec is only resolved against it, so that a
    selector that selects nothing is reported in the same round as the clashes.
    """
    if not clashes:
        return
    found = list(clashes)
    if model is not None:
        try:
            check_imports(spec.plan, spec.allow_import, spec.source)
            options = options or {}
            plan_timing(spec.plan, options.get("epochs"), options.get("steps"), options.get("steps_per_epoch"))
            resolve_model(spec.plan, model, spec.source)
        except SpecError as exc:
            found += exc.diagnostics
    raise SpecError(found, spec.source)


def clip_clash(spec: Spec, engine: str, setting: str, value: Any) -> list[Diagnostic]:
    """E601 when the spec clips and ``engine`` clips too (its ``setting`` is ``value``, not ``None``)."""
    clip = spec.plan.clip
    if clip is None or value is None:
        return []
    return [Diagnostic(
        "E601", f"the spec clips ({clip.mode} {format_value(clip.max)}) and {engine} clips too "
        f"({setting}={format_value(value)}): the gradients would be clipped twice", clip.span,
        f"leave {setting} unset, so that the spec's clip hook clips once per step on unscaled gradients, "
        "or drop the clip statement")]


def accumulate_clash(spec: Spec, engine: str, setting: str, value: int) -> list[Diagnostic]:
    """E602 when the spec's ``accumulate N`` differs from the accumulation ``engine`` runs."""
    stmt = next((s for s in spec.plan.statements if s.kind == "accumulate"), None)
    if stmt is None or spec.plan.accumulate == value:
        return []
    return [Diagnostic(
        "E602", f"the spec accumulates {spec.plan.accumulate} micro-batches per step, but {engine} "
        f"accumulates {value} ({setting}={value}), and it runs the loop", stmt.span,
        f"set {setting}={spec.plan.accumulate}, or drop the accumulate statement")]


def plateau_clash(spec: Spec, engine: str) -> list[Diagnostic]:
    """E603 for each schedule phase that waits for a metric (``plateau``), which ``engine`` never passes."""
    return [Diagnostic(
        "E603", f"a plateau phase waits for a metric, but {engine} steps the scheduler without one",
        phase.span, "use a schedule of fixed length, or step the scheduler with the metric in a loop "
        "of your own (compiled.scheduler.step(metric))")
        for stmt in spec.plan.schedules for phase in getattr(stmt, "phases", ()) if phase.kind == "plateau"]


def check_clip(spec: Spec, engine: str, setting: str, value: Any) -> None:
    """Raise :func:`clip_clash`'s E601, if any."""
    refuse(spec, clip_clash(spec, engine, setting, value))


def check_accumulate(spec: Spec, engine: str, setting: str, value: int) -> None:
    """Raise :func:`accumulate_clash`'s E602, if any."""
    refuse(spec, accumulate_clash(spec, engine, setting, value))


def check_steppable(spec: Spec, engine: str) -> None:
    """Raise :func:`plateau_clash`'s E603, if any."""
    refuse(spec, plateau_clash(spec, engine))


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


def check_same_spec(compiled: Compiled, state: dict[str, Any], engine: str) -> None:
    """E505 when ``state`` was saved under another spec: ``engine`` restores the optimizer's state by position,
    so a run resumes only under the spec it was saved with."""
    change = spec_change(state, compiled)
    if change is None:
        return
    hint = (f"{engine} restores optimizer state by position, so a run resumes only under the spec it was saved "
            f"with: resume with that spec, or start afresh; what changed:\n{change.report}")
    raise CheckpointError([Diagnostic("E505", change.headline, None, hint)], compiled.source)


def restore_loop(compiled: Compiled, training: Any) -> None:
    """Continue the loop from ``training`` (:func:`specopt.runtime.training_state.training_state`'s data) once the engine
    restored the optimizer and the scheduler by position; E501 when it does not fit this spec.

    The engine put back each group's lr as saved, ramped where a warmup was in
    progress; a restored schedule rewrote the scheduled values, and without
    one the spec's own lr goes back before the warmups resume over it.
    """
    try:
        if compiled.scheduler is None:
            groups = compiled.optimizer.param_groups
            for group in training.get("ramps", {}):
                groups[int(group)]["lr"] = compiled.resolution.groups[int(group)].settings["lr"]
        load_training_state(compiled.driver, training, compiled.resolution)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise CheckpointError([Diagnostic("E501", f"the checkpoint's training state does not fit this spec: {exc}",
                                          None, "resume with the spec the checkpoint was saved with")],
                              compiled.source) from None
    compiled.driver.follow_schedule()
