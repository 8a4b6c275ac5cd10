"""The ``ema`` statement at run time: an exponential moving average of the weights in an AveragedModel.

    ema 0.9999 warmup=true every=1 buffers=true device=cpu

The average lives in a ``torch.optim.swa_utils.AveragedModel`` (a deep copy
of the model, with ``n_averaged``), which ``compiled.ema`` is, for evaluation
and checkpoints. Its update is multi-tensor: ``torch._foreach_lerp_`` of the
floating-point tensors towards the model's, by ``1 - decay``, and a copy of
the others (``num_batches_tracked``), as timm's ModelEmaV3 does. The first
update copies the weights, as AveragedModel's does. After optimizer step
``t`` the decay is ``decay``, or with ``warmup=true`` timm's warmed-up decay
``min(decay, 1 - (1 + (t - 1) / gamma) ^ -power)`` (0 at ``t = 1``).

Parameters the spec never trains keep the values they had at the first
update, so they are copied then and skipped afterwards. ``buffers=false``
averages the parameters only and copies the buffers (AveragedModel's
``use_buffers=False``).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from ..resolve.norm_layers import unlock_all


class EMA:
    """An averaged copy of a model, updated every ``every`` optimizer steps (see the module's docstring)."""

    def __init__(self, model: torch.nn.Module, stmt, static: set[int], device: torch.device | None = None):
        self.decay = float(stmt.decay)
        self.warmup = bool(stmt.setting("warmup"))
        self.power = float(stmt.setting("power"))
        self.gamma = float(stmt.setting("gamma"))
        self.every = int(stmt.setting("every"))
        self.buffers = bool(stmt.setting("buffers"))
        self.current = self.decay
        self.updates = 0
        self._static = static
        self.averaged = AveragedModel(model, device=device, multi_avg_fn=self._average, use_buffers=self.buffers)
        self.averaged.requires_grad_(False)
        unlock_all(self.averaged)
        self.averaged.eval()

    def decay_at(self, step: int) -> float:
        """The decay used by the update after optimizer step ``step`` (1 for the first step)."""
        if not self.warmup:
            return self.decay
        t = step - 1
        if t <= 0:
            return 0.0
        return max(min(1.0 - (1.0 + t / self.gamma) ** -self.power, self.decay), 0.0)

    def due(self, step: int) -> bool:
        """Whether the average is updated after optimizer step ``step``."""
        return step % self.every == 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Move the average towards ``model`` after optimizer step ``step``."""
        self.current = self.decay_at(step)
        first = self.updates == 0
        ema_floats, model_floats, ema_other, model_other = self._pairs(model, first)
        if first:
            ema_floats, model_floats = ema_floats + ema_other, model_floats + model_other
            ema_other, model_other = [], []
            torch._foreach_copy_(ema_floats, model_floats)
        elif ema_floats:
            torch._foreach_lerp_(ema_floats, model_floats, 1.0 - self.current)
        if ema_other:
            torch._foreach_copy_(ema_other, model_other)
        self.averaged.n_averaged += 1
        self.updates += 1

    def _pairs(self, model: torch.nn.Module, first: bool) -> tuple[list, list, list, list]:
        """The averaged tensors and the model's, split into those averaged and those copied."""
        ours, theirs = self.averaged.module, model
        pairs = [(a, p) for a, p in zip(ours.parameters(), theirs.parameters()) if first or id(p) not in self._static]
        buffers = list(zip(ours.buffers(), theirs.buffers()))
        averaged = pairs + (buffers if self.buffers else [])
        copied = [] if self.buffers else buffers
        floats = [(a, p) for a, p in averaged if a.is_floating_point() or a.is_complex()]
        copied += [(a, p) for a, p in averaged if not (a.is_floating_point() or a.is_complex())]
        device = _single_device(ours)
        return ([a for a, _ in floats], [_on(p, device) for _, p in floats],
                [a for a, _ in copied], [_on(p, device) for _, p in copied])

    def _average(self, averaged: list, current: list, n_averaged: Any) -> None:
        """AveragedModel's multi-tensor average function, for ``compiled.ema.update_parameters(model)``."""
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            torch._foreach_lerp_(averaged, current, 1.0 - self.current)
        else:
            torch._foreach_copy_(averaged, current)

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights, ``n_averaged`` and the number of updates so far."""
        return {"averaged": self.averaged.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the average saved by :meth:`state_dict`."""
        self.averaged.load_state_dict(state["averaged"])
        self.updates = int(state["updates"])


def _single_device(module: torch.nn.Module) -> torch.device | None:
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return None if first is None else first.device


def _on(tensor: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return tensor if device is None or tensor.device == device else tensor.to(device, non_blocking=True)
