"""Whether a parameter's saved optimizer state is state its optimizer can step with, found by trying.

torch reads a checkpoint's per-parameter state (``exp_avg``, ``momentum_buffer``,
``step``...) only at the next ``step()``: a missing key is a ``KeyError`` there,
a string a ``TypeError`` deep in a kernel, hours into a resumed run. What an
optimizer keeps depends on its class, its options (``amsgrad``, ``momentum``)
and the parameter's rank (Adafactor factors matrices), so instead of a table
that drifts from torch, the installed torch is asked: for each param group and
each distinct layout of saved state, the same optimizer is built over a small
stand-in parameter, a stand-in of the saved state (the same keys, types and
layout, tiny tensors) is loaded into it, and it steps once. A step that fails
means the real one would. A second stand-in stepped from empty state says
what the optimizer keeps, for the message. An optimizer that cannot step on a
stand-in at all (one that needs sparse gradients) is not tried.

Nothing real is touched: the stand-ins are CPU tensors of at most two
elements a dimension, warnings are silenced, and the random number generator
is restored afterwards, so a resumed run stays bit for bit the same.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Iterable, Iterator, Mapping

import torch

IMPLEMENTATION = {"foreach": False, "fused": False, "capturable": False, "differentiable": False}


def state_problems(saved: Mapping[str, Mapping[str, Any]], optimizers: Iterable[torch.optim.Optimizer],
                   kinds: Mapping[str, str]) -> dict[str, str]:
    """Why, for each named parameter whose saved state its optimizer cannot step with.

    ``saved`` maps canonical parameter names to their saved state, ``kinds``
    to the name of their optimizer (for the message). Parameters an optimizer
    does not hold, and state with a tensor that does not fit its parameter
    (reported as E503), are left out.
    """
    parts = list(_parts(optimizers))
    total = sum(p.numel() for part in parts for g in part.param_groups for p in g["params"])
    tried: dict[tuple, str | None] = {}
    out = {}
    for part, index, group in ((part, i, g) for part in parts for i, g in enumerate(part.param_groups)):
        for name, param in zip(group.get("param_names", ()), group["params"]):
            entry = saved.get(name)
            layout = _layout(entry, param, total) if entry else None
            if layout is None:
                continue
            key = (id(part), index, param.dim(), layout)
            if key not in tried:
                kind = kinds.get(name, type(part).__name__)
                tried[key] = _try(part, group, param, entry, total, kind)
            if tried[key] is not None:
                out[name] = tried[key]
    return out


def _parts(optimizers: Iterable[torch.optim.Optimizer]) -> Iterator[torch.optim.Optimizer]:
    for optimizer in optimizers:
        if hasattr(optimizer, "parts"):  # a CombinedOptimizer: its parts are the real ones
            yield from _parts(optimizer.parts)
        else:
            yield optimizer


def _layout(value: Any, param: torch.Tensor, total: int) -> Any:
    """What the stand-in of ``value`` must look like (hashable); ``None`` for a tensor that fits no layout."""
    if isinstance(value, torch.Tensor):
        shape, want = list(value.shape), list(param.shape)
        if value.dim() == 0:
            return ("scalar", value.dtype)
        if len(shape) == len(want) and all(s in (w, 1) for s, w in zip(shape, want)):
            return ("shaped", tuple(s == w for s, w in zip(shape, want)), value.dtype)
        if len(shape) == 1 and shape[0] == total:
            return ("flat", value.dtype)
        return None
    if isinstance(value, (list, tuple)):
        inner = tuple(_layout(v, param, total) for v in value)
        return None if None in inner else (type(value).__name__, inner)
    if isinstance(value, Mapping):
        inner = tuple((str(k), _layout(v, param, total)) for k, v in value.items())
        return None if any(v is None for _, v in inner) else ("dict", inner)
    return ("value", type(value).__name__)


def _standin(value: Any, param: torch.Tensor, dummy: torch.Tensor, total: int) -> Any:
    """``value`` with every tensor replaced by a small one of the same layout and dtype."""
    if isinstance(value, torch.Tensor):
        layout = _layout(value, param, total)
        if layout[0] == "scalar":
            return torch.ones((), dtype=value.dtype)
        if layout[0] == "flat":
            return torch.ones(dummy.numel(), dtype=value.dtype)
        return torch.ones([d if full else 1 for d, full in zip(dummy.shape, layout[1])], dtype=value.dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_standin(v, param, dummy, total) for v in value)
    if isinstance(value, Mapping):
        return {k: _standin(v, param, dummy, total) for k, v in value.items()}
    return value


def _try(part: torch.optim.Optimizer, group: Mapping[str, Any], param: torch.Tensor,
         entry: Mapping[str, Any], total: int, kind: str) -> str | None:
    """Why ``part`` cannot step with ``entry`` as ``param``'s state in ``group``, or ``None`` when it can."""
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        try:
            dummy = _dummy(param)
            fresh = _build(part, group, dummy)
            _step(fresh, dummy)
            kept = dict(fresh.state[dummy])
        except Exception:  # noqa: BLE001 (an optimizer that cannot step on a stand-in is not tried)
            return None
        if any(isinstance(entry.get(k), (str, bytes)) and not isinstance(v, (str, bytes)) for k, v in kept.items()):
            return _why(entry, kept, None, kind, param)  # no optimizer reads text where it keeps a number or tensor
        try:
            dummy = _dummy(param)
            probe = _build(part, group, dummy)
            probe.load_state_dict({"state": {0: _standin(entry, param, dummy, total)},
                                   "param_groups": probe.state_dict()["param_groups"]})
            _step(probe, dummy)
        except Exception as exc:  # noqa: BLE001 (any failure here is the real step's failure)
            return _why(entry, kept, exc, kind, param)
    return None


