"""Diff: what changes for each parameter between two specs resolved against the same model.

``specopt diff a.opt b.opt --model REF`` resolves each spec against its own
fresh instance of the model, without building an optimizer or changing the
model (``Spec.resolve``), and compares the two resolutions parameter by
parameter:

* frozen state;
* param group, by group name: a group is named after the statements that set
  its values (``head``, or ``group@6:35`` for an unnamed one) or ``default``.
  The line and column in a name are ignored, since they move whenever lines
  are added, removed or reformatted. A group that merely gains or loses
  members is no change for the parameters that stay in it: the parameters that
  moved are reported themselves;
* every hyperparameter whose value differs, where the parameter is trained on
  at least one side (a parameter frozen on both sides is never seen by the
  optimizer). A key that only one optimizer has is shown as absent on the
  other side.

It also reports the optimizer, clip and schedule when they change, and totals:
parameters changed, tensors and elements frozen, and param groups, before and
after. What only torch can reject when it builds the optimizer is left to
``specopt compile``. This module imports no torch; :func:`resolve_spec` does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..plan.clauses import moment_text
from .resolution_report import format_value, param_changes, plural, schedule_summary
from .training_report import describe_ema
from ..resolve.resolution import ParamAssignment, Resolution



class Spec(Protocol):
    """What a diff needs of a spec: resolving it against a model (:class:`specopt.Spec` does)."""

    def resolve(self, model) -> Resolution:
        """The spec's resolution against ``model``."""

NAMES_SHOWN = 8
ARROW = "->"
_POSITION = re.compile(r"@\d+:\d+")


class _Absent:
    """The value of a hyperparameter the other side's optimizer does not have."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


@dataclass(frozen=True)
class Side:
    """The spec-level facts of one side of a diff."""

    spec: str
    optimizer: str
    clip: str | None
    schedule: str | None
    groups: int
    frozen_tensors: int
    frozen_elements: int
    accumulate: str | None = None
    ema: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class ParamDiff:
    """How one parameter differs between the two specs."""

    name: str
    numel: int
    frozen: tuple[bool, bool]
    group: tuple[str | None, str | None]
    group_sizes: tuple[int, int]
    group_changed: bool
    settings: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    later: tuple[str, str] = ("", "")
    optimizer: tuple[str | None, str | None] = (None, None)

    @property
    def changed(self) -> bool:
        """Whether anything differs for this parameter."""
        return (self.frozen[0] != self.frozen[1] or self.group_changed or bool(self.settings)
                or self.later[0] != self.later[1] or self.optimizer[0] != self.optimizer[1])


@dataclass(frozen=True)
class SpecDiff:
    """The whole comparison: both sides' facts and every parameter's differences, in model order."""

    a: Side
    b: Side
    params: tuple[ParamDiff, ...]

    @property
    def changed(self) -> list[ParamDiff]:
        """The parameters with any difference."""
        return [p for p in self.params if p.changed]

    @property
    def empty(self) -> bool:
        """Whether the two specs train the model identically."""
        return not self.changed and _spec_lines(self) == []


def resolve_spec(spec: Spec, make_model: Callable[[], Any]) -> Resolution:
    """Resolve ``spec`` against a fresh model from ``make_model``, building nothing."""
    return spec.resolve(make_model())


def diff_resolutions(a: Resolution, b: Resolution, a_name: str, b_name: str) -> SpecDiff:
    """Compare two resolutions of the same model's parameters."""
    if [(p.info.name, p.info.shape) for p in a.params] != [(p.info.name, p.info.shape) for p in b.params]:
        raise ValueError("the two models have different parameters; both specs must be compiled "
                         "against the same model")
    params = tuple(_param_diff(pa, pb, a, b) for pa, pb in zip(a.params, b.params))
    return SpecDiff(_side(a, a_name), _side(b, b_name), params)


def _side(res: Resolution, name: str) -> Side:
    clip = res.plan.clip
    frozen = [p for p in res.params if p.frozen]
    plan = res.plan
    return Side(name, _optimizers(res), f"{clip.mode} {format_value(clip.max)}" if clip else None,
                schedule_summary(res.plan), len(res.groups), len(frozen), sum(p.info.numel for p in frozen),
                str(plan.accumulate) if plan.accumulate > 1 else None,
                describe_ema(plan.ema) if plan.ema else None, plan.device.device if plan.device else None)


