"""The registry of builtins: optimizers, their options, and clip modes.

Every entry is frozen data with a description. The same entries drive parsing
hints, validation, dispatch at build time, the ``specopt list`` listing, the
documentation and "did you mean" suggestions. This module must not import
torch: ``specopt check`` validates specs with it alone. The builtin optimizers'
options and defaults are those of the installed torch, read from its source by
:mod:`specopt.catalog.installed_torch` when an entry is first used; specopt itself adds each
builtin's name, summary, traits and the kinds and ranges of the options. An
option or value newer than the oldest supported torch is listed with the torch
that brought it (:func:`newer_torch_needed`), so that a spec using it under an
older torch is told which torch it needs (E418).

Optimizers outside this table come from :mod:`specopt.plan.extensions`: other
packages add :class:`OptimizerInfo` entries (or optimizer classes, from whose
constructors an entry is derived) through the ``specopt.build.optimizers`` entry
point group, and a spec may name a class by import path,
``optimizer "package.module:Class"``, when the caller allows imports. Builtins
always win over an extension of the same name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import installed_torch as torchsource
from .targets import constructor_defaults, load_target

IMPLEMENTATION_KEYS = frozenset({"foreach", "fused", "capturable", "differentiable"})


@dataclass(frozen=True)
class OptionInfo:
    """One constructor argument of an optimizer: its value kind, default and allowed range.

    ``kind`` is one of ``number``, ``int``, ``bool``, ``str``, ``any`` (every
    spec value), a tuple such as ``(number,number)``, each optionally ending
    in ``?`` to allow ``none``. ``bounds`` is ``""`` (any finite number) or one
    of :data:`KNOWN_BOUNDS`; ``default`` must have the kind ``kind``.
    """

    name: str
    kind: str
    default: Any
    bounds: str = ""

    @property
    def per_group(self) -> bool:
        """Whether a ``group`` statement may set this option (implementation flags are global)."""
        return self.name not in IMPLEMENTATION_KEYS


@dataclass(frozen=True)
class OptimizerInfo:
    """An optimizer: its spec name, the class it builds and its options.

    ``param_ndims`` lists the tensor ranks the optimizer can train (empty: any;
    Muon: 2-D only). The same type describes builtins and extensions. An extension package may
    declare one without importing torch: ``target`` is the class's dotted path
    (``package.module.Class``), imported only when a spec is compiled, and
    ``options`` lists every keyword argument of its constructor except the
    parameters.
    """

    name: str
    target: str
    summary: str
    options: tuple[OptionInfo, ...]
    single_group: bool = False
    fused_unsupported_devices: tuple[str, ...] = ()
    sparse_gradients: bool = False
    param_ndims: tuple[int, ...] = ()

    def option(self, key: str) -> OptionInfo | None:
        """Return the option called ``key``, or ``None``."""
        return next((o for o in self.options if o.name == key), None)

    @property
    def group_keys(self) -> tuple[str, ...]:
        """The options a ``group`` statement may override."""
        return tuple(o.name for o in self.options if o.per_group)


@dataclass(frozen=True)
class ClipInfo:
    """A gradient clipping mode."""

    name: str
    summary: str


# Ranges shared by every optimizer that takes a key of this name.
_BOUNDS = {
    "lr": ">=0", "eps": ">=0", "weight_decay": ">=0", "momentum": ">=0", "dampening": ">=0",
    "alpha": ">=0", "rho": "[0,1]", "betas": "[0,1)", "lr_decay": ">=0",
    "initial_accumulator_value": ">=0", "lambd": ">=0", "t0": ">=0", "momentum_decay": ">=0",
    "etas": ">0", "step_sizes": ">=0", "d": ">0", "max_iter": ">=1", "max_eval": ">=1",
    "tolerance_grad": ">=0", "tolerance_change": ">=0", "history_size": ">=1", "ns_steps": ">=1",
    "beta2_decay": "<=0",
}
_KINDS = {
    "foreach": "bool?", "fused": "bool?", "betas": "(number,number)", "etas": "(number,number)",
    "step_sizes": "(number,number)", "ns_coefficients": "(number,number,number)",
    "max_iter": "int", "max_eval": "int?", "history_size": "int", "ns_steps": "int",
    "line_search_fn": "str?", "adjust_lr_fn": "str?",
}
# Flags most builtins share; `specopt list` shows them after the hyperparameters.
_FLAGS = frozenset({"maximize", "foreach", "capturable", "differentiable"})


def shared_bounds(key: str) -> str:
    """The range every builtin optimizer taking an option called ``key`` gives it (``""``: none)."""
    return _BOUNDS.get(key, "")


def _kind_of(key: str, default: Any) -> str:
    """The value kind of a builtin's option: named for the keys that need it, else read from the default."""
    if key in _KINDS:
        return _KINDS[key]
    if isinstance(default, bool):
        return "bool"
    if key == "eps" and isinstance(default, tuple):
        return "(number?,number)"
    if isinstance(default, tuple):
        return "(" + ",".join("number?" if v is None else "number" for v in default) + ")"
    if isinstance(default, str):
        return "str?"
    return "any" if default is None else "number"


