"""Gradient norms over sharded gradients (FSDP2's DTensors): one total, the same on every rank.

Under ``torch.distributed.fsdp.fully_shard`` every parameter is a DTensor and
each rank holds a shard of its gradient. ``torch.nn.utils.get_total_norm``
then returns a DTensor too: replicated for an l1, l2 or lP norm (it reduced
over the ranks), but for the inf norm a *partial* maximum, whose ``float()``
reads only this rank's local maximum. The clip hook decides on the host
whether to scale (``float(norm) <= max`` skips the scaling pass), so with
the partial value one rank would scale while another would not, and scaling
with a DTensor norm communicates: the ranks would wait for each other
forever. :func:`total_norm` therefore turns the norm into a plain tensor that
is the same on every rank (``full_tensor()``, a collective that every rank
makes, since every rank steps its optimizer). Gradients on several device
meshes (FSDP2 next to tensor parallelism) and plain tensors next to DTensors
are measured apart and combined, as the norm of their norms.

Nothing here imports ``torch.distributed``: a DTensor can exist only once its
module is imported, and without one the plain torch functions run as before.
"""

from __future__ import annotations

import sys
from typing import Sequence

import torch


def _dtensor_type() -> type | None:
    """The DTensor class when its module is imported (else no DTensor can exist)."""
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None)


def any_sharded(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether any of ``tensors`` is a DTensor (a parameter's gradient is one exactly when it is one)."""
    dtensor = _dtensor_type()
    return dtensor is not None and any(isinstance(t, dtensor) for t in tensors)


def total_norm(grads: Sequence[torch.Tensor], norm_type: float, sharded: bool | None = None) -> torch.Tensor:
    """``torch.nn.utils.get_total_norm(grads, norm_type)``, as a plain tensor equal on every rank.

    For DTensor gradients this is a collective: every rank must call it.
    ``sharded`` says whether any gradient is a DTensor, when the caller knows
    (the clip hook does, once, for its parameters); ``None`` looks.
    """
    if not (any_sharded(grads) if sharded is None else sharded):
        return torch.nn.utils.get_total_norm(grads, norm_type)
    dtensor = _dtensor_type()
    parts = [torch.nn.utils.get_total_norm(group, norm_type) for group in _by_mesh(grads, dtensor)]
    parts = [p.full_tensor() if isinstance(p, dtensor) else p for p in parts]
    if len(parts) == 1:
        return parts[0]
    device = parts[0].device
    return torch.nn.utils.get_total_norm([p.to(device) for p in parts], norm_type)


def _by_mesh(grads: Sequence[torch.Tensor], dtensor: type) -> list[list[torch.Tensor]]:
    """The gradients split into plain tensors and DTensors of each device mesh, in order of appearance."""
    groups: dict[int, list[torch.Tensor]] = {}
    for grad in grads:
        key = id(grad.device_mesh) if isinstance(grad, dtensor) else 0
        groups.setdefault(key, []).append(grad)
    return list(groups.values())


def scale_to_norm(params: Sequence[torch.Tensor], max_norm: float, total: torch.Tensor,
                  sharded: bool | None = None) -> None:
    """``torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)``, DTensor gradients included.

    ``total`` is :func:`total_norm`'s plain tensor; each kind of gradient is
    scaled in a call of its own, since torch's fused kernels take no mixture.
    ``sharded`` as for :func:`total_norm`.
    """
    if not (any_sharded(params) if sharded is None else sharded):
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
        return
    dtensor = _dtensor_type()
    shards = [p for p in params if isinstance(p, dtensor)]
    if not shards or len(shards) == len(params):
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
        return
    for group in _by_mesh(shards, dtensor) + [[p for p in params if not isinstance(p, dtensor)]]:
        torch.nn.utils.clip_grads_with_norm_(group, max_norm, total)


def fused_unsupported(name: str, params: Sequence[torch.Tensor]) -> str | None:
    """Why a builtin's fused kernel cannot run on these DTensor parameters, or ``None`` when it can.

    DTensor runs an operator only with a sharding rule for it; torch 2.13 has
    one for fused Adam and AdamW, but not for fused SGD or Adagrad.
    """
    dtensor = _dtensor_type()
    if dtensor is None or not any(isinstance(p, dtensor) for p in params):
        return None
    packet = getattr(torch.ops.aten, f"_fused_{name}_", None)
    propagator = getattr(getattr(dtensor, "_op_dispatcher", None), "sharding_propagator", None)
    rules = [getattr(propagator, a, {}) for a in ("op_strategy_funcs", "op_single_dim_strategy_funcs")]
    if packet is not None and any(getattr(packet, o) in r for o in packet.overloads() for r in rules):
        return None
    return f"DTensor (sharded) parameters with {name}: torch has no sharding rule for its fused kernel"
