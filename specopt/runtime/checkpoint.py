"""Checkpoints of a compiled spec: optimizer, schedule and loop state keyed by parameter name.

:func:`save` writes what ``compiled.state_dict()`` returns; :func:`load`
checks all of a checkpoint first (its layout, the optimizer kinds, names,
shapes and dtypes here; everything else in :mod:`specopt.runtime.checkpoint_checks`)
and only then restores it, so an error leaves the run as it was. What changed
since the spec a checkpoint was saved under is worked out from the plans as
data (:mod:`specopt.report.spec_changes`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from .checkpoint_checks import check_checkpoint
from ..diagnostics import Diagnostic, Source, SpecError
from ..report.spec_changes import SpecChange, saved_under_another_spec, spec_change, spec_record
from ..resolve.resolution import Resolution
from .training_state import load_training_state, training_state
from .scheduler import STATE_FORMAT as SCHEDULE_FORMAT
from ..resolve.wrappers import upgrade_names

STATE_FORMAT = "specopt.optimizer/1"


def save(compiled) -> dict[str, Any]:
    """Optimizer (and scheduler) state keyed by parameter name, not by position.

    The checkpoint also records which optimizer made the state and each
    parameter's shape and dtype, which :meth:`load_state_dict` checks.
    """
    raw = compiled.optimizer.state_dict()
    trained = _trained(compiled.optimizer)
    names = list(trained)
    out = {"format": STATE_FORMAT, "optimizer": compiled.resolution.optimizer.name,
           "optimizer_of": _kinds(compiled), "param_names": names,
           "params": {n: {"shape": list(p.shape), "dtype": _dtype_name(p.dtype)} for n, p in trained.items()},
           "state": {names[i]: s for i, s in raw["state"].items()}}
    if compiled.scheduler is not None:
        out["scheduler"] = compiled.scheduler.state_dict()
    if compiled.driver is not None:
        out["training"] = training_state(compiled.driver, compiled.resolution)
    out["spec"] = spec_record(compiled.resolution.plan, compiled.source)
    return out

def load(compiled, state: dict[str, Any], strict: bool = True) -> "LoadResult":
    """Restore per-parameter state by name; hyperparameters stay as this spec sets them.

    Raises :class:`CheckpointError` (a ``SpecError``) when ``state`` is not a
    specopt checkpoint or is malformed (E501), when it holds another
    optimizer's state (E504), or when a parameter's shape or dtype differs
    from the checkpoint's (E503). With ``strict``, a saved name that this
    optimizer does not train, or a trained parameter without saved state,
    is an error too (E502); without it, those are skipped, listed in the
    returned :class:`LoadResult` and reported with a ``CheckpointWarning``.
    A checkpoint saved under another spec (its recorded plan hashes
    differently) is reported with what changed for which parameters, as
    ``specopt diff`` says it: an error with ``strict`` (E505), else a warning.
    Loaded under such a spec, the loop's position is restored, and from it
    this spec's moments and trainability apply (a moment in the past at
    once, one in the future when it comes); the warning says what that
    changed about trainability. Checkpoints saved before specopt recorded
    the optimizer are not checked for its kind. Everything else the
    checkpoint holds is checked before anything is restored
    (:mod:`specopt.runtime.checkpoint_checks`, E509-E514), so on any error the
    model, optimizer, scheduler, EMA and loop are unchanged.
    """
    _check_layout(state, compiled.source)
    canonical = {n: p.info.name for p in compiled.resolution.params for n in p.info.names}
    _check_kind(compiled, state, canonical)
    trained = _trained(compiled.optimizer)
    state = upgrade_names(state, canonical)
    result = _coverage(state, trained, canonical)
    saved = {canonical.get(n, n): s for n, s in state["state"].items() if canonical.get(n, n) in trained}
    records = {canonical.get(n, n): r for n, r in state.get("params", {}).items()}
    problems = _shape_diagnostics(saved, records, trained)
    if strict and not result.complete:
        problems = _name_diagnostics(result) + problems
    result.spec_change = spec_change(state, compiled)
    if strict and result.spec_change is not None:
        problems = [result.spec_change.diagnostic()] + problems
    checked = check_checkpoint(state, compiled, strict)  # everything else, before anything is restored
    problems += [d for d in checked if d.severity == "error"]
    if problems:
        raise CheckpointError(problems, compiled.source)
    position = {n: i for i, n in enumerate(trained)}
    current = compiled.optimizer.state_dict()
    compiled.optimizer.load_state_dict({"state": {position[n]: s for n, s in saved.items()},
                                    "param_groups": current["param_groups"]})
    if compiled.scheduler is not None and "scheduler" in state:
        _resume_schedule(compiled, state["scheduler"])
        result.schedule_restored = True
    notes: list[str] = []
    if compiled.driver is not None and "training" in state:
        changed = saved_under_another_spec(state, compiled.resolution.plan)
        result.trainability, notes = _resume_training(compiled, state["training"], changed)
    if not result.complete:
        warnings.warn(result.describe(), CheckpointWarning, stacklevel=2)
    if result.spec_change is not None and not strict:
        warnings.warn("\n".join([result.spec_change.describe(), *notes]), CheckpointWarning, stacklevel=2)
    for note in checked:  # what a non-strict load only reports
        warnings.warn(note.message, CheckpointWarning, stacklevel=2)
    return result

def _resume_training(compiled, saved: dict[str, Any], changed: bool) -> tuple[dict[str, bool], list[str]]:
    """Restore the loop's position (accumulation, fired events, ramps, scaler, EMA); E501 when it cannot fit.

    Under a changed spec this spec's moments and trainability apply from that position
    (:func:`specopt.runtime.training_state.load_training_state`); returns what that changed about trainability.
    """
    try:
        return load_training_state(compiled.driver, saved, compiled.resolution, changed)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError([Diagnostic("E501", f"the checkpoint's training state does not fit this spec: "
                                          f"{exc}", None, "resume with the spec the checkpoint was saved "
                                          "with")], compiled.source) from None

def _check_kinds(compiled, saved: Mapping, canonical: Mapping[str, str]) -> None:
    ours = _kinds(compiled)
    changed = {}
    for name, kind in saved.items():
        mine = ours.get(canonical.get(name, name))
        if mine is not None and kind != mine:
            changed[canonical.get(name, name)] = (kind, mine)
    if changed:
        by_pair: dict[tuple[str, str], dict] = {}
        for name, pair in changed.items():
            by_pair.setdefault(pair, {})[name] = pair
        raise CheckpointError([_kind_diagnostic(found, compiled.resolution) for found in by_pair.values()],
                              compiled.source)

def _kinds(compiled) -> dict[str, str]:
    """Each trained parameter's optimizer, by name (several optimizers may train one model)."""
    slots = compiled.resolution.slots
    return {p.info.name: slots[p.optimizer].info.name for p in compiled.resolution.params if p.optimizer is not None}