def _optimizers(res: Resolution) -> str:
    """The optimizers a spec builds: ``adamw``, or ``adamw + muon for ndim==2 & !embed*``."""
    parts = []
    for slot in res.slots:
        stmt = slot.statement
        picks = " ".join(" & ".join(a.text for a in t.atoms) for t in stmt.selectors) if stmt is not None else ""
        parts.append(f"{slot.info.name} for {picks}" if picks else slot.info.name)
    return " + ".join(parts)


def _param_diff(pa: ParamAssignment, pb: ParamAssignment, a: Resolution, b: Resolution) -> ParamDiff:
    names = (_group_name(pa, a), _group_name(pb, b))
    group_changed = _without_positions(names[0]) != _without_positions(names[1])
    settings = {} if pa.frozen and pb.frozen else _settings_diff(pa, pb)
    return ParamDiff(pa.info.name, pa.info.numel, (pa.frozen, pb.frozen), names,
                     (_group_size(pa, a), _group_size(pb, b)), group_changed, settings,
                     (_later(pa, a), _later(pb, b)), (_optimizer(pa, a), _optimizer(pb, b)))


def _optimizer(p: ParamAssignment, res: Resolution) -> str | None:
    return None if p.optimizer is None else res.slots[p.optimizer].info.name


def _later(p: ParamAssignment, res: Resolution) -> str:
    """A parameter's changes over the run, without the statements' positions: ``trainable from epoch 3``."""
    return "; ".join(f"{'trainable' if c.trainable else 'frozen'} from {moment_text(c.moment)}"
                     + (f" (lr warmup {c.warmup.text})" if c.warmup is not None and c.trainable else "")
                     for c in param_changes(p, res))


def _without_positions(name: str | None) -> str | None:
    """``group@6:35+head`` → ``group@+head``: the statements, not where they stand."""
    return None if name is None else _POSITION.sub("@", name)


def _group_size(p: ParamAssignment, res: Resolution) -> int:
    return 0 if p.group is None else len(res.groups[p.group].params)


def _group_name(p: ParamAssignment, res: Resolution) -> str | None:
    return None if p.group is None else res.groups[p.group].name


def _settings_diff(pa: ParamAssignment, pb: ParamAssignment) -> dict[str, tuple[Any, Any]]:
    keys = list(pa.settings) + [k for k in pb.settings if k not in pa.settings]
    out = {}
    for key in keys:
        old = pa.settings[key].value if key in pa.settings else ABSENT
        new = pb.settings[key].value if key in pb.settings else ABSENT
        if not _same(old, new):
            out[key] = (old, new)
    return out


def _same(old: Any, new: Any) -> bool:
    """``1`` and ``1.0`` are the same hyperparameter value; ``true`` and ``1`` are not."""
    if old is ABSENT or new is ABSENT:
        return old is new
    return isinstance(old, bool) == isinstance(new, bool) and old == new


# --- rendering -------------------------------------------------------------------------------

def show(value: Any) -> str:
    """A value as a spec would write it, floats exactly (so that near-equal values read differently)."""
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(show(v) for v in value) + ")"
    return format_value(value)


def render_text(diff: SpecDiff, model: str) -> str:
    """The review-friendly text report: spec-level changes, parameter changes, totals."""
    counts = f"{plural(len(diff.params), 'tensor')}, {plural(sum(p.numel for p in diff.params), 'element')}"
    lines = [f"{diff.a.spec} {ARROW} {diff.b.spec} against {model}: {counts}", ""]
    spec_lines = _spec_lines(diff)
    lines += spec_lines + ([""] if spec_lines else [])
    blocks = _blocks(diff.changed)
    if not blocks:
        lines += ["no parameter changes", ""]
    for names, rows in blocks:
        lines += _names(names) + [f"      {row}" for row in rows] + [""]
    lines += _totals(diff)
    return "\n".join(lines)


def _spec_lines(diff: SpecDiff) -> list[str]:
    out = []
    for label, old, new in (("optimizer", diff.a.optimizer, diff.b.optimizer),
                            ("clip", diff.a.clip, diff.b.clip),
                            ("schedule", diff.a.schedule, diff.b.schedule),
                            ("accumulate", diff.a.accumulate, diff.b.accumulate),
                            ("ema", diff.a.ema, diff.b.ema), ("device", diff.a.device, diff.b.device)):
        if old != new:
            out.append(f"{label:<10} {old or 'none'} {ARROW} {new or 'none'}")
    return out


