"""The layers of each ``layers`` statement in the reports: depth, lr factor, tensors and what each holds.

The compile report gets a table per statement (:func:`layer_lines`), the JSON
assignment a list (:func:`layers_json`); each parameter's own depth is in the
``set_by`` of its ``lr`` and in ``explain``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

ROWS_SHOWN = 16  # a longer table shows its first and last rows


def layer_table(resolution) -> dict[int, list[tuple[Any, int]]]:
    """For each ``layers`` statement (by index), its layers in depth order, each with its tensor count."""
    c = resolution.columns
    per_outcome = Counter(c.outcome_of)
    counts: Counter = Counter()
    for k, outcome in enumerate(c.outcomes):
        for origin in outcome.touched:
            if hasattr(origin, "depth"):
                counts[origin] += per_outcome[k]
    table: dict[int, list[tuple[Any, int]]] = {}
    for origin in sorted(counts, key=lambda o: (o.index, o.depth)):
        table.setdefault(origin.index, []).append((origin, counts[origin]))
    return table


def layer_lines(resolution) -> list[str]:
    """The compile report's lines for the layers: one table per ``layers`` statement (none without one)."""
    lines = []
    for index, layers in layer_table(resolution).items():
        stmt, top = resolution.plan.statements[index], layers[-1][0].top
        lines += ["", f"layers     {layers[0][0].statement}: {top + 1} layers, lr x{stmt.setting('decay'):g}^"
                  f"({top} - depth)" + _clamp(stmt)]
        rows = [("depth", "lr", "tensors", "holds")] + [_row(o, n) for o, n in layers]
        if len(rows) > ROWS_SHOWN + 1:
            rows = rows[:ROWS_SHOWN - 3] + [("...", "", "", f"{len(rows) - ROWS_SHOWN} more")] + rows[-3:]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines += [f"           {a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows]
    return lines


def _clamp(stmt) -> str:
    parts = [f"at least x{stmt.setting('min_scale'):g}"] if stmt.setting("min_scale") else []
    below = stmt.setting("freeze_below")
    parts += [f"frozen below x{below:g}"] if below is not None else []
    return ", " + ", ".join(parts) if parts else ""


def _row(origin, count: int) -> tuple[str, str, str, str]:
    frozen = " frozen" if origin.frozen else ""
    holds = ", ".join(origin.members) + (" (no slot selects them)" if origin.rest else "")
    return (str(origin.depth), f"x{origin.scale:.3g}{frozen}", f"{count:,}", holds)


def layers_json(resolution) -> list[dict[str, Any]]:
    """Every layer of every ``layers`` statement as data: statement, depth, factor, frozen, members, tensors."""
    return [{"statement": index, "label": o.label, "depth": o.depth, "top": o.top, "scale": o.scale,
             "frozen": o.frozen, "members": list(o.members), "rest": o.rest, "tensors": count}
            for index, layers in layer_table(resolution).items() for o, count in layers]
