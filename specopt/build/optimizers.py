"""Building the torch optimizers of a resolution: one per optimizer the spec names, combined when several.

Each optimizer statement's class is loaded from the installed torch (or an
extension) and checked against its real constructor first (E401), so a spec
written for another torch version fails before anything is built. Each
optimizer gets the param groups of its own parameters and its own fused /
foreach choice (:mod:`specopt.runtime.implementation`); with several, they are held
by one :class:`~specopt.runtime.combined.CombinedOptimizer`.
"""

from __future__ import annotations


import torch

from ..runtime.combined import CombinedOptimizer
from ..diagnostics import Diagnostic, Source, SpecError
from ..plan.extensions import plan_optimizer_info
from ..runtime.implementation import Implementation, choose_implementation, guard_fused_momentum
from ..resolve.owners import OptimizerSlot, slot_statements
from ..resolve.resolution import Resolution
from ..catalog.targets import constructor_defaults, load_target
from ..runtime.sharded_norms import optimizer_class_for


def optimizer_classes(plan, source: Source | None = None) -> list[type]:
    """The class of every optimizer the plan builds, in slot order, checked against their constructors.

    Each optimizer statement's options must be arguments of its class; a group
    option must be an argument of at least one of them (E401 otherwise).
    """
    statements = slot_statements(plan)
    classes = [_load(stmt, source) for stmt in statements]
    accepted = [set(constructor_defaults(cls)) for cls in classes]
    diags = [_not_taken(o, plan_optimizer_info(stmt)) for stmt, keys in zip(statements, accepted)
             for o in (stmt.options if stmt else ()) if o.key not in keys]
    every = set().union(*accepted)
    diags += [_not_taken(o, plan_optimizer_info(statements[0])) for s in plan.statements if s.kind == "group"
              for o in s.options if o.key not in every]
    if diags:
        raise SpecError(diags, source)
    return classes


def optimizer_class(plan, source: Source | None = None) -> type:
    """The class of the optimizer without ``for`` (see :func:`optimizer_classes`)."""
    return optimizer_classes(plan, source)[0]


def _load(stmt, source: Source | None) -> type:
    info = plan_optimizer_info(stmt)
    try:
        return load_target(info.target)
    except (ImportError, AttributeError):
        raise SpecError([Diagnostic("E401", f"this torch ({torch.__version__}) has no {info.target}",
                                    stmt.span if stmt else None, "upgrade torch or pick another optimizer")],
                        source) from None


def _not_taken(option, info) -> Diagnostic:
    return Diagnostic("E401", f"{info.target} in this torch ({torch.__version__}) does not take '{option.key}'",
                      option.span, "upgrade torch or drop the option")


# --- building ----------------------------------------------------------------------------------

def make_optimizers(resolution: Resolution, classes: list[type], source: Source | None):
    """The torch optimizer (combined when several), the parts, and each part's implementation."""
    _check_groups(resolution, source)
    parts, implementations = [], []
    for slot in resolution.used_slots:
        groups = [g for g in resolution.groups if g.optimizer == slot.index]
        optimizer, implementation = _make_one(resolution, slot, groups, classes[slot.index], source)
        parts.append(optimizer)
        implementations.append(implementation)
    combined = parts[0] if len(parts) == 1 else CombinedOptimizer(parts)
    return combined, parts, implementations


def _check_groups(resolution: Resolution, source: Source | None) -> None:
    if not resolution.groups:
        stmt = resolution.plan.optimizer
        raise SpecError([Diagnostic("E402", "every parameter is frozen: nothing is left to optimize",
                                    stmt.span if stmt else None,
                                    "unfreeze something, or skip building an optimizer")], source)
    used = resolution.used_slots
    for slot in used:
        count = sum(1 for g in resolution.groups if g.optimizer == slot.index)
        span = slot.statement.span if slot.statement else None
        if slot.info.single_group and count > 1:
            raise SpecError([Diagnostic("E403", f"{slot.info.name} takes one param group, but the spec makes "
                                        f"{count}", span, "drop the group statements that change "
                                        "hyperparameters")], source)
        if slot.info.single_group and len(used) > 1:
            raise SpecError([Diagnostic("E403", f"{slot.info.name} evaluates the closure itself and steps "
                                        "alone, so it cannot share a spec with another optimizer", span,
                                        "train with one optimizer, or pick another than " + slot.info.name)],
                            source)


def _make_one(resolution: Resolution, slot: OptimizerSlot, groups, cls: type, source: Source | None):
    info, stmt = slot.info, slot.statement
    tensors = resolution.tensors
    kwargs = {k: s.value for k, s in slot.base.items()}
    # A group carries only what differs from the base: the rest comes from the optimizer's defaults as
    # its constructor makes them (L-BFGS turns max_eval=None into max_iter * 5 // 4 there).
    param_groups = [{"params": [tensors[n] for n in g.params], "param_names": list(g.params), "name": g.name,
                     **{k: v for k, v in g.settings.items() if not _same_value(v, kwargs.get(k, _MISSING))}}
                    for g in groups]
    pinned = {o.key: o.value for o in (stmt.options if stmt else ()) if not info.option(o.key).per_group}
    implementation = choose_implementation(info, [p for g in param_groups for p in g["params"]], pinned)
    kwargs.update(pinned)
    kwargs.update(implementation.flags)
    built = optimizer_class_for(cls, [p for g in param_groups for p in g["params"]])
    try:
        optimizer = built(param_groups, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # an import-path class may raise anything, even SystemExit
        who = "torch" if cls.__module__.startswith("torch.") else f"{cls.__module__}.{cls.__qualname__}"
        raise SpecError([Diagnostic("E404", f"{who} rejected the optimizer: {_describe(exc)}",
                                    stmt.span if stmt else None)], source) from None
    guard_fused_momentum(optimizer)
    return optimizer, implementation


def _describe(exc: BaseException) -> str:
    """An exception's message, led by its type unless it is one of the errors torch raises for bad settings."""
    if isinstance(exc, (ValueError, TypeError, RuntimeError)) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_MISSING = object()


def _same_value(a, b) -> bool:
    return type(a) is type(b) and a == b


def describe_implementations(slots, implementations: list[Implementation]) -> str:
    """One line per optimizer: which implementation runs it and why."""
    if len(implementations) == 1:
        return implementations[0].describe()
    return "; ".join(f"{s.info.name}: {i.describe()}" for s, i in zip(slots, implementations))
