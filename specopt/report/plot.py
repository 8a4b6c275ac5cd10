"""Plot a schedule: every scheduled hyperparameter of every param group over the run, as a PNG.

One subplot per hyperparameter, one line per param group, dotted vertical
lines at the phase boundaries, and time on the x axis in scheduler units (one
unit per ``scheduler.step()`` call). The values are a :mod:`specopt.report.preview`
taken at up to ``max_points`` times (2,000 by default; every unit of a shorter
run), so the plot shows exactly what the scheduler will set. matplotlib is
imported here only, without pyplot (no global figure state): ``pip install
'specopt[plot]'`` provides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .preview import Preview, preview

INSTALL_HINT = "plotting a schedule needs matplotlib: pip install 'specopt[plot]'"


def plot(source: Any, path: str | Path | None = None, until: float | None = None, max_points: int = 2000,
         title: str | None = None, width: float = 7.0, height: float = 2.2, dpi: int = 100) -> Any:
    """Draw a schedule and, with ``path``, save it as a PNG; return the matplotlib ``Figure``.

    ``source`` is a :class:`~specopt.runtime.scheduler.SpecScheduler` (previewed up
    to ``until``) or a :class:`~specopt.report.preview.Preview` (drawn as it is).
    ``width`` and ``height`` are inches, ``height`` per subplot. Raises
    ``ImportError`` naming the extra to install when matplotlib is missing.
    """
    figure_class = _figure_class()
    shown = source if isinstance(source, Preview) else preview(source, until, max_points)
    figure = figure_class(figsize=(width, height * len(shown.curves) + 0.4), layout="constrained")
    axes = figure.subplots(len(shown.curves), 1, sharex=True, squeeze=False)[:, 0]
    for ax, curve in zip(axes, shown.curves):
        for group in curve.groups:
            ax.plot(curve.times, group.values, label=f"[{group.index}] {group.name}", linewidth=1.2)
        inner = [b for b in curve.boundaries if 0 < b < shown.until]
        if inner:
            ax.vlines(inner, 0, 1, transform=ax.get_xaxis_transform(), colors="0.6", linestyles=":",
                      linewidth=0.8)
        ax.set_ylabel(curve.hyper)
        ax.grid(True, linewidth=0.3, alpha=0.5)
        if len(curve.groups) > 1:
            ax.legend(fontsize="small", loc="best")
    axes[-1].set_xlabel(f"{shown.unit}s (scheduler.step() calls)")
    axes[-1].set_xlim(0, shown.until)
    if title:
        axes[0].set_title(title)
    if path is not None:
        figure.savefig(path, format="png", dpi=dpi)
    return figure


def _figure_class() -> type:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return Figure
