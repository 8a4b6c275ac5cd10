"""Checking ``key=value`` options against an optimizer's registry entry.

Used by the plan's checks for builtin optimizers and by :mod:`specopt.plan.extensions`
for a class imported from an import path, so both report the same diagnostics.
An unknown key gets a suggestion: the closest real option, or the option a
common other spelling means (``wd`` is ``weight_decay``; Adam's momentum is the
first of its ``betas``).
"""

from __future__ import annotations

from typing import Sequence

from ..diagnostics import Diagnostic, did_you_mean
from .nodes import Option, Relative, show_value
from ..catalog import installed_torch
from ..catalog.registry import OPTIMIZERS, OptimizerInfo, check_bounds, check_kind, describe_kind, newer_torch_needed

# Other spellings users write for an option, and what the option may be called here (first match wins).
SYNONYMS = {
    "wd": ("weight_decay",), "weightdecay": ("weight_decay",), "decay": ("weight_decay",),
    "learning_rate": ("lr",), "learningrate": ("lr",), "rate": ("lr",),
    "beta1": ("betas",), "beta2": ("betas",), "beta": ("betas", "beta1"), "momentum": ("betas", "beta1"),
    "epsilon": ("eps",), "nesterov_momentum": ("nesterov",),
}


def written_name(name: str) -> str:
    """An optimizer name as a spec writes it: an import path is quoted."""
    return f'"{name}"' if ":" in name else name


def check_options(options: Sequence[Option], info: OptimizerInfo, group: bool) -> list[Diagnostic]:
    """Check ``key=value`` options against an optimizer's registry entry."""
    diags, first = _given_once(options)
    return diags + [d for opt in first for d in _check_option(opt, info, group)]


def _given_once(options: Sequence[Option]) -> tuple[list[Diagnostic], list[Option]]:
    """E203 for each key given again in one statement, and the options that come first."""
    diags, first, seen = [], [], set()
    for opt in options:
        if opt.key in seen:
            diags.append(Diagnostic("E203", f"'{opt.key}' is given twice", opt.span,
                                    "each key may appear once per statement"))
        else:
            seen.add(opt.key)
            first.append(opt)
    return diags, first


def check_group_options(options: Sequence[Option], infos: Sequence[OptimizerInfo]) -> list[Diagnostic]:
    """Check a group's options in a spec with several optimizers: each key must be an option of one of them.

    Whether the parameters the group selects belong to an optimizer with that
    option is known only against a model (``resolve`` checks it).
    """
    diags, first = _given_once(options)
    for opt in first:
        holder = next((info for info in infos if info.option(opt.key) is not None), None)
        if holder is None:
            names = list(dict.fromkeys(o.name for info in infos for o in info.options))
            which = " nor ".join(info.name for info in infos)
            diags.append(Diagnostic("E204", f"neither {which} has an option '{opt.key}'", opt.span,
                                    option_hint(opt.key, names, " and ".join(info.name for info in infos),
                                                verb="take")))
        else:
            diags += _check_option(opt, holder, True)
    return diags


def unknown_option(key: str, info: OptimizerInfo, span) -> Diagnostic:
    """E204 for a key the optimizer does not take, with the closest option or the synonym's meaning."""
    names = [o.name for o in info.options]
    return Diagnostic("E204", f"{info.name} has no option '{key}'", span, option_hint(key, names, info.name))


def option_hint(key: str, names: Sequence[str], optimizer: str, verb: str = "takes") -> str:
    """A "did you mean" for an unknown key: a close spelling, then a known synonym, then the list."""
    close = did_you_mean(key, names)
    if close:
        return close
    meant = next((m for m in SYNONYMS.get(key.lower(), ()) if m in names), None)
    if meant == "betas":
        return (f"did you mean 'betas'? {optimizer}'s momentum terms are betas=(beta1, beta2), "
                "e.g. betas=(0.9, 0.999)")
    if meant == "beta1" and key.lower() in ("momentum", "beta"):
        return f"did you mean 'beta1'? {optimizer}'s momentum is the first of its betas"
    if meant is not None:
        return f"did you mean '{meant}'?"
    return f"{optimizer} {verb}: " + ", ".join(names)


def _check_option(opt: Option, info: OptimizerInfo, group: bool) -> list[Diagnostic]:
    newer = newer_torch(opt, info)
    if newer:
        return [newer]
    spec = info.option(opt.key)
    if spec is None:
        return [unknown_option(opt.key, info, opt.span)]
    if group and not spec.per_group:
        return [Diagnostic("E205", f"'{opt.key}' applies to the whole optimizer, not to a group",
                           opt.span, "set it on the optimizer statement: optimizer "
                           f"{written_name(info.name)} {opt.key}=...")]
    value_span = opt.value_span or opt.span
    if isinstance(opt.value, Relative):
        return _check_relative(opt, spec.kind, group, value_span)
    if not check_kind(spec.kind, opt.value):
        return [Diagnostic("E206", f"'{opt.key}' takes {describe_kind(spec.kind)}, not "
                           f"{show_value(opt.value)}", value_span)]
    why = check_bounds(spec.bounds, opt.value)
    return [Diagnostic("E207", f"'{opt.key}' {why}, got {show_value(opt.value)}", value_span)] if why else []


def newer_torch(opt: Option, info: OptimizerInfo) -> Diagnostic | None:
    """E418 when a builtin's option (or this value of it) came with a newer torch than the installed one."""
    if OPTIMIZERS.get(info.name) is not info:  # an extension's options are its own
        return None
    if (since := newer_torch_needed(info.name, opt.key)) is not None:
        what, span = f"'{opt.key}'", opt.span
    elif isinstance(opt.value, str) and (since := newer_torch_needed(info.name, opt.key, opt.value)):
        what, span = f'{opt.key}="{opt.value}"', opt.value_span or opt.span
    else:
        return None
    needs = ".".join(str(n) for n in since)
    return Diagnostic("E418", f"{info.name} takes {what} from torch {needs} on; this torch is "
                      f"{installed_torch.torch_version()}", span, f"install torch>={needs}, or drop the option")


def _check_relative(opt: Option, kind: str, group: bool, value_span) -> list[Diagnostic]:
    if not group or kind != "number":
        where = ("only in group statements, for numeric keys" if not group else
                 f"only for numeric keys; '{opt.key}' takes {describe_kind(kind)}")
        return [Diagnostic("E206", f"a relative value (x{opt.value.factor:g}) is allowed {where}",
                           value_span, "relative values scale a numeric base value inside 'group', "
                           "e.g. group head.* lr=x0.1")]
    why = check_bounds(">=0", opt.value.factor)
    return [Diagnostic("E207", f"factor for '{opt.key}' {why}", value_span)] if why else []


def check_resolved(key: str, value, info: OptimizerInfo, span, written: str) -> Diagnostic | None:
    """E207 when a value computed from a relative one (``lr=x10``) breaks the option's range.

    ``written`` is how the statement wrote it, for the message.
    """
    spec = info.option(key)
    why = check_bounds(spec.bounds if spec else "", value)
    if why is None:
        return None
    return Diagnostic("E207", f"'{key}' {why}, but {written} makes it {show_value(value)}", span,
                      "relative values multiply the optimizer's base value; lower the factor or the base")
