"""Gradient clipping as an optimizer step pre-hook, so a plain ``optimizer.step()`` clips.

Two parts, kept apart so that one clipper could one day serve several optimizers:

* :class:`Clipper` measures the total norm of its parameters' gradients and
  scales them down (or clips them by value). It knows nothing of optimizers.
* :class:`StepHook` runs a clipper at the right moment of one optimizer's step:
  before the update, after the gradients of this step exist, and after they
  are unscaled. It takes over two jobs from torch to get there:

  - **Mixed precision.** ``GradScaler.step`` leaves unscaling to a fused
    optimizer's kernel (it sets ``optimizer.grad_scale`` and
    ``optimizer.found_inf``), so the gradients a pre-hook sees are still
    scaled. The hook unscales them itself, exactly as ``scaler.unscale_``
    would, and clears ``grad_scale`` so the kernel does not unscale twice;
    ``found_inf`` stays, so a step with inf or nan gradients is still skipped.
  - **Closures.** ``optimizer.step(closure)`` computes this step's gradients
    inside the step, after every pre-hook has run. The hook wraps the closure
    so that the gradients it produces are clipped each time it runs (L-BFGS
    runs it several times per step).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Sequence

import torch

from .sharded_norms import any_sharded, scale_to_norm, total_norm

_EPS = 1e-6  # the term torch.nn.utils.clip_grads_with_norm_ adds to the norm before dividing


class Clipper:
    """Clips the gradients of one optimizer's parameters by total norm or by value.

    Attached to an optimizer, it runs on every ``optimizer.step()`` (see
    :class:`StepHook`). It can also be called on its own. ``last_norm`` keeps
    the total gradient norm measured by the most recent call (a tensor, so
    reading it never forces a device sync until you convert it); under a
    ``GradScaler`` it is the norm of the unscaled gradients.
    """

    def __init__(self, params: Sequence[torch.Tensor], mode: str, max_value: float,
                 norm_type: float | None):
        self.params = list(params)
        self.mode = mode
        self.max_value = float(max_value)
        self.norm_type = norm_type
        self.last_norm: torch.Tensor | None = None
        self._hook: StepHook | None = None
        self._sharded = any_sharded(self.params)  # fixed with the parameters: not looked up every step

    def __call__(self) -> torch.Tensor | None:
        """Clip now; return the total norm before clipping (``None`` when clipping by value).

        The result equals ``torch.nn.utils.clip_grad_norm_``: parameters without
        a gradient are skipped, and with none at all the total norm is 0 (and
        clipping by value does nothing). When the total norm lives on the CPU,
        where reading it costs no device sync, the scaling pass is skipped if
        the norm is already within the maximum (torch would multiply every
        gradient by exactly 1).
        """
        grads = [p.grad for p in self.params if p.grad is not None]
        if self.norm_type is None:
            if grads:  # torch's clip_grad_value_ raises on a list without gradients
                torch.nn.utils.clip_grad_value_(self.params, self.max_value)
            return None
        total = total_norm(grads, self.norm_type, self._sharded)  # a plain tensor, equal on every rank under FSDP2
        self.last_norm = total
        if total.device.type == "cpu" and float(total) + _EPS <= self.max_value:
            return total
        scale_to_norm(self.params, self.max_value, total, self._sharded)
        return total

    def attach(self, optimizer: torch.optim.Optimizer) -> "Clipper":
        """Run on every ``optimizer.step()`` from now on (replacing an earlier attachment)."""
        self.detach()
        self._hook = StepHook(optimizer, self)
        return self

    def detach(self) -> None:
        """Stop running on ``optimizer.step()``; calling the clipper by hand still works."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    @property
    def attached(self) -> bool:
        """Whether the clipper runs on every ``optimizer.step()``."""
        return self._hook is not None


class StepHook:
    """Runs ``clip`` during each ``optimizer.step()``, on this step's unscaled gradients.

    Without a closure, ``clip`` runs before the update. With one (passed
    positionally or as ``closure=``), it runs right after each evaluation of
    the closure, as a hand-written closure that clips after ``backward()``
    would. Either way, gradients a ``GradScaler`` left scaled for a fused
    kernel are unscaled first (:func:`unscale_for_step`).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, clip: Callable[[], Any]):
        self.clip = clip
        self._handle = optimizer.register_step_pre_hook(self._pre_step)

    def remove(self) -> None:
        """Stop running on ``optimizer.step()``."""
        self._handle.remove()

    def _pre_step(self, optimizer, args: tuple, kwargs: dict):
        """The step pre-hook: clip now, or hand the step a closure that clips after it runs."""
        if kwargs.get("closure") is not None:
            return args, {**kwargs, "closure": self._clipping(optimizer, kwargs["closure"])}
        if len(args) > 1 and args[1] is not None:  # args[0] is the optimizer itself
            return (args[0], self._clipping(optimizer, args[1]), *args[2:]), kwargs
        self._run(optimizer)
        return None

    def _run(self, optimizer: torch.optim.Optimizer) -> None:
        unscale_for_step(optimizer)
        self.clip()

    def _clipping(self, optimizer: torch.optim.Optimizer, closure: Callable[[], Any]) -> Callable[[], Any]:
        def clipped_closure():
            loss = closure()
            self._run(optimizer)
            return loss
        return clipped_closure


def unscale_for_step(optimizer: torch.optim.Optimizer) -> None:
    """Unscale the gradients that ``GradScaler.step`` left for the fused kernel, and tell the kernel.

    ``GradScaler.step`` on an optimizer with ``_step_supports_amp_scaling``
    (the fused ones) sets ``optimizer.grad_scale`` instead of unscaling; the
    kernel divides by it during the update. This unscales in place now, with
    the same kernel and the same reciprocal that ``scaler.unscale_`` uses, and
    sets ``grad_scale`` to ``None``. ``found_inf`` is left alone: GradScaler
    computed it on the scaled gradients, and it still makes the kernel skip
    the update. Nothing here reads a device value on the host.
    """
    scale = getattr(optimizer, "grad_scale", None)
    if scale is None:
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    _unscale(grads, scale)
    optimizer.grad_scale = None


def _unscale(grads: Sequence[torch.Tensor], scale: torch.Tensor) -> None:
    """Multiply ``grads`` in place by ``1 / scale``, grouped by device and dtype as torch's kernel needs."""
    if scale.device.type == "mps":  # no float64 there; torch's GradScaler does the same
        inv_scale = scale.reciprocal()
    else:
        inv_scale = scale.double().reciprocal().float()
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = defaultdict(list)
    for grad in grads:
        values = grad._values() if grad.is_sparse else grad
        groups[(values.device, values.dtype)].append(values)
    per_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.no_grad():
        for (device, _), tensors in groups.items():
            if device not in per_device:
                per_device[device] = (inv_scale.to(device, non_blocking=True, copy=True),
                                      torch.zeros((), dtype=torch.float32, device=device))
            inv, scratch_found_inf = per_device[device]
            torch._amp_foreach_non_finite_check_and_unscale_(tensors, scratch_found_inf, inv)
