"""Resuming under a changed spec: this spec's moments and trainability apply from the saved position on.

A checkpoint saved under another spec (its plan hashes differently) keeps the
loop's position (steps, epochs, micro-batches), but the checkpoint's record of
which timed statements have fired and of every ``requires_grad`` flag belongs
to the old spec. Here this spec decides instead, at that position: each of its
``freeze/unfreeze ... at`` moments that lies in the past applies at once, each
one in the future waits, and every parameter gets the trainability this spec's
cascade gives it then. The flags this changes against the checkpoint are
reported, each with the statement that decides it now and the moments still to
come that would change it again.

An lr warmup runs where this spec's deciding statement has one: a warmup saved
in progress on the same parameters goes on from its saved start (with this
spec's length), parameters that join training only now start theirs now, and
parameters that already trained in the checkpoint without a warmup in progress
get none.
"""

from __future__ import annotations

from typing import Any

from ..resolve.built_flags import set_requires_grad
from .unfreezing import Ramp
from ..resolve.timeline import state as state_at, switches_of


def resume_under_new_spec(driver, saved: dict[str, Any], resolution) -> tuple[dict[str, bool], list[str]]:
    """Apply this spec's moments and trainability at the driver's (restored) position.

    ``saved`` is the checkpoint's training state. Returns the parameters whose
    trainability differs from the checkpoint's, with their flag now, and the
    lines that say so for a warning (none when nothing changed).
    """
    board = driver.board
    board.fired = frozenset(e.index for e in board.events if e.due(driver.steps, driver.epochs))
    for entry in board.entries.values():
        trainable = state_at(entry.switches, entry.built, board.fired)[0]
        for tensor in entry.tensors:
            if tensor.requires_grad != trainable:
                set_requires_grad(tensor, trainable)
    _restart_ramps(driver, saved, resolution)
    return _trainability(driver, resolution, saved["requires_grad"])


def _restart_ramps(driver, saved: dict[str, Any], resolution) -> None:
    """The lr warmups of this spec in progress now (see the module's docstring)."""
    ramps, board = driver.ramps, driver.board
    if driver.scheduler is None:
        for group in ramps.active:
            ramps.param_groups[group]["lr"] = ramps.spec_lr(group, resolution)
    ramps.active.clear()
    started = {n: r["start"] for key, r in saved["ramps"].items() for n in _ramped(r, key, ramps.param_groups)}
    flags = saved["requires_grad"]
    length = {e.index: e.ramp for e in board.events}
    for entry in board.entries.values():
        trainable, decider = state_at(entry.switches, entry.built, board.fired)
        if not trainable or decider is None or length.get(decider.index) is None:
            continue
        for group in entry.groups:
            names = ramps.param_groups[group]["param_names"]
            start = next((started[n] for n in names if n in started), None)
            if start is None and not all(flags.get(n, False) for n in names):
                start = driver.steps  # they join training now
            if start is not None:
                ramps.active[group] = Ramp(int(start), length[decider.index], ramps.param_groups[group]["lr"])
    ramps.apply(driver.steps)


def _ramped(saved: dict[str, Any], key, groups: list[dict]) -> list[str]:
    """The parameters a saved warmup ramps: as it recorded them, else (a checkpoint from before it did)
    those of the param group at its position now."""
    if "params" in saved:
        return list(saved["params"])
    return list(groups[int(key)]["param_names"]) if 0 <= int(key) < len(groups) else []


def _trainability(driver, resolution, flags: dict[str, bool]) -> tuple[dict[str, bool], list[str]]:
    """The parameters whose flag now differs from the checkpoint's, and one line per reason."""
    when = {e.index: e.when for e in driver.board.events}
    changed: dict[str, bool] = {}
    reasons: dict[str, list[str]] = {}
    for name, before in flags.items():
        try:
            param = resolution.param(name)
        except KeyError:
            continue
        now = bool(resolution.tensors[param.info.name].requires_grad)
        if now == bool(before):
            continue
        changed[param.info.name] = now
        switches = switches_of(param.touched, resolution.plan) if param.touched else ()
        why = _why(switches, param.info.requires_grad, driver.board.fired, when)
        reasons.setdefault(why, []).append(param.info.name)
    if not changed:
        return changed, []
    head = (f"what this spec changes about trainability from now on (after step {driver.steps}, "
            f"epoch {driver.epochs}):")
    return changed, [head] + [f"  {_names(names)}: {why}" for why, names in reasons.items()]


def _why(switches, built: bool, fired: frozenset[int], when: dict[int, str]) -> str:
    """``trainable in the checkpoint, frozen from now on (by freeze@2:1); still to come: unfreeze@3:1 at epoch 6``."""
    now, decider = state_at(switches, built, fired)
    if decider is None:
        by = "as the model's code built it" if now else "frozen by the model's code"
    else:
        by = f"by {decider.origin.label}" + (f" at {when[decider.index]}, which has come" if decider.timed else "")
    out = (f"{'frozen' if now else 'trainable'} in the checkpoint, {'trainable' if now else 'frozen'} "
           f"from now on ({by})")
    pending = [s for s in switches if s.timed and s.index not in fired and s.index in when
               and state_at(switches, built, fired | {s.index})[0] != now]
    if pending:
        out += "; still to come: " + ", ".join(f"{s.origin.label} at {when[s.index]}" for s in pending)
    return out


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
