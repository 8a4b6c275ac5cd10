"""Sharded parameters (FSDP2's DTensors): gradient norms equal on every rank, and Muon on whole matrices.

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

Under DTensor, torch's Muon would orthogonalise each shard's share of a
matrix product in bfloat16 and add the ranks' rounded parts: the update then
differs from one process's. :class:`WholeMatrixMuon`, which the build stage
picks for sharded parameters, gathers each matrix first (docs/distributed.md).
:class:`DeferredSync` lets the step driver have FSDP2 reduce gradients once
per accumulation instead of once per micro-batch.

Nothing here imports ``torch.distributed`` on import: a DTensor (or an FSDP2
module) can exist only once its module is imported, and without one the plain
torch functions run as before.
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


# --- Muon on sharded matrices --------------------------------------------------------------------

def optimizer_class_for(cls: type, params: Sequence[torch.Tensor]) -> type:
    """The class to build for ``params``: torch's Muon becomes :class:`WholeMatrixMuon` when any is a DTensor.

    Under DTensor, torch's Muon runs its Newton-Schulz iteration on the
    shards: a product that sums over the sharded dimension adds the ranks'
    partial products, each already rounded to bfloat16, so the update differs
    from one process's by a rounding of bfloat16 that the iteration amplifies
    (up to a fifth of an update's largest element in the tests). Gathering each
    matrix first makes it the single-process update (docs/distributed.md).
    """
    return WholeMatrixMuon if cls is _MUON and any_sharded(params) else cls


_MUON = getattr(torch.optim, "Muon", torch.optim.Optimizer)  # torch has Muon from 2.9 on, as specopt needs


class WholeMatrixMuon(_MUON):
    """torch's Muon, whose Newton-Schulz iteration runs on each whole matrix when a parameter is a DTensor.

    Every rank gathers the matrix (one all-gather per sharded parameter and
    step), orthogonalises it as one process would, keeps its own part, and
    updates its shard. On plain tensors it computes what torch's Muon does.
    """

    @torch.no_grad()
    def step(self, closure=None):
        """torch's ``Muon.step``, one parameter at a time through :func:`_muon_update`."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, buffers = [], [], []
            self._init_group(group, params, grads, buffers)
            for param, grad, buffer in zip(params, grads, buffers):
                _muon_update(param, grad, buffer, group)
        return loss


def _muon_update(param: torch.Tensor, grad: torch.Tensor, buffer: torch.Tensor, group: dict) -> None:
    """torch's ``_single_tensor_muon`` for one parameter, orthogonalising the whole matrix of a DTensor."""
    from torch.optim._muon import _adjust_lr, _zeropower_via_newtonschulz

    if grad.ndim != 2:
        raise ValueError("Param gradient must be a 2D matrix")
    momentum, lr = group["momentum"], group["lr"]
    lr = lr.item() if isinstance(lr, torch.Tensor) else lr
    buffer.lerp_(grad, 1 - momentum)
    update = grad.lerp(buffer, momentum) if group["nesterov"] else buffer
    update = _on_whole(update, lambda m: _zeropower_via_newtonschulz(m, group["ns_coefficients"],
                                                                      group["ns_steps"], group["eps"]))
    param.mul_(1 - lr * group["weight_decay"])
    param.add_(update, alpha=-_adjust_lr(lr, group["adjust_lr_fn"], param.shape))


def _on_whole(tensor: torch.Tensor, fn) -> torch.Tensor:
    """``fn`` of the whole matrix, placed like ``tensor``: gathered from every rank first when it is a DTensor."""
    dtensor = _dtensor_type()
    if dtensor is None or not isinstance(tensor, dtensor):
        return fn(tensor)
    from torch.distributed.tensor import Replicate

    mesh = tensor.device_mesh
    whole = dtensor.from_local(fn(tensor.full_tensor()), mesh, [Replicate()] * mesh.ndim, run_check=False)
    return whole.redistribute(mesh, tensor.placements)  # from Replicate each rank keeps its part: no message


# --- FSDP2 gradient accumulation -----------------------------------------------------------------

class DeferredSync:
    """FSDP2's gradient reduction held back to the last micro-batch of an accumulation.

    ``fully_shard`` reduce-scatters every gradient at the end of each
    backward. With ``set_requires_gradient_sync(False)`` it instead keeps the
    unsharded gradients on each rank and adds the next micro-batch's into
    them, and the backward that syncs again reduces the sum: one reduction per
    optimizer step instead of one per micro-batch (the cost: an unsharded
    gradient held per parameter between them). A partial accumulation flushed
    at the end of an epoch had no backward that synced; :meth:`flush` then
    runs what FSDP2 runs after every backward for the module groups whose own
    hook did not fire, which reduces what they hold.
    """

    def __init__(self, roots: list):
        self.roots = roots
        self.syncing = True
        self.pending = False

    @classmethod
    def of(cls, model) -> "DeferredSync | None":
        """For the outermost ``fully_shard`` modules in ``model``; ``None`` when there are none (or torch's
        FSDP2 lacks what :meth:`flush` needs, when every micro-batch keeps reducing)."""
        fsdp = getattr(sys.modules.get("torch.distributed.fsdp"), "FSDPModule", None)
        if fsdp is None:
            return None
        names = [n for n, m in model.named_modules() if isinstance(m, fsdp)]
        roots = [model.get_submodule(n) for n in names  # those inside no other
                 if not any(o != n and (o == "" or n.startswith(o + ".")) for o in names)]
        flushable = all(hasattr(r._get_fsdp_state(), "_root_post_backward_final_callback") for r in roots)
        return cls(roots) if roots and flushable else None

    def before_backward(self, last: bool) -> None:
        """Reduce in the coming backward only when it is the last of its accumulation."""
        if last != self.syncing:
            for root in self.roots:
                root.set_requires_gradient_sync(last)
            self.syncing = last
        self.pending = not last

    def flush(self) -> None:
        """Reduce the gradients micro-batches left unreduced (a no-op when the last backward synced)."""
        if not self.pending:
            return
        self.before_backward(True)
        self.pending = False
        for root in self.roots:
            root._get_fsdp_state()._root_post_backward_final_callback()
