"""Reports of a resolution: the text the CLI prints and the JSON assignment."""

from __future__ import annotations

import math
from typing import Any

from ..diagnostics import Source
from .preview import Preview, preview_programs
from .layers_report import layer_lines, layers_json
from ..resolve.resolution import Origin, ParamAssignment, Resolution, Setting
from ..plan.timing import Timing, plan_timing, programs
from ..plan.clauses import moment_text
from ..resolve.timeline import Change, changes, switches_of

NAMES_SHOWN = 8


def format_value(value: Any) -> str:
    """Format a hyperparameter value the way a spec would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def text_report(resolution: Resolution, clip: str | None, schedule: str | None,
                implementation: str | list[str] | None = None, extra: list[str] | None = None) -> str:
    """The human-readable compile report: optimizers, param groups, frozen parameters, clip, schedule.

    ``implementation`` says how each optimizer runs (one line per optimizer
    that trains something). A parameter whose state changes at a point of the
    run says when; ``extra`` lines (see :mod:`specopt.report.training_report`) end the report.
    """
    several = len(resolution.used_slots) > 1
    lines = _optimizer_lines(resolution, implementation)
    lines.append(f"param groups: {len(resolution.groups)}")
    by_name = {p.info.name: p for p in resolution.params}
    for i, group in enumerate(resolution.groups):
        members = [by_name[n] for n in group.params]
        which = f"  ({resolution.slots[group.optimizer].info.name})" if several else ""
        lines.append(f"  [{i}] {group.name}{which}  {tensor_count(members)}")
        lines.append("      " + _settings_line(group.settings))
        lines += _names(group.params)
    lines += layer_lines(resolution)
    frozen = [p for p in resolution.params if p.frozen]
    lines += ["", f"frozen: {tensor_count(frozen)}"]
    lines += [f"      {p.info.name}  (by {p.frozen_by.label}{change_note(p, resolution)})"
              for p in frozen[:NAMES_SHOWN]]
    if len(frozen) > NAMES_SHOWN:
        lines.append(f"      ... and {len(frozen) - NAMES_SHOWN} more")
    lines += ["", f"clip       {clip or 'none'}"]
    first, *rest = (schedule or "none").split("\n")
    lines += [f"schedule   {first}"] + [f"           {line}" for line in rest]
    return "\n".join(lines + (extra or []))


def _optimizer_lines(resolution: Resolution, implementation) -> list[str]:
    """A block per optimizer that trains something (the default one when nothing is trained)."""
    slots = resolution.used_slots or resolution.slots[:1]
    described = [implementation] * len(slots) if isinstance(implementation, str) or implementation is None \
        else list(implementation)
    lines = []
    for slot, how in zip(slots, described):
        picks = f" for {_picks(slot)}" if _picks(slot) else ""
        lines += [f"optimizer  {slot.info.name} ({slot.info.target}){picks}",
                  "           " + _settings_line({k: s.value for k, s in slot.base.items()})]
        if how:
            lines.append(f"           implementation: {how}")
    return lines + [""]


def param_changes(p: ParamAssignment, resolution: Resolution) -> tuple[Change, ...]:
    """The changes of one parameter's state over the run, in the order of their moments."""
    if not any(o.kind in ("freeze", "unfreeze") for o in p.touched):
        return ()
    return changes(switches_of(p.touched, resolution.plan), p.info.requires_grad)


def change_note(p: ParamAssignment, resolution: Resolution) -> str:
    """``; trainable from epoch 3 (unfreeze@2:1)`` for a parameter whose state changes, else ``""``."""
    return "".join(f"; {c.text}" for c in param_changes(p, resolution))


def _settings_line(settings) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in settings.items())


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, in the plural unless the count is one: ``1 tensor``, ``4,466 elements``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def tensor_count(params: list[ParamAssignment]) -> str:
    """How many tensors and elements ``params`` hold: ``4 tensors, 3,488 elements``."""
    return f"{plural(len(params), 'tensor')}, {plural(sum(p.info.numel for p in params), 'element')}"


def _names(names: tuple[str, ...]) -> list[str]:
    out = [f"      {n}" for n in names[:NAMES_SHOWN]]
    if len(names) > NAMES_SHOWN:
        out.append(f"      ... and {len(names) - NAMES_SHOWN} more")
    return out


def describe_clip(resolution: Resolution) -> str | None:
    """One line saying what the clip hook does before every ``optimizer.step()``, or ``None``."""
    stmt = resolution.plan.clip
    if stmt is None:
        return None
    if stmt.norm_type is None:
        return f"value: every gradient element clamped to [-{stmt.max:g}, {stmt.max:g}] before every step"
    p = "inf" if math.isinf(stmt.norm_type) else f"{stmt.norm_type:g}"
    return f"l{p} norm: total gradient norm scaled down to at most {stmt.max:g} before every step"