def _check_kind(compiled, state: dict[str, Any], canonical: Mapping[str, str]) -> None:
    """E504 when the checkpoint holds another optimizer's state than the one this spec gives a parameter."""
    kinds = state.get("optimizer_of")
    several = len(compiled.resolution.used_slots) > 1 or (isinstance(kinds, Mapping) and len(set(kinds.values())) > 1)
    if several:
        return _check_kinds(compiled, kinds if isinstance(kinds, Mapping) else {}, canonical)
    saved, ours = state.get("optimizer"), compiled.resolution.optimizer.name
    if saved is None or saved == ours:
        return
    stmt = compiled.resolution.plan.optimizer
    raise CheckpointError([Diagnostic(
        "E504", f"the checkpoint holds {saved} state, but this spec builds {ours}",
        stmt.span if stmt else None,
        f"load it with the spec it was saved with (optimizer {saved}), or start {ours} afresh "
        "without loading the checkpoint")], compiled.source)

def _resume_schedule(compiled, saved: dict[str, Any]) -> None:
    """Continue the schedule where the checkpoint left it, under this spec's schedules.

    Each group's values are recomputed from this spec's base values at the
    saved position, so a resumed run with the same spec continues exactly,
    and a changed schedule applies from now on (with a warning). A
    checkpoint from before the schedule language holds only a position.
    """
    if saved.get("format") != SCHEDULE_FORMAT:
        saved = {"format": SCHEDULE_FORMAT, "last_epoch": saved["last_epoch"],
                 "_step_count": saved.get("_step_count", saved["last_epoch"] + 1),
                 "fingerprint": compiled.scheduler.state_dict()["fingerprint"], "plateau": {}}
    compiled.scheduler.load_state_dict(saved)


def _kind_diagnostic(changed: dict[str, tuple[str, str]], resolution: Resolution) -> Diagnostic:
    names = list(changed)
    saved, ours = changed[names[0]]
    slot = next((s for s in resolution.slots if s.info.name == ours), None)
    span = slot.statement.span if slot is not None and slot.statement is not None else None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return Diagnostic("E504", f"the checkpoint holds {saved} state for {shown}, but this spec gives "
                      f"{'them' if len(names) > 1 else 'it'} to {ours}", span,
                      f"load it with the spec it was saved with, or start {ours} afresh for them: delete their "
                      "entries from the checkpoint's 'state'")


