"""Everything a checkpoint holds, checked before any of it is loaded, so a bad one changes nothing.

``compiled.load_state_dict`` (and through it ``specopt.dcp.load``) calls
:func:`check_checkpoint` once its layout is known to be specopt's (E501) and
before it restores anything, and reports what it finds together with the
name, shape and spec checks (E502-E505). Each part has its code:

* E509: a parameter's optimizer state its optimizer cannot step with (a
  missing ``exp_avg``, a string where a tensor belongs), found by trying the
  installed torch on a stand-in (:mod:`specopt.runtime.state_probe`);
* E510: the schedule's position without its fingerprint or step count, or
  with plateau counters that are not numbers;
* E511: the loop's state (``training``): not a dict, counts that are not
  whole numbers, ``requires_grad`` flags that are not a dict of booleans,
  lr warmups naming a param group this optimizer does not have, a
  GradScaler state without its scale;
* E512: the gradients of an unfinished accumulation that do not fit their
  parameters' shape or dtype;
* E513: an EMA whose averaged weights are incomplete or do not fit;
* E514: a ``spec`` record that is not one (a strict load cannot check the
  checkpoint's provenance without it; a non-strict one warns).

A fired statement that this spec does not have stays E501, as before.
:func:`dcp_record_diagnostics` checks the record ``specopt.dcp`` saves beside
the tensors, before any tensor is read.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from ..diagnostics import Diagnostic
from ..report.spec_changes import saved_under_another_spec
from .training_state import STATE_FORMAT as TRAINING_FORMAT
from .training_state import check_fired
from .scheduler import STATE_FORMAT as SCHEDULE_FORMAT
from .state_probe import state_problems

INTACT = "or load an intact checkpoint, as compiled.state_dict() wrote it"
STATE_HINT = ("delete the named parameters' entries from checkpoint['state'] so that their state starts "
              f"afresh, {INTACT}")
LOOP_HINT = ("delete checkpoint['training'] to keep the optimizer state and the schedule but start the loop's "
             f"counts, events and warmups afresh, {INTACT}")
SPEC_HINT = f"load with strict=False to restore the state without checking which spec it was saved under, {INTACT}"
SCALER_KEYS = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")


def check_checkpoint(state: Mapping[str, Any], compiled, strict: bool) -> list[Diagnostic]:
    """Every problem in ``state`` past its layout, for ``compiled``; nothing is changed.

    ``state`` is a specopt checkpoint whose keys have the right types (what
    ``compiled.load_state_dict`` checks first, E501). The result holds errors,
    and for a non-strict load a warning (``severity="warning"``) for a
    malformed spec record, which such a load only reports.
    """
    out = optimizer_state_diagnostics(state["state"], compiled)
    if compiled.scheduler is not None and isinstance(state.get("scheduler"), Mapping):
        out += schedule_diagnostics(state["scheduler"])
    if compiled.driver is not None and "training" in state:
        changed = saved_under_another_spec(state, compiled.resolution.plan)
        out += training_diagnostics(state["training"], compiled, changed)
    return out + spec_record_diagnostics(state, strict)


# --- the optimizer's state -----------------------------------------------------------------------

def optimizer_state_diagnostics(entries: Mapping[str, Any], compiled) -> list[Diagnostic]:
    """E509 for saved per-parameter state its optimizer cannot step with, one per reason."""
    resolution = compiled.resolution
    canonical = {n: p.info.name for p in resolution.params for n in p.info.names}
    kinds = {p.info.name: resolution.slots[p.optimizer].info.name
             for p in resolution.params if p.optimizer is not None}
    saved = {canonical.get(n, n): s for n, s in entries.items()}
    found = state_problems(saved, compiled.optimizers or [compiled.optimizer], kinds)
    by_reason: dict[str, list[str]] = {}
    for name, why in sorted(found.items()):
        by_reason.setdefault(why, []).append(name)
    return [Diagnostic("E509", f"the saved state of {_names(names)} {why}", None, STATE_HINT)
            for why, names in by_reason.items()]


# --- the schedule --------------------------------------------------------------------------------

def schedule_diagnostics(saved: Mapping[str, Any]) -> list[Diagnostic]:
    """E510 for a schedule position of specopt's format that lacks what resuming the schedule reads.

    A scheduler's state in another format (torch's, or specopt's before the
    schedule language) holds only a position, which the layout check covers.
    """
    if saved.get("format") != SCHEDULE_FORMAT:
        return []
    problems = []
    if not isinstance(saved.get("fingerprint"), str):
        problems.append("has no 'fingerprint' (which schedule it was saved under)")
    if not _is_count(saved.get("_step_count")):
        problems.append("has no '_step_count' (how often the scheduler was stepped)")
    plateau = saved.get("plateau", {})
    if not isinstance(plateau, Mapping) or not all(
            isinstance(h, str) and (c is None or _valid_plateau(c)) for h, c in plateau.items()):
        problems.append("has 'plateau' counters that are not a dict of numbers by hyperparameter")
    return [Diagnostic("E510", f"the checkpoint's schedule position {p}", None,
                       f"delete checkpoint['scheduler'] to start the schedule afresh, {INTACT}")
            for p in problems]


def _valid_plateau(counters: Any) -> bool:
    if not isinstance(counters, Mapping):
        return False
    if not counters:
        return True  # no counters: the plateau starts afresh
    return _is_real(counters.get("best")) and all(
        _is_count(counters.get(k)) for k in ("bad", "cooldown_left", "reductions"))


# --- the loop's state ----------------------------------------------------------------------------

def training_diagnostics(saved: Any, compiled, changed: bool = False) -> list[Diagnostic]:
    """E511-E513 (and E501 for fired statements this spec lacks) for the loop's saved state.

    ``changed``: the checkpoint was saved under another spec, whose statements this one's moments replace
    (:mod:`specopt.runtime.changed_spec_resume`), so its fired statements are not this spec's to check.
    """
    if not isinstance(saved, Mapping) or saved.get("format") != TRAINING_FORMAT:
        what = f"format {saved.get('format')!r}" if isinstance(saved, Mapping) else _what(saved)
        return [Diagnostic("E511", f"the checkpoint's 'training' entry is not a specopt training state ({what}, "
                           f"expected a dict of format {TRAINING_FORMAT!r})", None, LOOP_HINT)]
    driver = compiled.driver
    problems = _count_problems(saved) + _flag_problems(saved) + _ramp_problems(saved, driver, changed)
    problems += _scaler_problems(saved, driver)
    out = [Diagnostic("E511", f"the checkpoint's training state {p}", None, LOOP_HINT) for p in problems]
    if _valid_fired(saved.get("fired")):
        out += [] if changed else _fired_diagnostics(saved["fired"], compiled.resolution)
    else:
        out.append(Diagnostic("E511", "the checkpoint's training state has 'fired' that is not a list of "
                              "[statement index, kind] pairs", None, LOOP_HINT))
    trained = {n: p for g in driver.optimizer.param_groups for n, p in zip(g["param_names"], g["params"])}
    out += grad_diagnostics(saved.get("grads", {}), trained)
    if driver.ema is not None and saved.get("ema") is not None:
        out += ema_diagnostics(saved["ema"], driver.ema)
    return out


def _count_problems(saved: Mapping[str, Any]) -> list[str]:
    return [f"has {key} {saved.get(key)!r}, not a whole number of at least 0"
            for key in ("steps", "epochs", "micro") if not _is_count(saved.get(key))]


def _flag_problems(saved: Mapping[str, Any]) -> list[str]:
    flags = saved.get("requires_grad")
    if isinstance(flags, Mapping) and all(isinstance(n, str) and isinstance(f, bool) for n, f in flags.items()):
        return []
    return [f"has 'requires_grad' as {_what(flags)}, not a dict of parameter names to True or False"]


def _ramp_problems(saved: Mapping[str, Any], driver, changed: bool) -> list[str]:
    """lr warmups in progress: each names a param group of this optimizer and a start and length that fit.

    Under a changed spec a warmup is found by its parameters' names, not its group's position, so any
    position is fine there (:mod:`specopt.runtime.changed_spec_resume`).
    """
    ramps = saved.get("ramps")
    if not isinstance(ramps, Mapping):
        return [f"has 'ramps' as {_what(ramps)}, not a dict of lr warmups by param group"]
    count = math.inf if changed else len(driver.optimizer.param_groups)
    steps = saved.get("steps")
    found = (_ramp_problem(group, ramp, count, steps) for group, ramp in ramps.items())
    return [problem for problem in found if problem is not None]


def _ramp_problem(group: Any, ramp: Any, count: int, steps: Any) -> str | None:
    digits = isinstance(group, str) and group.isascii() and group.isdigit() and len(group) < 10
    index = int(group) if _is_count(group) or digits else None
    if index is None or index >= count:
        return (f"has an lr warmup for param group {group!r}, but this optimizer has {count} "
                f"group{'s' if count != 1 else ''} (0 to {count - 1})")
    length = ramp.get("length") if isinstance(ramp, Mapping) else None
    if not (isinstance(ramp, Mapping) and _is_count(ramp.get("start")) and _is_real(length)
            and 0 < float(length) < math.inf):
        return (f"has an lr warmup for param group {index} without a whole 'start' and a positive, finite "
                f"'length': {_short(ramp)}")
    if _is_count(steps) and ramp["start"] > steps:
        return (f"has an lr warmup for param group {index} that starts at step {ramp['start']}, after the "
                f"checkpoint's step {steps}")
    return None


def _scaler_problems(saved: Mapping[str, Any], driver) -> list[str]:
    scaler, state = driver.scaler, saved.get("scaler")
    if scaler is None or state is None or not scaler.is_enabled():
        return []
    if isinstance(state, Mapping) and all(_is_real(state.get(k)) for k in SCALER_KEYS[:3]) and all(
            _is_count(state.get(k)) for k in SCALER_KEYS[3:]):
        return []
    return [f"has a GradScaler state that is not its {', '.join(SCALER_KEYS[:-1])} and {SCALER_KEYS[-1]} "
            f"(numbers): {_short(state)}"]


def _valid_fired(fired: Any) -> bool:
    return isinstance(fired, (list, tuple)) and all(
        isinstance(f, (list, tuple)) and len(f) == 2 and _is_count(f[0]) and isinstance(f[1], str) for f in fired)


def _fired_diagnostics(fired: list, resolution) -> list[Diagnostic]:
    """E501 when the checkpoint says a statement fired that this spec does not have (the loader's own check)."""
    try:
        check_fired(fired, resolution)
    except ValueError as exc:
        return [Diagnostic("E501", f"the checkpoint's training state does not fit this spec: {exc}", None,
                           "resume with the spec the checkpoint was saved with")]
    return []


# --- gradients and the EMA -----------------------------------------------------------------------

def grad_diagnostics(grads: Any, trained: Mapping[str, torch.Tensor]) -> list[Diagnostic]:
    """E512 for saved gradients of an unfinished accumulation that are not tensors fitting their parameters."""
    hint = ("delete checkpoint['training']['grads'] to drop the unfinished accumulation (its micro-batches are "
            f"lost), {INTACT}")
    if not isinstance(grads, Mapping):
        return [Diagnostic("E512", f"the checkpoint's accumulated gradients are {_what(grads)}, "
                           "not a dict of tensors by parameter name", None, hint)]
    out = []
    for name, grad in grads.items():
        param = trained.get(name)
        if param is None:
            continue  # not trained here: the loader leaves it
        if not isinstance(grad, torch.Tensor):
            problem = f"is {_what(grad)}, not a tensor"
        elif grad.shape != param.shape or grad.dtype != param.dtype:
            problem = (f"has shape {list(grad.shape)} ({_dtype(grad.dtype)}), but the parameter has shape "
                       f"{list(param.shape)} ({_dtype(param.dtype)})")
        else:
            continue
        out.append(Diagnostic("E512", f"the checkpoint's accumulated gradient of '{name}' {problem}", None, hint))
    return out


def ema_diagnostics(saved: Any, ema) -> list[Diagnostic]:
    """E513 when the saved EMA is not complete averaged weights of this model's shapes and a count of updates."""
    hint = f"delete checkpoint['training']['ema'] to start the average afresh, {INTACT}"
    if not (isinstance(saved, Mapping) and isinstance(saved.get("averaged"), Mapping)
            and _is_count(saved.get("updates"))):
        found = sorted(map(str, saved)) if isinstance(saved, Mapping) else _what(saved)
        return [Diagnostic("E513", f"the checkpoint's EMA is not its averaged weights and count of updates "
                           f"('averaged' and 'updates'): it holds {found}", None, hint)]
    expected, averaged = ema.averaged.state_dict(), saved["averaged"]
    problems = []
    missing = [k for k in expected if k not in averaged]
    unexpected = [k for k in averaged if k not in expected]
    if missing:
        problems.append(f"lacks {_names(missing)}")
    if unexpected:
        problems.append(f"holds weights this model does not have: {_names(unexpected)}")
    for key in (k for k in expected if k in averaged):
        value, want = averaged[key], expected[key]
        if not isinstance(value, torch.Tensor) or value.shape != want.shape or value.dtype != want.dtype:
            found = (f"shape {list(value.shape)} ({_dtype(value.dtype)})" if isinstance(value, torch.Tensor)
                     else _what(value))
            problems.append(f"has {found} for '{key}', which has shape {list(want.shape)} ({_dtype(want.dtype)})")
    return [Diagnostic("E513", f"the checkpoint's EMA {p}", None, hint) for p in problems]


# --- the spec record -----------------------------------------------------------------------------

def spec_record_diagnostics(state: Mapping[str, Any], strict: bool) -> list[Diagnostic]:
    """E514 for a ``spec`` record without its plan's hash: an error for a strict load, else a warning.

    A checkpoint without the key (saved before specopt recorded its spec) is not compared.
    """
    if "spec" not in state:
        return []
    record = state["spec"]
    if isinstance(record, Mapping) and isinstance(record.get("hash"), str):
        return []
    what = _what(record)
    if isinstance(record, Mapping):
        what = f"a dict without a text 'hash' (it holds {', '.join(map(str, record)) or 'nothing'})"
    message = (f"the checkpoint's 'spec' record is {what}, so which spec it was saved under cannot be "
               "checked")
    return [Diagnostic("E514", message, None, SPEC_HINT, "error" if strict else "warning")]


# --- specopt.dcp's record ------------------------------------------------------------------------

def dcp_record_diagnostics(record: Any) -> list[Diagnostic]:
    """E501 unless the record ``specopt.dcp`` saves is a dict with a layout of each parameter's state."""
    hint = "save the checkpoint with specopt.dcp.save, and load it as it was saved"
    if not isinstance(record, Mapping):
        return [Diagnostic("E501", f"malformed distributed checkpoint: its specopt record is "
                           f"{_what(record)}, not a dict", None, hint)]
    layout, params = record.get("layout"), record.get("params", {})
    out = []
    if not isinstance(layout, Mapping) or not all(
            isinstance(n, str) and isinstance(e, Mapping) and all(isinstance(k, str) and _valid_entry(v)
                                                                  for k, v in e.items())
            for n, e in layout.items()):
        out.append("'layout' must map parameter names to each state value's dtype and shape, or its value")
    if not isinstance(params, Mapping) or not all(
            isinstance(r, Mapping) and isinstance(r.get("shape"), (list, tuple)) and isinstance(r.get("dtype"), str)
            for r in params.values()):
        out.append("'params' must map parameter names to their shape and dtype")
    return [Diagnostic("E501", f"malformed distributed checkpoint: {p}", None, hint) for p in out]


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, Mapping):
        return False
    if "value" in entry:
        return True
    shape, dtype = entry.get("shape"), entry.get("dtype")
    return (isinstance(entry.get("like_param"), bool) and isinstance(shape, (list, tuple))
            and all(_is_count(d) for d in shape) and isinstance(dtype, str)
            and isinstance(getattr(torch, dtype, None), torch.dtype))


# --- helpers -------------------------------------------------------------------------------------

def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_real(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.dtype.is_complex and value.dtype != torch.bool
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _what(value: Any) -> str:
    """``None``, or the type of ``value`` with its article: ``a str``, ``an int``."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _names(names: list[str], limit: int = 8) -> str:
    quoted = [f"'{n}'" for n in names]
    shown = ", ".join(quoted[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