def describe_schedule(resolution: Resolution, timing: Timing | None = None) -> str | None:
    """The schedules: how often to call ``scheduler.step()``, then a preview of every curve.

    The preview gives, for each scheduled hyperparameter and param group, the
    start, peak and end values and the phase boundaries (see :mod:`specopt.report.preview`).
    """
    plan = resolution.plan
    if not plan.schedules:
        return None
    timing = timing or plan_timing(plan)
    view = schedule_preview(resolution, timing)
    return f"call scheduler.step() once per {timing.unit}\n" + view.text().rstrip("\n")


def schedule_preview(resolution: Resolution, timing: Timing, until: float | None = None,
                     max_points: int = 1001) -> Preview:
    """Every schedule of the resolution's plan over its param groups, up to ``until`` (the run by default)."""
    groups = [{"name": g.name, **g.settings} for g in resolution.groups]
    return preview_programs(programs(resolution.plan, timing), groups, timing.unit,
                            until=until if until is not None else timing.run, max_points=max_points)


def schedule_summary(plan) -> str | None:
    """The spec's schedules in one line, as a spec writes them (``schedule warmup 5 epochs then ...``)."""
    return "; ".join(stmt.text for stmt in plan.schedules) or None


def assignment_json(resolution: Resolution, source: Source | None, timing: Timing | None = None) -> dict[str, Any]:
    """The resolved per-parameter assignment as JSON-ready data, with the schedules' values;
    ``changes`` lists each parameter's ``at`` moments."""
    info = resolution.optimizer
    schedule = None
    if resolution.plan.schedules:
        timing = timing or plan_timing(resolution.plan)
        schedule = schedule_preview(resolution, timing).data()
    return {
        "spec": source.name if source else None,
        "optimizer": {"name": info.name, "target": info.target,
                      "base": {k: _setting(s, source) for k, s in resolution.base.items()}},
        "optimizers": [{"name": s.info.name, "target": s.info.target, "for": _picks(s),
                        "base": {k: _setting(v, source) for k, v in s.base.items()}} for s in resolution.slots],
        "groups": [{"name": g.name, "optimizer": resolution.slots[g.optimizer].info.name,
                    "settings": jsonable(dict(g.settings)), "params": list(g.params)}
                   for g in resolution.groups],
        "params": [_param(p, source, resolution) for p in resolution.params],
        "warnings": [d.to_json(source) for d in resolution.warnings],
        "schedule": schedule,
        "layers": layers_json(resolution),
    }


def _picks(slot) -> str | None:
    """An optimizer's ``for`` selectors as written, or ``None`` for the one that takes the rest."""
    stmt = slot.statement
    if stmt is None or not stmt.selectors:
        return None
    return " ".join(" & ".join(a.text for a in t.atoms) for t in stmt.selectors)


def _param(p: ParamAssignment, source: Source | None, resolution: Resolution) -> dict[str, Any]:
    """One parameter's assignment as data (its optimizer by name, ``None`` when it is never trained)."""
    return {
        "name": p.info.name, "aliases": list(p.info.aliases), "shape": list(p.info.shape),
        "numel": p.info.numel, "frozen": p.frozen, "frozen_by": _origin(p.frozen_by, source),
        "group": p.group, "settings": {k: _setting(s, source) for k, s in p.settings.items()},
        "optimizer": None if p.optimizer is None else resolution.slots[p.optimizer].info.name,
        "changes": [{"at": moment_text(c.moment), "trainable": c.trainable, "by": _origin(c.by, source),
                     "warmup": c.warmup.text if c.warmup is not None and c.trainable else None}
                    for c in param_changes(p, resolution)],
    }


def _setting(s: Setting, source: Source | None) -> dict[str, Any]:
    return {"value": jsonable(s.value), "set_by": _origin(s.origin, source)}


def _origin(o: Origin | None, source: Source | None) -> dict[str, Any] | None:
    if o is None:
        return None
    out: dict[str, Any] = {"statement": o.index, "kind": o.kind, "label": o.label}
    if source is not None and o.span is not None:
        out["line"], out["column"] = source.line_col(o.span.start)
    if hasattr(o, "depth"):  # a depth of a layers statement (specopt.resolve.layer_depths.LayerOrigin)
        out.update(depth=o.depth, top=o.top, scale=o.scale)
    return out


def jsonable(value: Any) -> Any:
    """Plain JSON data: tuples become lists, non-finite floats strings."""
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