# --- checkpoints ----------------------------------------------------------------------------------

class CheckpointError(SpecError, ValueError):
    """A checkpoint that cannot be loaded: E501-E504. A ``ValueError`` too, as before these codes."""


class CheckpointWarning(UserWarning):
    """``load_state_dict(strict=False)`` skipped parameters: some state was not restored."""


@dataclass
class LoadResult:
    """What :meth:`Compiled.load_state_dict` restored; each list is sorted by name.

    ``restored``: trained parameters whose state now is the checkpoint's;
    ``not_restored``: trained parameters the checkpoint has no state for (they
    start afresh); ``unexpected``: saved names this optimizer does not train.
    ``spec_change``: when the checkpoint was saved under another spec, what
    changed (:class:`specopt.report.spec_changes.SpecChange`), else ``None``. Then this
    spec's moments and trainability apply from the saved position on:
    ``trainability`` maps each parameter whose ``requires_grad`` therefore
    differs from the checkpoint's to its flag now.
    """

    restored: list[str]
    not_restored: list[str]
    unexpected: list[str]
    schedule_restored: bool = False
    spec_change: "SpecChange | None" = None
    trainability: dict[str, bool] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every trained parameter was restored and every saved name used."""
        return not self.not_restored and not self.unexpected

    def describe(self) -> str:
        """One paragraph for a warning: what was restored and what was skipped."""
        total = len(self.restored) + len(self.not_restored)
        parts = [f"restored optimizer state for {len(self.restored)} of {total} parameters"]
        if self.not_restored:
            parts.append(f"no saved state for {_names(self.not_restored)}")
        if self.unexpected:
            parts.append(f"skipped saved state for parameters this optimizer does not train: "
                         f"{_names(self.unexpected)}")
        return "; ".join(parts)


def _trained(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Each trained tensor by its name, in the optimizer's order (the positions torch keys state by)."""
    return {n: p for g in optimizer.param_groups for n, p in zip(g["param_names"], g["params"])}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_layout(state: Any, source: Source | None) -> None:
    """E501 unless ``state`` is a well-formed specopt checkpoint, so loading never meets a bad type."""
    if not isinstance(state, Mapping):
        problems = [(f"a specopt optimizer checkpoint is a dict, not {type(state).__name__}", None)]
    elif state.get("format") != STATE_FORMAT:
        problems = [_not_specopt(state)]
    else:
        problems = [(message, None) for message in _layout_problems(state)]
    if problems:
        hint = "load what compiled.state_dict() returned (torch.save it, then torch.load it)"
        raise CheckpointError([Diagnostic("E501", message, None, own_hint or hint)
                               for message, own_hint in problems], source)


def _not_specopt(state: Mapping) -> tuple[str, str | None]:
    if "param_groups" in state and "state" in state:
        return ("not a specopt optimizer checkpoint: this is torch's optimizer.state_dict(), which keys "
                "state by position", "save compiled.state_dict() instead, which keys it by parameter name")
    return f"not a specopt optimizer checkpoint (format {state.get('format')!r}, expected {STATE_FORMAT!r})", None


