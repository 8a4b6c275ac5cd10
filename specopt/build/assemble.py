"""Build: turn a resolution into a real torch optimizer, LR scheduler, clipping hook and step driver.

Building is transactional: every torch object is constructed first, and the
model's ``requires_grad`` flags and norm layer modes are changed last (a
``device`` move is undone on failure), so a failure leaves the model as it was.
"""

from __future__ import annotations

import torch

from ..runtime import devices
from ..resolve.built_flags import set_requires_grad
from ..runtime.clip_hook import Clipper
from ..runtime.compiled import Compiled
from ..diagnostics import Diagnostic, Source, SpecError
from ..runtime.driver import Driver
from ..runtime.ema import EMA
from ..runtime.unfreezing import Ramps, Switchboard, compile_events
from ..resolve.model_checks import check_model, check_trainable, check_unwrapped
from ..resolve.norm_layers import norm_layers, unlock_all
from .optimizers import make_optimizers, optimizer_class, optimizer_classes  # noqa: F401 (optimizer_class: API)
from ..plan.plan import Plan
from ..resolve.resolution import Resolution, index_model, resolve
from ..runtime.scheduler import SpecScheduler
from ..catalog.targets import constructor_defaults, load_target  # noqa: F401 (load_target: where tests find it)
from ..plan.timing import Timing, check_ranges, plan_timing, programs


def resolve_model(plan: Plan, model: torch.nn.Module, source: Source | None = None) -> Resolution:
    """Resolve a plan against a model without building anything or changing the model."""
    check_model(model, source)
    defaults = [constructor_defaults(cls) for cls in optimizer_classes(plan, source)]
    resolution = resolve(plan, index_model(model), defaults, source)
    check_trainable(resolution, source)
    return resolution


def compile_plan(plan: Plan, model: torch.nn.Module, source: Source | None = None,
                 timing: Timing | None = None, scaler=None) -> Compiled:
    """Resolve a plan against a model and build its optimizer, scheduler, clipper and step driver.

    ``timing`` holds the run's length and the steps per epoch the caller gave
    (:func:`specopt.plan.timing.plan_timing`); by default only the spec's own.
    ``scaler`` is the ``torch.amp.GradScaler`` that ``compiled.train_step`` scales losses with.
    """
    timing = timing or plan_timing(plan)
    check_model(model, source)
    classes = optimizer_classes(plan, source)
    resolution = resolve(plan, index_model(model), [constructor_defaults(cls) for cls in classes], source)
    return build(resolution, classes, source, timing, scaler)


def build(resolution: Resolution, classes: list[type], source: Source | None = None,
          timing: Timing | None = None, scaler=None) -> Compiled:
    """Construct the torch objects for a resolution, then apply the freezes to the model.

    Everything that can fail is checked or built before the model changes: a
    ``device`` move is undone when a later step fails.
    """
    check_trainable(resolution, source)
    check_unwrapped(resolution, source)
    plan = resolution.plan
    timing = timing or plan_timing(plan)
    progs = programs(plan, timing, source)
    check_ranges(progs, plan, resolution.groups, [s.info for s in resolution.slots], source, timing)
    events = compile_events(plan, timing, source)
    _check_scaler(scaler)
    device = devices.target(plan, source)
    undo = devices.move(resolution.model, device, plan.device.span, source) if device is not None else None
    try:
        optimizer, parts, implementations = make_optimizers(resolution, classes, source)
        scheduler = _make_scheduler(plan, optimizer, progs, timing, source)
        clipper = _make_clipper(plan, optimizer)
        ema = _make_ema(resolution, source)
    except BaseException:
        if undo is not None:
            undo()
        raise
    _apply_requires_grad(resolution)
    if clipper is not None:
        clipper.attach(optimizer)
    unit = timing.unit if scheduler is not None else None
    driver = _make_driver(resolution, optimizer, scheduler, unit, scaler, events, ema)
    return Compiled(optimizer, scheduler, clipper, resolution, source, implementations[0], timing, driver, device,
                    parts, implementations)


def _check_scaler(scaler) -> None:
    if scaler is None:
        return
    if not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler, not {type(scaler).__name__}")


def _make_ema(resolution: Resolution, source: Source | None) -> EMA | None:
    stmt = resolution.plan.ema
    if stmt is None:
        return None
    name = stmt.setting("device")
    option = next((o for o in stmt.options if o.key == "device"), None)
    device = devices.named(name, option.value_span if option else stmt.span, source) if name else None
    static = {id(resolution.tensors[p.info.name]) for p in resolution.params if p.group is None}
    return EMA(resolution.model, stmt, static, device)


def _make_driver(resolution: Resolution, optimizer, scheduler, unit, scaler, events, ema) -> Driver:
    model = resolution.model
    unlock_all(model)
    ramps = Ramps(optimizer)
    board = Switchboard(events, resolution, ramps)
    layers, _ = norm_layers(resolution.plan, model)
    return Driver(optimizer, scheduler, unit, resolution.plan.accumulate, scaler, board, ramps, layers,
                  model, ema)


def _make_scheduler(plan: Plan, optimizer: torch.optim.Optimizer, progs, timing: Timing,
                    source: Source | None) -> SpecScheduler | None:
    """The scheduler that runs every schedule of the plan, or ``None`` without one."""
    if not progs:
        return None
    try:
        return SpecScheduler(optimizer, progs, timing.unit, timing.run, timing.steps_per_epoch)
    except ValueError as exc:  # the plan's checks catch what they can see without the built groups
        raise SpecError([Diagnostic("E219", f"the schedule cannot run on this optimizer: {exc}",
                                    plan.schedules[0].span)], source) from None


def _make_clipper(plan: Plan, optimizer: torch.optim.Optimizer) -> Clipper | None:
    stmt = plan.clip
    if stmt is None:
        return None
    params = [p for g in optimizer.param_groups for p in g["params"]]
    return Clipper(params, stmt.mode, stmt.max, stmt.norm_type)


def _apply_requires_grad(resolution: Resolution) -> None:
    """Set every tensor's flag to what the spec decided, recording the flag its code built.

    A tensor this spec does not freeze gets its built flag back, even if an
    earlier compile on the same model froze it.
    """
    before = []
    try:
        for tensor, frozen in resolution.frozen_flags():
            if tensor.requires_grad == frozen:
                before.append((tensor, tensor.requires_grad))
                set_requires_grad(tensor, not frozen)
    except Exception:
        for tensor, flag in before:
            tensor.requires_grad_(flag)
        raise
