"""The ``device`` statement: where the model lives, chosen before the optimizer is built.

    device cuda:1
    device auto        # the current accelerator (CUDA, MPS, XPU, ...) if there is one, else cpu

A device that does not exist on this machine is error E410 at the statement,
naming the devices that do. Moving is transactional: :func:`move` returns an
undo that puts every parameter and buffer back where it was, which the build
calls when a later step fails, so a failed compile moves nothing.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..diagnostics import Diagnostic, Source, SpecError


def available() -> list[str]:
    """The devices of this machine: ``cpu`` and each accelerator device by index."""
    found = ["cpu"]
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if accelerator is not None:
        found += [f"{accelerator.type}:{i}" for i in range(torch.accelerator.device_count())]
    return found


def target(plan, source: Source | None = None) -> torch.device | None:
    """The device the spec's ``device`` statement names, or ``None`` without one; E410 when it is not here."""
    stmt = plan.device
    if stmt is None:
        return None
    if stmt.device == "auto":
        accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
        if accelerator is None:
            return torch.device("cpu")
        return torch.device(accelerator.type, torch.accelerator.current_device_index())
    return named(stmt.device, stmt.span, source)


def named(name: str, span, source: Source | None = None) -> torch.device:
    """The device called ``name`` (``cpu``, ``cuda:1``); E410 at ``span`` when this machine has none such,
    or this torch knows no such device type."""
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is not None and (device.type == "cpu" or _exists(device)):
        return device
    why = "" if device is not None else f" (this torch knows no device type '{name.partition(':')[0]}')"
    raise SpecError([Diagnostic("E410", f"there is no device {name} here{why}", span,
                                "devices here: " + ", ".join(available()))], source)


def _exists(device: torch.device) -> bool:
    if not torch.accelerator.is_available():
        return False
    accelerator = torch.accelerator.current_accelerator()
    if accelerator is None or accelerator.type != device.type:
        return False
    return device.index is None or device.index < torch.accelerator.device_count()


def move(model: torch.nn.Module, device: torch.device, span=None,
         source: Source | None = None) -> Callable[[], None]:
    """Move ``model``'s parameters and buffers to ``device``; return what moves them back.

    Parameters must keep their identity (only their data is replaced, as
    ``Module.to`` does between dense devices), so that a resolution made
    before the move still names the tensors the optimizer gets; a move that
    would replace them is undone and reported as E410.
    """
    params = [(m, name, p, p.data) for m in model.modules() for name, p in m._parameters.items() if p is not None]
    buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]

    def undo() -> None:
        with torch.no_grad():
            for m, name, p, data in params:
                m._parameters[name] = p
                p.data = data
            for m, name, b in buffers:
                m._buffers[name] = b

    model.to(device)
    if any(m._parameters[name] is not p for m, name, p, _ in params):
        undo()
        raise SpecError([Diagnostic("E410", f"the model's parameters cannot be moved to {device} in place",
                                    span, "devices here: " + ", ".join(available()))], source)
    return undo


def release_cached_memory() -> None:
    """Hand the accelerator's cached, unused memory back to the system (nothing on a CPU-only machine)."""
    if torch.accelerator.is_available():
        torch.accelerator.empty_cache()