def _layout_problems(state: Mapping) -> list[str]:
    """What is missing or of the wrong type in a checkpoint that claims specopt's format."""
    problems = []
    names = state.get("param_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        problems.append("malformed checkpoint: 'param_names' must be a list of parameter names")
    entries = state.get("state")
    if not isinstance(entries, Mapping) or not all(
            isinstance(n, str) and isinstance(s, Mapping) and all(isinstance(k, str) for k in s)
            for n, s in entries.items()):
        problems.append("malformed checkpoint: 'state' must map parameter names to dicts of state values")
    if not isinstance(state.get("optimizer", ""), str):
        problems.append("malformed checkpoint: 'optimizer' must be the optimizer's name")
    kinds = state.get("optimizer_of", {})
    if not isinstance(kinds, Mapping) or not all(isinstance(n, str) and isinstance(k, str) for n, k in kinds.items()):
        problems.append("malformed checkpoint: 'optimizer_of' must map parameter names to optimizer names")
    if not _valid_records(state.get("params", {})):
        problems.append("malformed checkpoint: 'params' must map parameter names to their shape and dtype")
    if "scheduler" in state and not _valid_schedule(state["scheduler"]):
        problems.append("malformed checkpoint: 'scheduler' must be a scheduler's state_dict() with an "
                        "integer 'last_epoch'")
    return problems


def _valid_records(records: Any) -> bool:
    return isinstance(records, Mapping) and all(
        isinstance(n, str) and isinstance(r, Mapping) and isinstance(r.get("dtype"), str)
        and isinstance(r.get("shape"), (list, tuple)) and all(_is_int(d) for d in r["shape"])
        for n, r in records.items())


def _valid_schedule(saved: Any) -> bool:
    return (isinstance(saved, Mapping) and _is_int(saved.get("last_epoch"))
            and _is_int(saved.get("_step_count", 0)))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name_diagnostics(result: LoadResult) -> list[Diagnostic]:
    """E502 for a strict load whose names do not match this optimizer's."""
    hint = "pass strict=False to restore the rest"
    out = []
    if result.unexpected:
        out.append(Diagnostic("E502", "saved state for parameters this optimizer does not train: "
                              f"{_names(result.unexpected)}", None, hint))
    if result.not_restored:
        out.append(Diagnostic("E502", f"no saved state for: {_names(result.not_restored)}", None, hint))
    return out


def _coverage(state: Mapping[str, Any], trained: Mapping[str, torch.Tensor],
              canonical: Mapping[str, str]) -> LoadResult:
    """Which trained parameters the checkpoint covers (by canonical name), and which saved names are unused."""
    covered = {canonical.get(n, n) for n in [*state["param_names"], *state["state"]]}
    return LoadResult(restored=sorted(n for n in trained if n in covered),
                      not_restored=sorted(n for n in trained if n not in covered),
                      unexpected=sorted(n for n in covered if n not in trained))


def _shape_diagnostics(saved: Mapping[str, Mapping[str, Any]], records: Mapping[str, Mapping[str, Any]],
                       trained: Mapping[str, torch.Tensor]) -> list[Diagnostic]:
    """E503 for each parameter whose recorded shape or dtype, or a saved state tensor, does not fit it."""
    hint = ("the model changed since the checkpoint was saved: delete these parameters' entries from "
            "checkpoint['state'] so that they start afresh, or do not load the checkpoint")
    total = sum(p.numel() for p in trained.values())
    out = []
    for name, entry in saved.items():
        param = trained[name]
        problems = [_record_problem(name, records.get(name), param)]
        problems += [_tensor_problem(name, key, tensor, param, total) for key, tensor in _state_tensors(entry)]
        first = next((p for p in problems if p is not None), None)  # one diagnostic per parameter
        if first is not None:
            out.append(Diagnostic("E503", first, None, hint))
    return out


def _record_problem(name: str, record: Mapping[str, Any] | None, param: torch.Tensor) -> str | None:
    """Whether the shape and dtype the checkpoint recorded for a parameter differ from the parameter's."""
    shape, dtype = list(param.shape), _dtype_name(param.dtype)
    if record is None or (list(record["shape"]) == shape and record["dtype"] == dtype):
        return None
    return (f"'{name}' had shape {list(record['shape'])} ({record['dtype']}) in the checkpoint, "
            f"but has shape {shape} ({dtype}) here")


def _state_tensors(saved: Mapping[str, Any]):
    """Each tensor of one parameter's state with its key, including those in lists (as L-BFGS keeps)."""
    for key, value in saved.items():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, torch.Tensor):
                yield key, item


def _tensor_problem(name: str, key: str, tensor: torch.Tensor, param: torch.Tensor, total: int) -> str | None:
    """Whether one saved state tensor fits its parameter; ``total`` counts every trained element.

    A scalar (such as ``step``) always fits. Any other tensor has the
    parameter's dtype (where floating) and its shape, or one of two layouts
    torch's builtins keep: the shape with some dimensions 1 (Adafactor's
    factored statistics) or one flat vector over every trained element (L-BFGS).
    """
    if tensor.dim() == 0:
        return None
    if (tensor.is_floating_point() or tensor.is_complex()) and tensor.dtype != param.dtype:
        return (f"saved {key} of '{name}' is {_dtype_name(tensor.dtype)}, "
                f"but the parameter is {_dtype_name(param.dtype)}")
    shape, want = list(tensor.shape), list(param.shape)
    factored = len(shape) == len(want) and all(s in (w, 1) for s, w in zip(shape, want))
    flat = len(shape) == 1 and shape[0] == total
    if factored or flat:
        return None
    return f"saved {key} of '{name}' has shape {shape}, but the parameter has shape {want}"
