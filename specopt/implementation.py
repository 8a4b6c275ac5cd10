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
the builtin optimizers (:data:`specopt.registry.OPTIMIZERS`): an extension or
import-path class that takes a ``fused`` argument keeps torch's default, since
nothing says its fused path computes the same update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from .registry import OPTIMIZERS, OptimizerInfo
from .sharded import fused_unsupported


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
