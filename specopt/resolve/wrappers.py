"""Wrapper modules whose attribute segment is transparent to names.

Training at scale wraps the model: ``DistributedDataParallel`` and
``DataParallel`` hold it as ``module``, ``torch.compile``'s ``OptimizedModule``
as ``_orig_mod``, FSDP1's ``FullyShardedDataParallel`` as
``_fsdp_wrapped_module`` and activation checkpointing's wrappers as
``_checkpoint_wrapped_module``. specopt names every parameter and module as if
those segments were not there, so a spec, a report, ``explain``, ``diff`` and a
checkpoint mean the same on the bare and on the wrapped model.

A wrapper is recognised by its class (or a subclass), never by the segment's
name alone: a user's own submodule called ``module`` keeps its name. The
classes are looked up only in modules already imported (``sys.modules``): a
wrapper object can exist only once its module is, so nothing heavy such as
``torch._dynamo`` is imported to find out.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator

# (module, class, the attribute that holds the wrapped model)
WRAPPERS = (
    ("torch.nn.parallel.distributed", "DistributedDataParallel", "module"),
    ("torch.nn.parallel.data_parallel", "DataParallel", "module"),
    ("torch._dynamo.eval_frame", "OptimizedModule", "_orig_mod"),
    ("torch.distributed.fsdp.fully_sharded_data_parallel", "FullyShardedDataParallel", "_fsdp_wrapped_module"),
    ("torch.distributed.algorithms._checkpoint.checkpoint_wrapper", "ActivationWrapper",
     "_checkpoint_wrapped_module"),
)
SEGMENTS = tuple(dict.fromkeys(attr for _, _, attr in WRAPPERS))

_UNSEEN = object()
_ATTRIBUTE: dict[type, str | None] = {}


def transparent_attribute(cls: type) -> str | None:
    """The attribute of a wrapper class whose segment names skip (``module`` for DDP), or ``None``.

    Cached per class: a class's bases are fixed when it is created, and a
    wrapper's module is imported before any subclass of it can exist.
    """
    found = _ATTRIBUTE.get(cls, _UNSEEN)
    if found is _UNSEEN:
        found = _ATTRIBUTE[cls] = _lookup(cls)
    return found


def _lookup(cls: type) -> str | None:
    for module, name, attribute in WRAPPERS:
        wrapper = getattr(sys.modules.get(module), name, None)
        if isinstance(wrapper, type) and issubclass(cls, wrapper):
            return attribute
    return None


def named_modules(model) -> Iterator[tuple[str, Any]]:
    """Every module with its path as specopt names it (wrapper segments left out), once per path.

    A wrapper and the module it wraps share one path, wrapper first; a module
    reachable under several paths is yielded under each, as
    ``named_modules(remove_duplicate=False)`` does.
    """
    def visit(module, path: str) -> Iterator[tuple[str, Any]]:
        yield path, module
        skip = transparent_attribute(type(module))
        for name, sub in module._modules.items():
            if sub is not None:
                yield from visit(sub, path if name == skip else f"{path}.{name}" if path else name)

    yield from visit(model, "")


def unwrapped_name(name: str) -> str:
    """``name`` with every wrapper segment left out: for names saved by an older specopt, which kept them.

    Only for matching a saved name that is not a parameter's name, since this
    goes by the segment's text alone.
    """
    return ".".join(part for part in name.split(".") if part not in SEGMENTS)


def upgrade_names(state: dict, canonical: dict[str, str]) -> dict:
    """A checkpoint whose parameter names that specopt no longer knows, but knows without wrapper
    segments (``_orig_mod.head.weight``), are renamed to the name without them (``head.weight``)."""
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict):
        return state
    renamed = {n: unwrapped_name(n) for n in [*state.get("param_names", ()), *state["state"]]
               if isinstance(n, str) and n not in canonical}
    renamed = {old: new for old, new in renamed.items() if new != old and new in canonical}
    if not renamed:
        return state
    out = dict(state)
    out["state"] = {renamed.get(n, n): s for n, s in state["state"].items()}
    if isinstance(state.get("param_names"), list):
        out["param_names"] = [renamed.get(n, n) for n in state["param_names"]]
    if isinstance(state.get("params"), dict):
        out["params"] = {renamed.get(n, n): r for n, r in state["params"].items()}
    return out
