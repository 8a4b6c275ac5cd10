"""The training state of a checkpoint: everything past the optimizer and scheduler that a resumed run needs.

``compiled.state_dict()["training"]`` holds the step, epoch and micro-batch
counts, which timed statements have fired and the ``requires_grad`` flag of
every parameter the optimizer holds, the lr warmups in progress, the
GradScaler's state, the EMA, and (when saved in the middle of an accumulation)
the gradients accumulated so far. Loading it after the optimizer and scheduler
(``compiled.load_state_dict``) makes a run resumed on a freshly built model
continue bit for bit as the uninterrupted run would have. Each warmup records
the names of its group's parameters, so that a checkpoint loaded under a
changed spec finds them (:mod:`specopt.runtime.changed_spec_resume`: there the new spec decides
which moments have come and what is trainable).
"""

from __future__ import annotations

from typing import Any

from ..resolve.built_flags import set_requires_grad
from .unfreezing import Ramp
from ..resolve.norm_layers import apply_modes
from .changed_spec_resume import resume_under_new_spec

STATE_FORMAT = "specopt.training/1"


def training_state(driver, resolution) -> dict[str, Any]:
    """The driver's state as plain data and tensors, keyed by parameter and statement."""
    tensors, groups = _trained(driver), driver.ramps.param_groups
    out: dict[str, Any] = {
        "format": STATE_FORMAT, "steps": driver.steps, "epochs": driver.epochs, "micro": driver.micro,
        "fired": [[i, resolution.plan.statements[i].kind] for i in sorted(driver.board.fired)],
        "requires_grad": {n: bool(t.requires_grad) for n, t in tensors.items()},
        "ramps": {g: {"start": r.start, "length": r.length, "params": list(groups[g]["param_names"])}
                  for g, r in driver.ramps.active.items()},
        "scaler": driver.scaler.state_dict() if driver.scaler is not None else None,
        "ema": driver.ema.state_dict() if driver.ema is not None else None,
    }
    if driver.micro:
        out["grads"] = {n: t.grad for n, t in tensors.items() if t.grad is not None}
    return out


def load_training_state(driver, state: dict[str, Any], resolution,
                        changed: bool = False) -> tuple[dict[str, bool], list[str]]:
    """Continue from :func:`training_state`'s data; the scheduler must already be restored.

    With ``changed`` (the checkpoint was saved under another spec), this spec
    decides which of its moments have come and what is trainable at the saved
    position (:mod:`specopt.runtime.changed_spec_resume`); returns what that changed about
    trainability against the checkpoint, and the lines that say so.
    """
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"not a specopt training state (format {state.get('format')!r})")
    if not changed:
        check_fired(state["fired"], resolution)
    driver.steps, driver.epochs, driver.micro = int(state["steps"]), int(state["epochs"]), int(state["micro"])
    tensors = _trained(driver)
    report: tuple[dict[str, bool], list[str]] = ({}, [])
    if changed:
        report = resume_under_new_spec(driver, state, resolution)
    else:
        driver.board.fired = frozenset(i for i, _ in state["fired"])
        for name, flag in state["requires_grad"].items():
            if name in tensors and tensors[name].requires_grad != flag:
                set_requires_grad(tensors[name], flag)
        _load_ramps(driver, state["ramps"], resolution)
    grads = state.get("grads", {})
    for name, tensor in tensors.items():
        tensor.grad = grads[name].to(tensor.device) if name in grads and tensor.requires_grad else None
    apply_modes(driver.norms, driver.board.fired, driver.model)
    if driver.scaler is not None and state.get("scaler") is not None:
        driver.scaler.load_state_dict(state["scaler"])
    driver._scale = None
    if driver.ema is not None and state.get("ema") is not None:
        driver.ema.load_state_dict(state["ema"])
    driver._sync_next()
    return report


def _trained(driver) -> dict[str, Any]:
    return {n: p for g in driver.optimizer.param_groups for n, p in zip(g["param_names"], g["params"])}


def check_fired(fired: list, resolution) -> None:
    """Raise ``ValueError`` when a checkpoint says a timed statement fired that this spec does not have."""
    statements = resolution.plan.statements
    for index, kind in fired:
        if index >= len(statements) or statements[index].kind != kind or not getattr(statements[index], "timed", 0):
            raise ValueError(f"the checkpoint says statement {index + 1} ({kind} ... at) has fired, but this spec's "
                             "statements differ: resume with the spec the checkpoint was saved with")


def _load_ramps(driver, saved: dict, resolution) -> None:
    """Ramps in progress, each over this spec's scheduled lr (the restored scheduler's, or the group's own)."""
    ramps = driver.ramps
    if driver.scheduler is None:
        for group in ramps.active:
            ramps.param_groups[group]["lr"] = ramps.spec_lr(group, resolution)
    ramps.active.clear()
    for group, ramp in saved.items():
        group = int(group)
        ramps.active[group] = Ramp(int(ramp["start"]), float(ramp["length"]), ramps.param_groups[group]["lr"])
    ramps.apply(driver.steps)
