"""Choosing the optimizer implementation: fused, foreach or single-tensor.

torch offers up to three implementations of the same update. Measured on a
2-core CPU with torch 2.13 (AdamW, 20M parameters; benchmarks/bench_step.py):
fused 10 ms, single-tensor (torch's CPU default) 21 ms, foreach 54 ms. On CUDA
torch's default is foreach, and fused is faster still. So specopt picks fused
wherever torch supports it for every trainable tensor (its device type and a
floating dtype) and otherwise leaves torch's own per-device default, which is
the faster of foreach and single-tensor there. A spec that sets ``fused`` or
``foreach`` on its optimizer statement pins the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from .registry import OptimizerInfo


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
    if pinned.get("fused") or pinned.get("foreach") is not None:
        return Implementation(_pinned_name(pinned), "set by the spec")
    if info.option("fused") is None:
        return Implementation(_default_name(params), f"{info.name} has no fused implementation; torch's default")
    if pinned.get("differentiable"):
        return Implementation(_default_name(params), "fused does not support differentiable=true")
    unsupported = _fused_unsupported(info, params)
    if unsupported:
        return Implementation(_default_name(params), f"fused does not support {unsupported}; torch's default")
    devices = ", ".join(sorted({p.device.type for p in params}))
    return Implementation("fused", f"{info.name} supports fused on {devices} for these dtypes", {"fused": True})


def _pinned_name(pinned: Mapping[str, Any]) -> str:
    if pinned.get("fused"):
        return "fused"
    return "foreach" if pinned.get("foreach") else "single-tensor"


def _default_name(params: Sequence[torch.Tensor]) -> str:
    on_cuda = bool(params) and all(p.device.type == "cuda" for p in params)
    return "foreach" if on_cuda else "single-tensor"


def _fused_unsupported(info: OptimizerInfo, params: Sequence[torch.Tensor]) -> str | None:
    """What keeps fused from applying, in words, or ``None`` when every tensor supports it."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:
        return "this torch version (it does not report fused support)"
    devices = set(_get_fused_kernels_supported_devices()) - set(info.fused_unsupported_devices)
    for p in params:
        if p.device.type not in devices:
            return f"{p.device.type} tensors"
        if not torch.is_floating_point(p):
            return f"{p.dtype} tensors"
        if p.is_sparse:
            return "sparse tensors"
    return None
