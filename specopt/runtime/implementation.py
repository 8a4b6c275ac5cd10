"""Choosing the optimizer implementation: fused, foreach or single-tensor.

torch offers up to three implementations of the same update. Measured on a
2-core CPU with torch 2.13 (AdamW, 20M parameters; benchmarks/bench_step.py):
fused 10 ms, single-tensor (torch's CPU default) 21 ms, foreach 54 ms. On an
H200 with torch 2.11 (benchmarks/bench_impl.py, README "On a GPU") fused was
the fastest path at every size measured, and foreach, torch's CUDA default,
beat single-tensor by 2.3-9x on tensors of up to a million elements (it loses
by 12-35% only when every tensor holds tens of millions of elements). So
specopt picks fused wherever torch supports it for every trainable tensor (its
device type and a floating dtype) and otherwise leaves torch's own per-device
default: single-tensor on the CPU, foreach on CUDA. A spec that sets ``fused`` or
``foreach`` (to true or false) on its optimizer statement pins the choice;
``fused=false`` alone pins torch's default. The automatic choice applies only to
the builtin optimizers (:data:`specopt.catalog.registry.OPTIMIZERS`): an extension or
import-path class that takes a ``fused`` argument keeps torch's default, since
nothing says its fused path computes the same update.

The choice holds for the whole run, also for parameters that join it later
(``unfreeze ... at``, or one that first gets a gradient late). Every
implementation of a builtin skips a parameter whose gradient is ``None``, and
all but L-BFGS (one implementation, one history over its one group) keep state
per parameter, started empty at its first step (Adagrad's is made
at construction, with the same values), so a joining parameter starts as if it
had just been added to the optimizer: tests/test_unfreeze_implementations.py
checks that bit for bit against such a hand-written loop. One implementation
breaks the pattern: torch's fused SGD starts the momentum buffers of a param
group all at once, on a step where no parameter of the group has one, and
raises ``TypeError`` when some have one and others not. So every SGD
optimizer specopt builds gets :class:`FusedMomentumStarts`: on such a step it
steps the parameters without a buffer apart, through the same fused kernel, as
torch steps a group that was just added, and the others as usual. It also
keeps a step that a ``GradScaler`` skips from leaving the buffers torch
allocates for a first step uninitialised (the kernel then writes nothing).
Where this torch's SGD offers no place to do that (:func:`fused_momentum_guard`),
fused is not chosen for SGD automatically.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch.optim.sgd import sgd as functional_sgd

from ..catalog.registry import OPTIMIZERS, OptimizerInfo
from .sharded_norms import fused_unsupported


@dataclass(frozen=True)
class Implementation:
    """The chosen implementation, the constructor flags that select it, and why."""

    name: str
    reason: str
    flags: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for reports."""
        return f"{self.name} ({self.reason})"


def choose_implementation(info: OptimizerInfo, params: Sequence[torch.Tensor],
                          pinned: Mapping[str, Any]) -> Implementation:
    """Pick the implementation for ``params``; ``pinned`` holds the spec's optimizer-wide flags."""
    if pinned.get("fused") is not None or pinned.get("foreach") is not None:
        return _pinned(info, pinned, params)
    default = _default_name(params, pinned)
    if OPTIMIZERS.get(info.name) is not info:
        return Implementation(default, f"{info.name} is not a builtin optimizer, and specopt chooses "
                              "fused only for builtins; torch's default")
    if info.option("fused") is None:
        return Implementation(default, f"{info.name} has no fused implementation; torch's default")
    if info.name == "sgd" and not fused_momentum_guard():
        return Implementation(default, "this torch's fused SGD cannot start the momentum of parameters that "
                              "join during the run; torch's default")
    if pinned.get("differentiable"):
        return Implementation(default, "fused does not support differentiable=true")
    unsupported = _fused_unsupported(info, params)
    if unsupported:
        return Implementation(default, f"fused does not support {unsupported}; torch's default")
    devices = ", ".join(sorted({p.device.type for p in params}))
    return Implementation("fused", f"{info.name} supports fused on {devices} for these dtypes", {"fused": True})


def _pinned(info: OptimizerInfo, pinned: Mapping[str, Any], params: Sequence[torch.Tensor]) -> Implementation:
    """The implementation the spec's flags select.

    ``fused=false`` without ``foreach`` means torch's per-device default. torch's
    builtins apply that default only when both flags are unset and otherwise run
    single-tensor, so for them the default is passed on as an explicit ``foreach``.
    """
    if pinned.get("fused"):
        return Implementation("fused", "set by the spec")
    if pinned.get("foreach") is not None:
        return Implementation("foreach" if pinned["foreach"] else "single-tensor", "set by the spec")
    name = _default_name(params, pinned)
    builtin = OPTIMIZERS.get(info.name) is info and info.option("foreach") is not None
    return Implementation(name, "set by the spec", {"foreach": name == "foreach"} if builtin else {})