@dataclass(frozen=True)
class _Builtin:
    """What specopt knows of a builtin beyond its constructor: its class, a summary and its traits."""

    name: str
    target: str
    summary: str
    traits: tuple = ()


_BUILTINS = (
    _Builtin("sgd", "torch.optim.SGD", "Stochastic gradient descent, optionally with momentum."),
    _Builtin("adam", "torch.optim.Adam", "Adam (Kingma & Ba); the default optimizer."),
    _Builtin("adamw", "torch.optim.AdamW", "Adam with decoupled weight decay."),
    _Builtin("rmsprop", "torch.optim.RMSprop", "RMSprop."),
    _Builtin("adagrad", "torch.optim.Adagrad", "Adagrad.", (("fused_unsupported_devices", ("cuda",)),)),
    _Builtin("adadelta", "torch.optim.Adadelta", "Adadelta."),
    _Builtin("adamax", "torch.optim.Adamax", "Adamax, Adam with the infinity norm."),
    _Builtin("nadam", "torch.optim.NAdam", "Adam with Nesterov momentum."),
    _Builtin("radam", "torch.optim.RAdam", "Rectified Adam."),
    _Builtin("asgd", "torch.optim.ASGD", "Averaged stochastic gradient descent."),
    _Builtin("rprop", "torch.optim.Rprop", "Resilient backpropagation."),
    _Builtin("adafactor", "torch.optim.Adafactor", "Adafactor, with factored second moments."),
    _Builtin("sparse_adam", "torch.optim.SparseAdam", "Adam for sparse gradients (embeddings).",
             (("sparse_gradients", True),)),
    _Builtin("lbfgs", "torch.optim.LBFGS", "L-BFGS; needs a closure and takes one param group.",
             (("single_group", True),)),
    _Builtin("muon", "torch.optim.Muon", "Muon, orthogonalised momentum for 2-D weights only.",
             (("param_ndims", (2,)),)),
)

# The oldest torch specopt supports (the requirement in pyproject.toml), and the options and option
# values of builtins that came later, with the torch that brought them: a spec using one under an older
# torch gets E418 naming it. tests/test_registry.py checks them against the installed torch.
OLDEST_TORCH = (2, 9)
NEWER_OPTIONS: dict[tuple[str, str], tuple[int, int]] = {("lbfgs", "maximize"): (2, 14)}
NEWER_VALUES: dict[tuple[str, str, Any], tuple[int, int]] = {
    ("muon", "adjust_lr_fn", "spectral_unclamped"): (2, 14)}


def _derive(builtin: _Builtin) -> OptimizerInfo | None:
    """A builtin's entry from the installed torch's constructor; ``None`` when that torch lacks the class."""
    if not torchsource.defines(builtin.target):
        return None
    defaults = torchsource.constructor_defaults(builtin.target)
    if defaults is None:  # no plain source to read: ask the class itself
        defaults = constructor_defaults(load_target(builtin.target))
    names = sorted(defaults, key=lambda k: k in _FLAGS)  # the hyperparameters, then the flags all share
    options = tuple(OptionInfo(k, _kind_of(k, defaults[k]), defaults[k], _BOUNDS.get(k, "")) for k in names)
    return OptimizerInfo(builtin.name, builtin.target, builtin.summary, options, **dict(builtin.traits))


