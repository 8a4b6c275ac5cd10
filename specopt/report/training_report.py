"""Reports of what happens over the run: when parameters become trainable or frozen, and the loop's settings.

These lines complete the compile report (:func:`specopt.report.resolution_report.text_report`):
each parameter's changes over the run (from :mod:`specopt.resolve.timeline`), the
changes summed up per moment, and the ``accumulate``, ``ema`` and ``device``
statements with the norm layers kept in eval mode.
"""

from __future__ import annotations

from typing import Any

from ..plan.clauses import moment_text
from .resolution_report import param_changes, plural
from ..resolve.resolution import ParamAssignment, Resolution


def over_the_run(resolution: Resolution, events: tuple = (), steps_per_epoch: int | None = None) -> list[str]:
    """The report's ``over the run`` section: per moment and statement, what becomes trainable or frozen.

    ``events`` (compiled :class:`specopt.runtime.unfreezing.Event` values) add each moment's
    place on its clock, such as ``50% (epoch 6)``, and order the moments (epochs
    against steps only with ``steps_per_epoch``); otherwise rows follow the statements.
    """
    when = {e.index: e.when for e in events}
    order = {e.index: _in_steps(e, steps_per_epoch) for e in events}
    rows: dict[tuple, list[ParamAssignment]] = {}
    for p in resolution.params:
        for c in param_changes(p, resolution):
            key = (when.get(c.by.index, moment_text(c.moment)), c.by.label, c.trainable,
                   c.warmup.text if c.warmup is not None and c.trainable else None, c.by.index)
            rows.setdefault(key, []).append(p)
    if not rows:
        return []
    width = max(len(k[0]) for k in rows)
    lines = ["", "over the run:"]
    ranked = sorted(rows, key=lambda k: (order.get(k[4]) is None, order.get(k[4]) or 0.0, k[4]))
    for (moment, label, trainable, warmup, _) in ranked:
        members = rows[(moment, label, trainable, warmup, _)]
        what = "trainable" if trainable else "frozen"
        ramp = f", lr warmup over {warmup}" if warmup else ""
        count = f"{plural(len(members), 'tensor')}, {plural(sum(m.info.numel for m in members), 'element')}"
        lines.append(f"  {moment:<{width}}  {label}  {what}: {count}{ramp}")
    return lines


def _in_steps(event, steps_per_epoch: int | None) -> float | None:
    if event.clock == "step":
        return event.at
    return event.at * steps_per_epoch if steps_per_epoch else None


def loop_lines(plan, norms: list | None = None, device: Any = None) -> list[str]:
    """The report's lines for ``accumulate``, ``ema``, ``device`` and the norm layers kept in eval mode."""
    lines = []
    if plan.accumulate > 1:
        lines.append(f"accumulate {plan.accumulate} micro-batches per optimizer step "
                     f"(compiled.train_step divides each loss by {plan.accumulate})")
    if plan.ema is not None:
        lines.append(f"ema        {describe_ema(plan.ema)}")
    if plan.device is not None:
        shown = f" ({device})" if device is not None and str(device) != plan.device.device else ""
        lines.append(f"device     {plan.device.device}{shown}")
    if norms:
        lines += _norm_lines(norms)
    return [""] + lines if lines else []


def describe_ema(stmt) -> str:
    """One line saying how the EMA is kept."""
    warm = (f", decay warmed up (power {stmt.setting('power'):g}, gamma {stmt.setting('gamma'):g})"
            if stmt.setting("warmup") else "")
    every = stmt.setting("every")
    steps = "every optimizer step" if every == 1 else f"every {every} optimizer steps"
    buffers = "buffers averaged" if stmt.setting("buffers") else "buffers copied"
    where = stmt.setting("device") or "the model's device"
    return f"decay {stmt.decay:g}{warm}, updated {steps}, {buffers}, on {where}"


def _norm_lines(norms: list) -> list[str]:
    """The norm layers in eval mode from the start, and those whose mode changes later."""
    fixed = [layer.path or "(root)" for layer in norms if layer.mode()]
    later = [layer for layer in norms if any(s.timed for s in layer.switches)]
    lines = []
    if fixed:
        shown = ", ".join(fixed[:8]) + (f" and {len(fixed) - 8} more" if len(fixed) > 8 else "")
        lines.append(f"norms      eval (running statistics fixed): {plural(len(fixed), 'layer')}: {shown}")
    if later:
        lines.append(f"           {plural(len(later), 'layer')} change mode at a point of the run")
    return lines


def training_report(compiled) -> list[str]:
    """The lines a compiled spec adds to the compile report: changes over the run and the loop's settings."""
    driver = compiled.driver
    events = driver.board.events if driver is not None else ()
    norms = driver.norms if driver is not None else None
    spe = compiled.timing.steps_per_epoch if compiled.timing else None
    return over_the_run(compiled.resolution, events, spe) + loop_lines(compiled.resolution.plan, norms, compiled.device)
