"""Previews: golden text and JSON per case, the scheduler's own values, bounded size.

Golden JSON files hold values rounded to 10 significant digits, so that a
libm that rounds ``cos`` differently in the last bit does not change them;
the exact values are compared with a running scheduler below.
"""

from __future__ import annotations

import json

import pytest
import torch

from golden import GOLDEN, check
from specopt.report.preview import preview, preview_programs
from specopt.runtime.scheduler import SpecScheduler
from specopt.catalog.schedule_kinds import Level, program, X1

FOLDER = GOLDEN / "preview"


HEAD_AND_DEFAULT = [{"name": "head", "lr": 1e-2, "momentum": 0.9, "weight_decay": 0.05},
                    {"name": "default", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.05}]
ADAMW = [{"name": "decay", "lr": 3e-4, "betas": (0.9, 0.95), "weight_decay": 0.1},
         {"name": "no_decay", "lr": 3e-4, "betas": (0.9, 0.95), "weight_decay": 0.0}]

# name: (programs, groups, unit, until); "schedule ..." comments give the spec each stands for.
CASES = {
    # schedule linear 500 steps from x0.01 then cosine 9500 steps to x0.1
    "linear_then_cosine": ([program(("linear", 500, {"from": Level(0.01, True)}),
                                    ("cosine", 9500, {"to": Level(0.1, True)}))], HEAD_AND_DEFAULT, "step", None),
    # run 100000 steps; schedule warmup 2000 steps then constant 80% then linear to 0
    "warmup_constant_linear": ([program(("warmup", 2000, {}), ("constant", 80_000, {}),
                                        ("linear", 18_000, {"to": Level(0.0, False)}))], ADAMW, "step", 100_000),
    # schedule multistep at 30,60,90 epochs x0.1
    "multistep_epochs": ([program(("multistep", None, {"at": (30.0, 60.0, 90.0), "gamma": Level(0.1, True)}))],
                         HEAD_AND_DEFAULT, "epoch", 100),
    # schedule onecycle 1000 steps three_phase true; schedule weight_decay cosine from 0.04 to 0.4
    "onecycle_and_weight_decay": ([program(("onecycle", 1000, {"three_phase": True})),
                                   program(("cosine", 1000, {"from": Level(0.04, False), "to": Level(0.4, False)}),
                                           hyper="weight_decay")], ADAMW, "step", None),
    # schedule warmup 5 epochs then plateau x0.5 patience 3
    "warmup_then_plateau": ([program(("warmup", 5, {}), ("plateau", None, {"factor": Level(0.5, True),
                                                                           "patience": 3}))],
                            HEAD_AND_DEFAULT, "epoch", None),
    # schedule cosine every 10 epochs mult 2 decay x0.5 to x0.01 (70 epochs)
    "restarts": ([program(("cosine", 70, {"every": 10.0, "mult": 2.0, "decay": Level(0.5, True),
                                          "to": Level(0.01, True)}))], HEAD_AND_DEFAULT, "epoch", None),
    # schedule warmup 4000 steps then inverse_sqrt; schedule momentum linear 4000 steps from 0.85 to 0.95
    "inverse_sqrt_and_momentum": ([program(("warmup", 4000, {}), ("inverse_sqrt", None, {})),
                                   program(("linear", 4000, {"from": Level(0.85, False), "to": Level(0.95, False)}),
                                           hyper="momentum")], HEAD_AND_DEFAULT, "step", 50_000),
}


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_text(name):
    programs, groups, unit, until = CASES[name]
    check(FOLDER / f"{name}.txt", preview_programs(programs, groups, unit, until).text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_json(name):
    programs, groups, unit, until = CASES[name]
    data = preview_programs(programs, groups, unit, until, max_points=21).data()
    check(FOLDER / f"{name}.json", json.dumps(_rounded(data), indent=1) + "\n")


def test_every_golden_file_has_a_case():
    stems = {p.stem for p in FOLDER.glob("*.*")}
    assert stems == set(CASES)


def _optimizer(groups):
    params = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": g["lr"], "name": g["name"],
               "betas": g["betas"], "weight_decay": g["weight_decay"]} for g in groups]
    return torch.optim.AdamW(params)


def test_a_scheduler_previews_the_values_it_steps_through():
    programs, groups, _, _ = CASES["onecycle_and_weight_decay"]
    optimizer = _optimizer(groups)
    scheduler = SpecScheduler(optimizer, programs)
    shown = preview(scheduler, max_points=2000)
    assert shown.text() == preview_programs(programs, groups, until=None, max_points=2000).text()
    assert not shown.sampled and shown.curves[0].times == tuple(float(t) for t in range(1001))
    by_hyper = {c.hyper: c for c in shown.curves}
    assert set(by_hyper) == {"lr", "weight_decay", "beta1"}
    for t in range(1001):
        for k, group in enumerate(optimizer.param_groups):
            assert by_hyper["lr"].groups[k].values[t] == group["lr"]
            assert by_hyper["beta1"].groups[k].values[t] == group["betas"][0]
            assert by_hyper["weight_decay"].groups[k].values[t] == group["weight_decay"]
        optimizer.step()
        scheduler.step()


def test_long_runs_are_sampled_with_every_boundary_and_the_unit_before_it():
    programs, groups, unit, _ = CASES["warmup_constant_linear"]
    shown = preview_programs(programs, groups, unit, until=1_000_000, max_points=101)
    times = shown.curves[0].times
    assert shown.sampled and len(times) <= 101 + 2 * 4
    assert {1999.0, 2000.0, 81_999.0, 82_000.0, 99_999.0, 100_000.0, 1_000_000.0} <= set(times)
    assert times == tuple(sorted(set(times)))
    assert len(json.dumps(shown.data())) < 20_000


def test_an_open_ended_schedule_is_shown_to_twice_its_last_start():
    programs, groups, unit, _ = CASES["warmup_then_plateau"]
    shown = preview_programs(programs, groups, unit)
    assert shown.until == 10 and shown.open_ended
    assert "0 to 10 epochs (the last phase is open-ended)" in shown.text()
    alone = preview_programs([program(("exponential", None, {"gamma": Level(0.9, True)}))], groups)
    assert alone.until == 100


@pytest.mark.parametrize("kwargs, words", [
    ({"groups": []}, "at least one param group"),
    ({"until": 0}, "longer than 0"),
    ({"max_points": 1}, "max_points of at least 2"),
    ({"groups": [{"lr": 0.1}]}, "no param group has 'momentum'"),
])
def test_previews_that_cannot_be_made_say_why(kwargs, words):
    args = {"programs": [program(("warmup", 3, {})), program(("constant", None, {"value": X1}), hyper="momentum")],
            "groups": HEAD_AND_DEFAULT, **kwargs}
    with pytest.raises(ValueError, match=words):
        preview_programs(**args)