class _Table(Mapping):
    """The builtin optimizers of the installed torch, each entry derived from its constructor on first use."""

    def __init__(self, builtins: tuple[_Builtin, ...]):
        self._builtins = {b.name: b for b in builtins}
        self._entries: dict[str, OptimizerInfo | None] = {}

    def __getitem__(self, name: str) -> OptimizerInfo:
        if name not in self._entries and isinstance(name, str) and name in self._builtins:
            self._entries[name] = _derive(self._builtins[name])
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise KeyError(name)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter([n for n, b in self._builtins.items() if torchsource.defines(b.target)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


OPTIMIZERS: Mapping[str, OptimizerInfo] = _Table(_BUILTINS)


def newer_torch_needed(optimizer: str, key: str, value: Any = None) -> tuple[int, int] | None:
    """The torch that brought a builtin's option (with ``value``: that value of it) when this one is older."""
    if value is None:
        since = NEWER_OPTIONS.get((optimizer, key))
    else:
        since = NEWER_VALUES.get((optimizer, key, value)) if isinstance(value, str) else None
    installed = torchsource.version_tuple(torchsource.torch_version())
    return since if since is not None and installed and installed < since else None


DEFAULT_OPTIMIZER = "adam"

CLIP_MODES: dict[str, ClipInfo] = {c.name: c for c in (
    ClipInfo("l2", "Scale gradients so that their total L2 norm is at most MAX."),
    ClipInfo("l1", "Scale gradients so that their total L1 norm is at most MAX."),
    ClipInfo("inf", "Scale gradients so that their largest absolute value is at most MAX."),
    ClipInfo("lP", "Any p-norm, e.g. l3 or l1.5."),
    ClipInfo("value", "Clamp every gradient element into [-MAX, MAX]."),
)}



def parse_clip_mode(mode: str) -> float | None:
    """Return the norm type of a clip mode (``l2`` → 2.0, ``l1.5`` → 1.5, ``inf`` → inf).

    ``None`` for ``value`` and for anything that is not a clip mode: a norm mode
    is ``inf``, ``linf`` or ``l`` followed by a positive decimal number (digits
    with an optional fractional part).
    """
    if mode in ("inf", "linf"):
        return float("inf")
    match = _NORM_MODE.fullmatch(mode)
    if match is None:
        return None
    p = float(match.group(1))
    return p if 0 < p < float("inf") else None  # so many digits that float() gives inf: not a p


_NORM_MODE = re.compile(r"l([0-9]+(?:\.[0-9]+)?)")


def check_kind(kind: str, value: Any) -> bool:
    """Whether ``value`` (a parsed spec value) has the value kind ``kind``."""
    if kind.endswith("?") and value is None:
        return True
    base = kind.rstrip("?")
    if base.startswith("("):
        parts = base[1:-1].split(",")
        return (isinstance(value, tuple) and len(value) == len(parts)
                and all(check_kind(p, v) for p, v in zip(parts, value)))
    if base == "bool":
        return isinstance(value, bool)
    if base == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == "str":
        return isinstance(value, str)
    if base == "any":
        return True
    raise ValueError(f"unknown value kind {kind!r}")


def describe_kind(kind: str) -> str:
    """Describe a value kind in words, for error messages."""
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if base.startswith("("):
        words = f"a tuple of {len(base[1:-1].split(','))} numbers, like {_tuple_example(base)}"
    else:
        words = {"bool": "true or false", "int": "a whole number", "number": "a number",
                 "str": "a quoted string", "any": "any value"}[base]
    return words + (" or none" if optional else "")


def _tuple_example(base: str) -> str:
    parts = base[1:-1].split(",")
    return "(" + ", ".join("0.9" for _ in parts) + ")"


def check_bounds(bounds: str, value: Any) -> str | None:
    """Return why ``value`` breaks ``bounds`` (e.g. ``">=0"``, ``"[0,1)"``), or ``None`` if it holds."""
    if isinstance(value, tuple):
        return next((why for v in value if v is not None and (why := check_bounds(bounds, v))), None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return "must be a finite number"
    if not bounds:
        return None
    holds = {
        ">=0": value >= 0, ">0": value > 0, "<=0": value <= 0, ">=1": value >= 1,
        "[0,1]": 0 <= value <= 1, "[0,1)": 0 <= value < 1, "(0,1)": 0 < value < 1, "(0,1]": 0 < value <= 1,
    }[bounds]
    return None if holds else f"must be {_BOUND_WORDS[bounds]}"


_BOUND_WORDS = {">=0": "at least 0", ">0": "greater than 0", "<=0": "at most 0", ">=1": "at least 1",
                "[0,1]": "between 0 and 1", "[0,1)": "at least 0 and below 1", "(0,1)": "between 0 and 1, exclusive",
                "(0,1]": "above 0 and at most 1"}
KNOWN_BOUNDS = frozenset({""} | set(_BOUND_WORDS))
_BASE_KINDS = ("bool", "int", "number", "str", "any")


def known_kind(kind: str) -> bool:
    """Whether ``kind`` is a value kind :func:`check_kind` understands (see :class:`OptionInfo`)."""
    base = kind[:-1] if kind.endswith("?") else kind
    if base.startswith("(") and base.endswith(")"):
        return all(part in _BASE_KINDS or (part.endswith("?") and part[:-1] in _BASE_KINDS)
                   for part in base[1:-1].split(","))
    return base in _BASE_KINDS