def _dummy(param: torch.Tensor) -> torch.Tensor:
    """A stand-in parameter of the same rank, at most two elements a dimension."""
    return torch.ones([min(d, 2) for d in param.shape], requires_grad=True)


def _build(part: torch.optim.Optimizer, group: Mapping[str, Any], dummy: torch.Tensor) -> torch.optim.Optimizer:
    """``part``'s class with ``group``'s options over ``dummy``, on its plain single-tensor implementation."""
    cls = type(part)
    options = {k: _plain(v) for k, v in group.items() if k not in ("params", "param_names")}
    options.update({k: v for k, v in IMPLEMENTATION.items() if k in options})
    accepted = inspect.signature(cls).parameters
    return cls([{"params": [dummy], **options}], **{k: v for k, v in options.items() if k in accepted})


def _plain(value: Any) -> Any:
    """An option without tensors (a tensor ``lr`` on a GPU, tensor ``betas``)."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _step(optimizer: torch.optim.Optimizer, dummy: torch.Tensor) -> None:
    def closure():
        with torch.enable_grad():
            dummy.grad = None
            loss = (dummy * dummy).sum()
            loss.backward()
        return loss

    optimizer.step(closure)


def _why(entry: Mapping[str, Any], kept: Mapping[str, Any], exc: Exception | None, kind: str,
         param: torch.Tensor) -> str:
    """The reason a step fails, in the checkpoint's terms where they say it, else in torch's.

    ``kept`` is what the optimizer keeps for a stand-in of ``param``: its
    tensors' shapes are compared as layouts, and told in ``param``'s terms.
    """
    dummy = _dummy(param)
    missing = [k for k in kept if k not in entry]
    reasons = [f"lacks {_keys(missing)}, which {kind} keeps"] if missing else []
    for key in (k for k in kept if k in entry):
        saved, keeps = _form(entry[key], param.shape), _form(kept[key], dummy.shape)
        if saved != keeps and not (keeps == ("scalar",) and saved == ("number",)):  # torch reads a number as a step
            reasons.append(f"holds {_told(saved, param)} for '{key}', where {kind} keeps {_told(keeps, param)}")
    if reasons or exc is None:
        return "; ".join(reasons)
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"makes {kind}'s step fail ({type(exc).__name__}: {text[:200]})"


def _form(value: Any, shape: torch.Size) -> tuple:
    """What a state value is, a tensor's shape as a layout relative to its parameter's ``shape``."""
    if isinstance(value, torch.Tensor):
        have, want = list(value.shape), list(shape)
        if value.dim() == 0:
            return ("scalar",)
        if len(have) == len(want) and all(h in (w, 1) for h, w in zip(have, want)):
            return ("shaped", tuple(h == w for h, w in zip(have, want)))
        return ("tensor", tuple(have))
    if _is_number(value):
        return ("number",)
    return ("None",) if value is None else (type(value).__name__,)


def _told(form: tuple, param: torch.Tensor) -> str:
    """A :func:`_form` in words, with ``param``'s shape."""
    if form[0] == "scalar":
        return "a single number (a 0-d tensor)"
    if form[0] == "shaped" and all(form[1]):
        return f"a tensor of the parameter's shape {list(param.shape)}"
    if form[0] == "shaped":
        return f"a tensor of shape {[d if full else 1 for d, full in zip(param.shape, form[1])]}"
    if form[0] == "tensor":
        return f"a tensor of shape {list(form[1])}"
    return {"number": "a number", "None": "None"}.get(form[0], f"a {form[0]}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _keys(keys: list[str]) -> str:
    quoted = [f"'{k}'" for k in keys]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
