"""Checks of the model itself, around resolving: what torch would refuse, found before anything changes.

``check_model`` runs before a plan is resolved: the object must be a
``torch.nn.Module`` (E405) with at least one parameter (E406).
``check_trainable`` runs on a resolution: every tensor the spec leaves
trainable must be able to require gradients (E407). ``check_unwrapped`` runs
before a compile changes ``requires_grad``: a model wrapped in
``DistributedDataParallel`` has fixed its trainable parameters, so freezing or
unfreezing afterwards breaks its next backward pass (E408). The checks look at
each distinct outcome of the cascade, not at each tensor, where they can.
"""

from __future__ import annotations

from typing import Any

import torch

from ..diagnostics import Diagnostic, Source, SpecError
from .model_refs import kind_of
from .resolution import Resolution


def check_model(model: Any, source: Source | None = None) -> None:
    """Raise E405 when ``model`` is not a ``torch.nn.Module``, E406 when it has no parameters."""
    if not isinstance(model, torch.nn.Module):
        raise SpecError([Diagnostic("E405", f"the model is {kind_of(model)}, not a torch.nn.Module", None,
                                    _module_hint(model))], source)
    if next(model.parameters(), None) is None:
        raise SpecError([Diagnostic("E406", f"the model ({type(model).__name__}) has no parameters", None,
                                    "check that its layers are registered as submodules (nn.ModuleList, "
                                    "not a plain list) and that the right model was passed")], source)


def check_trainable(resolution: Resolution, source: Source | None = None) -> None:
    """Raise E407 for each statement that makes a tensor trainable whose dtype cannot require gradients."""
    c = resolution.columns
    unfrozen = {k for k, o in enumerate(c.outcomes) if not o.frozen and not o.requires_grad}
    if not unfrozen:
        return  # only a spec's unfreeze can make a tensor trainable that was not; the rest already are
    found: dict[int, list[tuple[str, torch.dtype]]] = {}
    for name, tensor, k in zip(c.names, c.tensors, c.outcome_of):
        if k in unfrozen and not (tensor.is_floating_point() or tensor.is_complex()):
            found.setdefault(k, []).append((name, tensor.dtype))
    by_statement: dict[Any, list[tuple[str, torch.dtype]]] = {}
    for k, params in found.items():
        by_statement.setdefault(c.outcomes[k].frozen_by, []).extend(params)
    if by_statement:
        raise SpecError([_integer_diagnostic(origin, params) for origin, params in by_statement.items()], source)


def _integer_diagnostic(origin, params: list[tuple[str, torch.dtype]]) -> Diagnostic:
    name, dtype = params[0]
    more = f" and {len(params) - 1} more" if len(params) > 1 else ""
    return Diagnostic("E407", f"'{name}'{more} cannot be trained: it holds {str(dtype).removeprefix('torch.')} "
                      "values, and only floating-point and complex tensors can require gradients",
                      origin.span if origin else None,
                      f"leave it frozen: make this {origin.kind if origin else 'statement'} skip it, e.g. by "
                      f"adding '& !{name}' to a broader selector")


def check_unwrapped(resolution: Resolution, source: Source | None = None) -> None:
    """Raise E408 when the spec would change ``requires_grad`` of a tensor inside ``DistributedDataParallel``."""
    c = resolution.columns
    changing = {k for k, o in enumerate(c.outcomes) if o.frozen == o.requires_grad}
    wrapped = _ddp_tensors(resolution.model) if changing else {}
    hit = next(((n, t, k) for n, t, k in zip(c.names, c.tensors, c.outcome_of)
                if k in changing and id(t) in wrapped), None)
    if hit is None:
        return
    name, tensor, k = hit
    origin = c.outcomes[k].frozen_by
    verb = "freezes" if c.outcomes[k].frozen else "unfreezes"
    where = f" (at '{wrapped[id(tensor)]}')" if wrapped[id(tensor)] else ""
    raise SpecError([Diagnostic("E408", f"this {origin.kind} {verb} '{name}', but the model is wrapped in "
                                f"DistributedDataParallel{where}, which fixed its trainable parameters when it "
                                "wrapped the model: the next backward pass would fail", origin.span,
                                "compile the spec before wrapping: compiled = spec.compile(model), then "
                                "model = DistributedDataParallel(model)")], source)


def _ddp_tensors(model: Any) -> dict[int, str]:
    """The parameters inside each ``DistributedDataParallel`` of ``model``, by id, with its module path."""
    ddp = getattr(torch.nn.parallel, "DistributedDataParallel", None)
    if ddp is None:
        return {}
    wrappers = [(path, m) for path, m in model.named_modules() if isinstance(m, ddp)]
    return {id(t): path for path, m in reversed(wrappers) for t in m.parameters()}


def _module_hint(value: Any) -> str:
    if isinstance(value, type) and issubclass(value, torch.nn.Module):
        return f"pass an instance: {value.__name__}(...), not the class"
    return "pass the model itself (the torch.nn.Module whose named_parameters() the spec selects from)"
