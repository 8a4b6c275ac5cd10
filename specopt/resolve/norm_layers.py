"""Frozen norm layers: ``norms=eval`` keeps the norm layers of a selection in eval mode.

    freeze backbone norms=eval
    unfreeze backbone.layer4 at epoch 3 norms=train

A *norm layer* is a module with running statistics: BatchNorm (1d, 2d, 3d,
lazy), SyncBatchNorm, and InstanceNorm with ``track_running_stats=True`` (the
subclasses of torch's ``_NormBase`` that track them). In eval mode such a
layer normalises with its running statistics and leaves them unchanged, so
they stay fixed while the rest of the model trains (detectron2's
FrozenBatchNorm2d, mmdetection's ``norm_eval``).

Which layers a statement reaches: those whose running statistics it would
select if they were a parameter, that is the rank-1 tensor
``<layer path>.running_mean``; ``freeze backbone`` reaches every norm layer
under ``backbone``, ``freeze @BatchNorm2d`` every BatchNorm2d. ``norms`` is a
key of its own, decided per layer by the last statement that sets it (from
its moment on, with ``at``), whatever the statement freezes; a layer no
statement sets follows the model's mode.

How the mode is kept: a locked layer gets an instance attribute ``train``, a
:class:`NormLock`, which shadows ``nn.Module.train`` for that layer only.
``model.train()`` reaches every submodule through ``child.train(mode)``, so the
locked layer answers by staying in eval mode; nothing is patched on the class,
and a deep copy of the model (an EMA copy) copies the lock with its layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .cascade import Origin, Rules
from ..diagnostics import Diagnostic
from .match import TreeMatcher
from ..plan.statements import FreezeStatement
from .wrappers import transparent_attribute

STATS_NAME = "running_mean"  # the tensor a selector is matched against for a norm layer


@dataclass(frozen=True)
class NormSwitch:
    """A statement with ``norms=`` reaching a norm layer: its index, whether it sets eval, and from when."""

    index: int
    eval: bool
    timed: bool


@dataclass(frozen=True)
class NormLayer:
    """A norm layer with running statistics, its path, and the statements reaching it, in order."""

    path: str
    module: Any
    switches: tuple[NormSwitch, ...]

    def mode(self, fired: frozenset[int] = frozenset()) -> bool | None:
        """``True`` for eval, ``False`` for train, ``None`` to follow the model, once ``fired`` have come."""
        mode = None
        for switch in self.switches:
            if not switch.timed or switch.index in fired:
                mode = switch.eval
        return mode


def has_running_stats(module) -> bool:
    """Whether ``module`` is a norm layer whose running statistics eval mode keeps fixed."""
    from torch.nn.modules.batchnorm import _NormBase

    return isinstance(module, _NormBase) and bool(module.track_running_stats)


def _norm_statements(plan) -> list[tuple[int, FreezeStatement]]:
    return [(i, s) for i, s in enumerate(plan.statements) if isinstance(s, FreezeStatement) and s.norms]


def norm_layers(plan, model) -> tuple[list[NormLayer], set[int]]:
    """Every norm layer that a statement with ``norms=`` reaches, and the indices of the statements reaching one."""
    chosen = _norm_statements(plan)
    if not chosen:
        return [], set()
    matcher = TreeMatcher(a for _, s in chosen for t in s.selectors for a in t.atoms)
    rules = Rules([s for _, s in chosen], lambda k: Origin(chosen[k][0], chosen[k][1].kind, chosen[k][1].kind),
                  matcher)
    layers, used = [], set()
    for path, module, hits in _walk(model, matcher):
        switches = tuple(NormSwitch(r.origin.index, r.statement.norms == "eval", r.statement.timed)
                         for r in rules.rules if r.selects(hits))
        if switches:
            layers.append(NormLayer(path, module, switches))
            used |= {s.index for s in switches}
    return layers, used


def _walk(model, matcher: TreeMatcher) -> list[tuple[str, Any, frozenset[int]]]:
    """Each norm layer once (its first path), with the atoms that select its running statistics."""
    found, seen = [], set()
    rank_one = matcher.ndim(1)

    def visit(module, prefix: str, state: int) -> None:
        if id(module) not in seen and has_running_stats(module):
            seen.add(id(module))
            found.append((prefix[:-1], module, matcher.leaf(state, STATS_NAME) | rank_one))
        skip = transparent_attribute(type(module))
        for name, sub in module._modules.items():
            if sub is not None and name == skip:
                visit(sub, prefix, matcher.enter(state, type(sub)))
            elif sub is not None:
                visit(sub, prefix + name + ".", matcher.child(state, name, type(sub)))

    visit(model, "", matcher.root(type(model)))
    return found


def norm_warnings(plan, model) -> list[Diagnostic]:
    """W303 for each statement whose ``norms=`` reaches no norm layer with running statistics."""
    chosen = _norm_statements(plan)
    if not chosen:
        return []
    _, used = norm_layers(plan, model)
    return [Diagnostic("W303", f"norms={s.norms} reaches no norm layer with running statistics",
                       s.norms_span or s.span, "BatchNorm, SyncBatchNorm and InstanceNorm with "
                       "track_running_stats=True have them", severity="warning")
            for i, s in chosen if i not in used]


# --- keeping layers in eval mode -------------------------------------------------------------

class NormLock:
    """Stands in for one norm layer's ``train`` method: whatever mode is asked for, it stays in eval mode."""

    def __init__(self, module):
        self.module = module

    def __call__(self, mode: bool = True):
        import torch

        return torch.nn.Module.train(self.module, False)


def locked(module) -> bool:
    """Whether ``module`` is kept in eval mode by a :class:`NormLock`."""
    return isinstance(module.__dict__.get("train"), NormLock)


def lock(module) -> None:
    """Keep ``module`` in eval mode from now on, across ``model.train()`` calls."""
    if not locked(module):
        module.train = NormLock(module)
    module.train(False)


def unlock(module, mode: bool) -> None:
    """Let ``module`` follow ``train()`` calls again, and put it in ``mode`` now."""
    if locked(module):
        del module.train
    module.train(mode)


def unlock_all(model) -> None:
    """Undo every lock inside ``model`` (a recompile starts from the model as its code built it)."""
    for module in model.modules():
        if locked(module):
            unlock(module, model.training)


def apply_modes(layers: list[NormLayer], fired: frozenset[int], model) -> None:
    """Lock or unlock each layer as its statements decide once ``fired`` have come."""
    for layer in layers:
        mode = layer.mode(fired)
        if mode:
            lock(layer.module)
        elif locked(layer.module):
            unlock(layer.module, model.training)
