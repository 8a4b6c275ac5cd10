"""Build: turn a resolution into a real torch optimizer, LR scheduler, clipping hook and step driver.

Building is transactional: every torch object is constructed first, and the
model's ``requires_grad`` flags and norm layer modes are changed last (a
``device`` move is undone on failure), so a failure leaves the model as it was.
"""

from __future__ import annotations


import torch

from . import devices
from .built import set_requires_grad
from .clip import Clipper
from .compiled import Compiled
from .diagnostics import Diagnostic, Source, SpecError
from .driver import Driver
from .ema import EMA
from .events import Ramps, Switchboard, compile_events
from .guards import check_model, check_trainable, check_unwrapped
from .implementation import choose_implementation
from .norms import norm_layers, unlock_all
from .plan import Plan
from .resolve import Resolution, index_model, resolve
from .scheduler import SpecScheduler
from .targets import constructor_defaults, load_target
from .timing import Timing, check_ranges, plan_timing, programs


def optimizer_class(plan: Plan, source: Source | None = None) -> type:
    """The torch optimizer class a plan names, checked against the installed torch's constructor."""
    info = plan.optimizer_info
    stmt = plan.optimizer
    try:
        cls = load_target(info.target)
    except (ImportError, AttributeError):
        raise SpecError([Diagnostic("E401", f"this torch ({torch.__version__}) has no {info.target}",
                                    stmt.span if stmt else None, "upgrade torch or pick another optimizer")],
                        source) from None
    accepted = set(constructor_defaults(cls))
    options = [o for s in plan.statements if s.kind in ("optimizer", "group") for o in s.options]
    missing = [o for o in options if o.key not in accepted]
    if missing:
        raise SpecError([Diagnostic("E401", f"{info.target} in this torch ({torch.__version__}) does not take "
                                    f"'{o.key}'", o.span, "upgrade torch or drop the option")
                         for o in missing], source)
    return cls


def resolve_model(plan: Plan, model: torch.nn.Module, source: Source | None = None) -> Resolution:
    """Resolve a plan against a model without building anything or changing the model."""
    check_model(model, source)
    resolution = resolve(plan, index_model(model), constructor_defaults(optimizer_class(plan, source)), source)
    check_trainable(resolution, source)
    return resolution


def compile_plan(plan: Plan, model: torch.nn.Module, source: Source | None = None,
                 timing: Timing | None = None, scaler=None) -> Compiled:
    """Resolve a plan against a model and build its optimizer, scheduler, clipper and step driver.

    ``timing`` holds the run's length and the steps per epoch the caller gave
    (:func:`specopt.timing.plan_timing`); by default only the spec's own.
    ``scaler`` is the ``torch.amp.GradScaler`` that ``compiled.train_step`` scales losses with.
    """
    timing = timing or plan_timing(plan)
    check_model(model, source)
    cls = optimizer_class(plan, source)
    resolution = resolve(plan, index_model(model), constructor_defaults(cls), source)
    return build(resolution, cls, source, timing, scaler)


def build(resolution: Resolution, cls: type, source: Source | None = None,
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
    check_ranges(progs, plan, resolution.groups, resolution.optimizer, source)
    events = compile_events(plan, timing, source)
    _check_scaler(scaler)
    device = devices.target(plan, source)
    undo = devices.move(resolution.model, device, plan.device.span, source) if device is not None else None
    try:
        optimizer, implementation = _make_optimizer(resolution, cls, source)
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
    return Compiled(optimizer, scheduler, clipper, resolution, source, implementation, timing, driver, device)


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
    return Driver([optimizer], scheduler, unit, resolution.plan.accumulate, scaler, board, ramps, layers,
                  model, ema)


def _make_optimizer(resolution: Resolution, cls: type, source: Source | None):
    info = resolution.optimizer
    stmt = resolution.plan.optimizer
    span = stmt.span if stmt else None
    if not resolution.groups:
        raise SpecError([Diagnostic("E402", "every parameter is frozen: nothing is left to optimize",
                                    span, "unfreeze something, or skip building an optimizer")], source)
    if info.single_group and len(resolution.groups) > 1:
        raise SpecError([Diagnostic("E403", f"{info.name} takes one param group, but the spec makes "
                                    f"{len(resolution.groups)}", span,
                                    "drop the group statements that change hyperparameters")], source)
    tensors = resolution.tensors
    kwargs = {k: s.value for k, s in resolution.base.items()}
    # A group carries only what differs from the base: the rest comes from the optimizer's defaults as
    # its constructor makes them (L-BFGS turns max_eval=None into max_iter * 5 // 4 there).
    groups = [{"params": [tensors[n] for n in g.params], "param_names": list(g.params), "name": g.name,
               **{k: v for k, v in g.settings.items() if not _same_value(v, kwargs.get(k, _MISSING))}}
              for g in resolution.groups]
    pinned = {o.key: o.value for o in (stmt.options if stmt else ()) if not info.option(o.key).per_group}
    implementation = choose_implementation(info, [p for g in groups for p in g["params"]], pinned)
    kwargs.update(pinned)
    kwargs.update(implementation.flags)
    try:
        return cls(groups, **kwargs), implementation
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an import-path class may raise anything, even SystemExit
        who = "torch" if cls.__module__.startswith("torch.") else f"{cls.__module__}.{cls.__qualname__}"
        raise SpecError([Diagnostic("E404", f"{who} rejected the optimizer: {_describe(exc)}", span)],
                        source) from None


def _describe(exc: BaseException) -> str:
    """An exception's message, led by its type unless it is one of the errors torch raises for bad settings."""
    if isinstance(exc, (ValueError, TypeError, RuntimeError)) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_MISSING = object()


def _same_value(a, b) -> bool:
    return type(a) is type(b) and a == b


def _make_scheduler(plan: Plan, optimizer: torch.optim.Optimizer, progs, timing: Timing,
                    source: Source | None) -> SpecScheduler | None:
    """The scheduler that runs every schedule of the plan, or ``None`` without one."""
    if not progs:
        return None
    try:
        return SpecScheduler(optimizer, progs, timing.unit)
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