def _default_name(params: Sequence[torch.Tensor], pinned: Mapping[str, Any]) -> str:
    """torch's per-device default: foreach when every tensor is on CUDA (and not differentiable)."""
    on_cuda = bool(params) and all(p.device.type == "cuda" for p in params)
    return "foreach" if on_cuda and not pinned.get("differentiable") else "single-tensor"


def _fused_unsupported(info: OptimizerInfo, params: Sequence[torch.Tensor]) -> str | None:
    """What keeps fused from applying, in words, or ``None`` when every tensor supports it."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:
        return "this torch version (it does not report fused support)"
    sharded = fused_unsupported(info.name, params)
    if sharded is not None:
        return sharded
    devices = set(_get_fused_kernels_supported_devices()) - set(info.fused_unsupported_devices)
    for p in params:
        if p.device.type not in devices:
            return f"{p.device.type} tensors"
        if not torch.is_floating_point(p):
            return f"{p.dtype} tensors"
        if p.is_sparse:
            return "sparse tensors"
    return None


# --- fused SGD: parameters that join a group whose others have momentum ------------------------

_SGD_INIT_GROUP = ["self", "group", "params", "grads", "momentum_buffer_list"]


def fused_momentum_guard() -> bool:
    """Whether :class:`FusedMomentumStarts` can run in this torch (SGD gathers a group's tensors where it expects)."""
    init_group = getattr(torch.optim.SGD, "_init_group", None)
    return init_group is not None and list(inspect.signature(init_group).parameters) == _SGD_INIT_GROUP


def guard_fused_momentum(optimizer: torch.optim.Optimizer) -> None:
    """Let ``optimizer`` (any optimizer) step fused SGD groups that mix parameters with and without momentum."""
    if type(optimizer) is torch.optim.SGD and fused_momentum_guard():
        optimizer._init_group = FusedMomentumStarts(optimizer)


class FusedMomentumStarts:
    """Gathers an SGD group's tensors as torch does, then steps apart those without a momentum buffer.

    It takes the place of the optimizer's ``_init_group``, which ``step()``
    calls for each group after the closure and the step pre-hooks (the clip)
    ran, so it sees the gradients the kernel will use. It changes nothing
    unless the group is fused with momentum and some parameter with a gradient
    has no buffer yet while others have one, or a ``GradScaler`` skips a step
    that would start buffers (reading its ``found_inf`` then: a device sync,
    on such steps only).
    """

    def __init__(self, optimizer: torch.optim.SGD):
        self.optimizer = optimizer

    def __call__(self, group: dict, params: list, grads: list, buffers: list) -> bool:
        """Fill ``params``, ``grads`` and ``buffers`` for ``group`` as torch does, less the ones stepped here."""
        sparse = torch.optim.SGD._init_group(self.optimizer, group, params, grads, buffers)
        if group.get("fused") and group["momentum"] != 0:
            self._start_apart(group, params, grads, buffers)
        return sparse

    def _start_apart(self, group: dict, params: list, grads: list, buffers: list) -> None:
        fresh = [i for i, b in enumerate(buffers) if b is None]
        if not fresh:
            return
        found_inf = getattr(self.optimizer, "found_inf", None)
        skipped = found_inf is not None and bool(found_inf.item())
        if len(fresh) == len(buffers) and not skipped:
            return  # torch starts a whole group itself
        joining = [(params[i], grads[i]) for i in fresh]
        for i in reversed(fresh):
            del params[i], grads[i], buffers[i]
        if not skipped:
            self._first_step(group, joining)

    def _first_step(self, group: dict, joining: list) -> None:
        """Step ``joining`` as the first step of a group of their own, as torch's ``SGD.step`` would."""
        started: list = [None] * len(joining)
        with torch.no_grad():
            functional_sgd(
                [p for p, _ in joining], [g for _, g in joining], started, has_sparse_grad=False, foreach=False,
                fused=True, grad_scale=getattr(self.optimizer, "grad_scale", None),
                found_inf=getattr(self.optimizer, "found_inf", None), weight_decay=group["weight_decay"],
                momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
                nesterov=group["nesterov"], maximize=group["maximize"])
        for (p, _), buffer in zip(joining, started):
            self.optimizer.state[p]["momentum_buffer"] = buffer
