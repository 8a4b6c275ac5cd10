"""Build: turn a resolution into a real torch optimizer, LR scheduler and clipping hook.

Building is transactional: every torch object is constructed first, and the
model's ``requires_grad`` flags are changed last, so a failure leaves the model
exactly as it was.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import torch

from .clip import Clipper
from .compiled import Compiled
from .diagnostics import Diagnostic, Source, SpecError
from .guards import check_model, check_trainable, check_unwrapped
from .implementation import choose_implementation
from .plan import Plan
from .registry import SCHEDULES
from .resolve import Resolution, index_model, resolve


def load_target(path: str) -> Any:
    """Import ``package.module.Name``."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


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


def constructor_defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of an optimizer class's constructor, as the installed torch defines them."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params
            if p.name not in ("self", "params") and p.default is not inspect.Parameter.empty}


def resolve_model(plan: Plan, model: torch.nn.Module, source: Source | None = None) -> Resolution:
    """Resolve a plan against a model without building anything or changing the model."""
    check_model(model, source)
    resolution = resolve(plan, index_model(model), constructor_defaults(optimizer_class(plan, source)), source)
    check_trainable(resolution, source)
    return resolution


def compile_plan(plan: Plan, model: torch.nn.Module, source: Source | None = None) -> Compiled:
    """Resolve a plan against a model and build its optimizer, scheduler and clipper."""
    check_model(model, source)
    cls = optimizer_class(plan, source)
    return build(resolve(plan, index_model(model), constructor_defaults(cls), source), cls, source)


def build(resolution: Resolution, cls: type, source: Source | None = None) -> Compiled:
    """Construct the torch objects for a resolution, then apply the freezes to the model."""
    check_trainable(resolution, source)
    check_unwrapped(resolution, source)
    optimizer, implementation = _make_optimizer(resolution, cls, source)
    scheduler = _make_scheduler(resolution.plan, optimizer)
    clipper = _make_clipper(resolution.plan, optimizer)
    _apply_requires_grad(resolution)
    if clipper is not None:
        clipper.attach(optimizer)
    return Compiled(optimizer, scheduler, clipper, resolution, source, implementation)


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
    groups = [{"params": [tensors[n] for n in g.params], "param_names": list(g.params),
               "name": g.name, **g.settings} for g in resolution.groups]
    pinned = {o.key: o.value for o in (stmt.options if stmt else ()) if not info.option(o.key).per_group}
    implementation = choose_implementation(info, [p for g in groups for p in g["params"]], pinned)
    kwargs = {k: s.value for k, s in resolution.base.items()}
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


def _make_scheduler(plan: Plan, optimizer: torch.optim.Optimizer):
    stmt = plan.schedule
    if stmt is None:
        return None
    cls = load_target(SCHEDULES[stmt.kind].target)
    return cls(optimizer, step_size=stmt.every, gamma=stmt.gamma)


def _make_clipper(plan: Plan, optimizer: torch.optim.Optimizer) -> Clipper | None:
    stmt = plan.clip
    if stmt is None:
        return None
    params = [p for g in optimizer.param_groups for p in g["params"]]
    return Clipper(params, stmt.mode, stmt.max, stmt.norm_type)


def _apply_requires_grad(resolution: Resolution) -> None:
    changed = []
    try:
        for tensor, frozen in resolution.frozen_flags():
            if tensor.requires_grad == frozen:
                tensor.requires_grad_(not frozen)
                changed.append(tensor)
    except Exception:
        for tensor in changed:
            tensor.requires_grad_(not tensor.requires_grad)
        raise
