"""Gradient clipping as an optimizer step pre-hook, so a plain ``optimizer.step()`` clips."""

from __future__ import annotations

from typing import Sequence

import torch

_EPS = 1e-6  # the term torch.nn.utils.clip_grads_with_norm_ adds to the norm before dividing


class Clipper:
    """Clips the gradients of one optimizer's parameters by total norm or by value.

    Attached to an optimizer, it runs before every ``optimizer.step()``. It can
    also be called on its own. ``last_norm`` keeps the total gradient norm
    measured by the most recent call (a tensor, so reading it never forces a
    device sync until you convert it).
    """

    def __init__(self, params: Sequence[torch.Tensor], mode: str, max_value: float,
                 norm_type: float | None):
        self.params = list(params)
        self.mode = mode
        self.max_value = float(max_value)
        self.norm_type = norm_type
        self.last_norm: torch.Tensor | None = None
        self._handle = None

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
        total = torch.nn.utils.get_total_norm(grads, self.norm_type)
        self.last_norm = total
        if total.device.type == "cpu" and float(total) + _EPS <= self.max_value:
            return total
        torch.nn.utils.clip_grads_with_norm_(self.params, self.max_value, total)
        return total

    def attach(self, optimizer: torch.optim.Optimizer) -> "Clipper":
        """Run before every ``optimizer.step()`` from now on."""
        self.detach()
        self._handle = optimizer.register_step_pre_hook(self._pre_step)
        return self

    def _pre_step(self, optimizer, args, kwargs) -> None:
        self()

    def detach(self) -> None:
        """Stop running on ``optimizer.step()``; calling the clipper by hand still works."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def attached(self) -> bool:
        """Whether the clipper runs on every ``optimizer.step()``."""
        return self._handle is not None
