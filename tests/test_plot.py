"""Plots: a valid PNG with one subplot per hyperparameter and one line per param group, and a clear missing-extra error."""

from __future__ import annotations

import sys

import pytest
import torch

from specopt.report.preview import preview_programs
from specopt.runtime.scheduler import SpecScheduler
from specopt.catalog.schedule_kinds import Level, program

matplotlib = pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


PROGRAMS = [program(("warmup", 100, {}), ("cosine", 900, {"to": Level(0.1, True)})),
            program(("cosine", 1000, {"from": Level(0.04, False), "to": Level(0.4, False)}), hyper="weight_decay"),
            program(("linear", 500, {"from": Level(0.99, False), "to": Level(0.95, False)}), hyper="beta2")]


def _scheduler():
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr, "name": name}
              for name, lr in (("head", 1e-2), ("body", 1e-3), ("norms", 1e-3))]
    return SpecScheduler(torch.optim.AdamW(groups, weight_decay=0.1), PROGRAMS)


def test_a_scheduler_plots_to_a_png_with_a_line_per_group_and_hyperparameter(tmp_path):
    from matplotlib.image import imread

    from specopt.report.plot import plot

    path = tmp_path / "schedule.png"
    figure = plot(_scheduler(), path, title="warmup then cosine")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert [ax.get_ylabel() for ax in figure.axes] == ["lr", "weight_decay", "beta2"]
    for ax in figure.axes:
        assert [line.get_label() for line in ax.lines] == ["[0] head", "[1] body", "[2] norms"]
        assert list(ax.lines[0].get_xdata()) == [float(t) for t in range(1001)]
    boundaries = figure.axes[0].collections[0].get_segments()
    assert [seg[0][0] for seg in boundaries] == [100.0]
    assert figure.axes[0].get_title() == "warmup then cosine"
    assert figure.axes[-1].get_xlabel() == "steps (scheduler.step() calls)"


def test_the_lines_are_the_scheduled_values():
    from specopt.report.plot import plot

    scheduler = _scheduler()
    figure = plot(scheduler)
    lr = figure.axes[0].lines[1].get_ydata()
    wd = figure.axes[1].lines[0].get_ydata()
    for t in range(0, 1001, 50):
        values = scheduler.values_at(t)
        assert lr[t] == values["lr"][1] and wd[t] == values["weight_decay"][0]


def test_a_preview_is_drawn_as_it_is(tmp_path):
    from specopt.report.plot import plot

    shown = preview_programs(PROGRAMS[:1], [{"lr": 1.0}], unit="epoch", until=10_000, max_points=50)
    figure = plot(shown, tmp_path / "p.png")
    assert len(figure.axes) == 1 and len(figure.axes[0].lines) == 1
    assert list(figure.axes[0].lines[0].get_xdata()) == list(shown.curves[0].times)
    assert figure.axes[0].get_xlabel() == "epochs (scheduler.step() calls)"
    assert (tmp_path / "p.png").read_bytes().startswith(PNG_SIGNATURE)


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    from specopt.report.plot import plot

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'specopt\[plot\]'"):
        plot(_scheduler())