def _blocks(changed: list[ParamDiff]) -> list[tuple[list[str], list[str]]]:
    """Parameters with identical changes share one block, in model order of their first member."""
    blocks: dict[tuple[str, ...], list[str]] = {}
    for p in changed:
        blocks.setdefault(tuple(_rows(p)), []).append(p.name)
    return [(names, list(rows)) for rows, names in blocks.items()]


def _rows(p: ParamDiff) -> list[str]:
    rows = []
    if p.frozen[0] != p.frozen[1]:
        rows.append(f"{'frozen':<14}{_yes(p.frozen[0])} {ARROW} {_yes(p.frozen[1])}")
    if p.optimizer[0] != p.optimizer[1] and None not in p.optimizer:
        rows.append(f"{'optimizer':<14}{p.optimizer[0]} {ARROW} {p.optimizer[1]}")
    if p.group_changed:
        rows.append(f"{'group':<14}{_group(p, 0)} {ARROW} {_group(p, 1)}")
    if p.later[0] != p.later[1]:
        rows.append(f"{'over the run':<14}{p.later[0] or 'no change'} {ARROW} {p.later[1] or 'no change'}")
    rows += [f"{key:<14}{show(old)} {ARROW} {show(new)}" for key, (old, new) in p.settings.items()]
    return rows


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _group(p: ParamDiff, side: int) -> str:
    if p.group[side] is None:
        return "(frozen)"
    size = p.group_sizes[side]
    return f"{p.group[side]} ({size} tensor{'s' if size != 1 else ''})"


def _names(names: list[str]) -> list[str]:
    out = [f"  {n}" for n in names[:NAMES_SHOWN]]
    if len(names) > NAMES_SHOWN:
        out.append(f"  ... and {len(names) - NAMES_SHOWN} more")
    return out


def _totals(diff: SpecDiff) -> list[str]:
    a, b = diff.a, diff.b
    changed = diff.changed
    return [
        f"changed       {len(changed)} of {plural(len(diff.params), 'parameter')} "
        f"({plural(sum(p.numel for p in changed), 'element')})",
        f"frozen        {plural(a.frozen_tensors, 'tensor')}, {plural(a.frozen_elements, 'element')} {ARROW} "
        f"{plural(b.frozen_tensors, 'tensor')}, {plural(b.frozen_elements, 'element')}",
        f"param groups  {a.groups} {ARROW} {b.groups}",
    ]


def diff_json(diff: SpecDiff, model: str) -> dict[str, Any]:
    """The comparison as JSON-ready data; ``params`` lists only the parameters that change.

    ``identical`` is true when nothing differs, parameters, optimizer, clip or schedule.
    """
    changed = diff.changed
    return {
        "model": model, "identical": diff.empty, "a": _side_json(diff.a), "b": _side_json(diff.b),
        "totals": {"params": len(diff.params), "changed": len(changed),
                   "changed_elements": sum(p.numel for p in changed)},
        "params": [_param_json(p) for p in changed],
    }


def _side_json(side: Side) -> dict[str, Any]:
    return {"spec": side.spec, "optimizer": side.optimizer, "clip": side.clip, "schedule": side.schedule,
            "accumulate": side.accumulate, "ema": side.ema, "device": side.device,
            "groups": side.groups, "frozen": {"tensors": side.frozen_tensors, "elements": side.frozen_elements}}


def _param_json(p: ParamDiff) -> dict[str, Any]:
    return {
        "name": p.name, "numel": p.numel,
        "frozen": {"old": p.frozen[0], "new": p.frozen[1]},
        "group": {"old": p.group[0], "new": p.group[1], "changed": p.group_changed},
        "optimizer": {"old": p.optimizer[0], "new": p.optimizer[1]},
        "over_the_run": {"old": p.later[0], "new": p.later[1]},
        "settings": {k: _pair_json(old, new) for k, (old, new) in p.settings.items()},
    }


def _pair_json(old: Any, new: Any) -> dict[str, Any]:
    """``{"old": ..., "new": ...}``, leaving out the side whose optimizer lacks the key."""
    out = {}
    if old is not ABSENT:
        out["old"] = _jsonable(old)
    if new is not ABSENT:
        out["new"] = _jsonable(new)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
