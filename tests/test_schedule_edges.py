"""Where schedules end: restarts cut on a cycle boundary, and values that pass the float range.

A restart cosine whose length ends a cycle holds that cycle's floor, as timm's
``CosineLRScheduler`` with ``cycle_limit`` and transformers' hard restarts do,
and a following phase starts there. A schedule that grows past the largest
float is an error at compile time where the run's length is known (E223) and
otherwise holds at the largest float (W316), never an ``OverflowError`` in the
middle of a run nor a traceback from the command line.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from limited import assert_clean, run_limited
from peers import peer

import specopt
from specopt.catalog.schedule_curves import Curve, values
from specopt.diagnostics import SpecError
from specopt.catalog.curve_ops import MAX
from specopt.runtime.scheduler import ScheduleWarning
from specopt.catalog.schedule_kinds import Level, program
from specopt.plan.timing import first_past_range, plan_timing, programs

MODEL = "examples/seed_model.py:Network"


def run_loop(text: str, units: int, **options) -> tuple[list[list[float]], list[warnings.WarningMessage]]:
    """A hand-written loop: ``units`` times optimizer.step() then scheduler.step(); the lr of every group
    before each unit (and after the last), and the warnings."""
    model = torch.nn.Linear(2, 1)
    compiled = specopt.compile(text, model, **options)
    lrs = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(units):
            lrs.append([g["lr"] for g in compiled.optimizer.param_groups])
            compiled.optimizer.step()
            compiled.scheduler.step()
        lrs.append([g["lr"] for g in compiled.optimizer.param_groups])
    return lrs, seen


def close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= 1e-12 * max(abs(ours), abs(theirs)) + 1e-18


# --- item 6: a restart cosine cut on a cycle boundary --------------------------------------------

def test_restarts_cut_on_a_cycle_boundary_hold_the_floor_as_transformers_hard_restarts_do():
    schedule = peer("transformers.optimization")
    lrs, _ = run_loop("optimizer sgd lr=0.1\nschedule cosine 20 steps every 10 steps", 30)
    theirs_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs = schedule.get_cosine_with_hard_restarts_schedule_with_warmup(theirs_opt, 0, 20, num_cycles=2)
    for t in range(31):
        assert close(lrs[t][0], theirs_opt.param_groups[0]["lr"]), (t, lrs[t][0], theirs_opt.param_groups[0]["lr"])
        theirs_opt.step()
        theirs.step()
    assert [row[0] for row in lrs[20:]] == [0.0] * 11


def test_restarts_after_a_warmup_equal_transformers_hard_restarts_with_warmup():
    schedule = peer("transformers.optimization")
    lrs, _ = run_loop("optimizer sgd lr=0.1\nschedule warmup 5 steps then cosine 30 steps every 10 steps", 40)
    theirs_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs = schedule.get_cosine_with_hard_restarts_schedule_with_warmup(theirs_opt, 5, 35, num_cycles=3)
    for t in range(41):
        assert close(lrs[t][0], theirs_opt.param_groups[0]["lr"]), (t, lrs[t][0], theirs_opt.param_groups[0]["lr"])
        theirs_opt.step()
        theirs.step()


@pytest.mark.parametrize("mult, decay, cycles", [(1.0, 1.0, 2), (1.0, 0.5, 3), (2.0, 0.5, 2), (2.0, 1.0, 3)])
def test_restarts_equal_timm_with_a_cycle_limit_and_hold_its_floor(mult, decay, cycles):
    timm = peer("timm.scheduler")
    length = sum(10 * mult ** k for k in range(cycles))
    text = (f"optimizer sgd lr=0.1\nschedule cosine {length:g} epochs every 10 epochs mult {mult:g} "
            f"decay x{decay:g} to 0.001")
    lrs, _ = run_loop(text, int(length) + 10)
    theirs_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs = timm.CosineLRScheduler(theirs_opt, t_initial=10, lr_min=0.001, cycle_mul=mult, cycle_decay=decay,
                                    cycle_limit=cycles)
    for t in range(int(length) + 11):
        theirs.step(t)
        assert close(lrs[t][0], theirs_opt.param_groups[0]["lr"]), (t, lrs[t][0], theirs_opt.param_groups[0]["lr"])
    assert lrs[-1][0] == 0.001


def test_a_phase_after_restarts_cut_on_a_boundary_starts_from_the_floor():
    lrs, _ = run_loop("optimizer sgd lr=0.1\nschedule cosine 20 steps every 10 steps to x0.1 "
                      "then linear 10 steps to x1", 32)
    expected = [0.01 + 0.09 * k / 10 for k in range(11)] + [0.1, 0.1]
    for got, want in zip([row[0] for row in lrs[20:]], expected):
        assert close(got, want), (got, want)


def test_restarts_cut_inside_a_cycle_still_hold_where_they_were_cut():
    curve = Curve(program(("cosine", 15.0, {"every": 10.0, "to": Level(0.0, True)})))
    inside = curve.values(15, [1.0])[0]
    assert inside == pytest.approx(0.5) and curve.values(40, [1.0]) == [inside]


# --- item 9: values past the float range ---------------------------------------------------------

@pytest.mark.parametrize("text, units, first", [
    ("step every 1 x10", 400, 309),              # 0.1 x 10^309: the factor itself passes the range
    ("step every 1 steps x1e308", 5, 2),
    ("schedule exponential x2", 1100, 1024),     # the factor 2^1024 passes the range
    ("schedule cosine every 1 steps decay x2", 1100, 1024),
])
def test_a_growing_schedule_of_unknown_length_holds_at_the_largest_float_and_warns_once(text, units, first):
    lrs, seen = run_loop(f"optimizer sgd lr=0.1\ngroup bias lr=0\n{text}", units)
    weight, bias = [row[0] for row in lrs], [row[1] for row in lrs]
    assert all(v < MAX for v in weight[:first]) and weight[first:] == [MAX] * (units + 1 - first)
    assert bias == [0.0] * (units + 1)
    codes = [w.message.diagnostic.code for w in seen if isinstance(w.message, ScheduleWarning)]
    assert codes == ["W316"]


def test_previews_and_arrays_hold_at_the_largest_float_without_numpy_warnings():
    prog = program(("exponential", 2000.0, {"gamma": Level(2.0, True)}), ("linear", 10.0, {"to": Level(1.0, True)}))
    ts = np.array([0.0, 1023, 1024, 2000, 2005, 2010, 3000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = values(prog, 0.5, ts, np)
        zero = values(prog, 0.0, torch.tensor(ts, dtype=torch.float64), torch)
        scalar = [Curve(prog).values(t, [0.5, 0.0]) for t in ts.tolist()]
    assert list(out) == [0.5, 2.0 ** 1022, MAX, MAX, MAX, 0.5, 0.5]
    assert zero.tolist() == [0.0] * 7
    assert scalar == [[v, 0.0] for v in out]


def test_a_growing_schedule_that_passes_the_float_range_within_the_run_is_e223():
    with pytest.raises(SpecError) as info:
        specopt.compile("optimizer sgd lr=0.1\nrun 400 epochs\nstep every 1 x10", torch.nn.Linear(2, 1))
    [diagnostic] = info.value.diagnostics
    assert diagnostic.code == "E223" and "at epoch 309" in diagnostic.message
    with pytest.raises(SpecError, match="E223"):
        specopt.compile("optimizer sgd lr=0.1\nschedule exponential 2000 steps x2", torch.nn.Linear(2, 1))
    specopt.compile("optimizer sgd lr=0.1\nrun 300 epochs\nstep every 1 x10", torch.nn.Linear(2, 1))


@pytest.mark.parametrize("text", [
    "run 3000 epochs\nschedule exponential x1.5",
    "run 3000 steps\nschedule exponential x4 every 3 steps",
    "run 3000 steps\nschedule multistep at 10,20,30 steps x1e200",
    "run 3000 steps\nschedule warmup 10 steps then step 200 steps every 7 steps x1e20 then cosine",
    "run 5000 steps\nschedule cosine 4000 steps every 3 steps mult 1.5 decay x1e100",
    "run 5000 steps\nschedule exponential 1500 steps x1.7 then linear 100 steps to x0.5 then constant",
])
def test_the_step_e223_names_is_the_first_that_passes_the_float_range(text):
    plan = specopt.parse("optimizer sgd lr=0.1\n" + text).plan
    timing = plan_timing(plan)
    [prog] = programs(plan, timing)
    curve = Curve(prog)
    brute = next((t for t in range(int(timing.run) + 1) if MAX in curve.values(t, [0.1, 3.0])), None)
    assert brute is not None
    assert first_past_range(curve, [0.1, 3.0], int(timing.run)) == brute


def test_a_schedule_that_stays_in_range_is_not_e223():
    for text in ("run 3000 epochs\nschedule exponential x1.2 every 10 epochs",
                 "run 3000 steps\nschedule exponential 1000 steps x1.5 then cosine to x0.1",
                 "schedule cosine every 3 steps decay x0.5"):
        plan = specopt.parse("optimizer sgd lr=0.1\n" + text).plan
        timing = plan_timing(plan)
        [prog] = programs(plan, timing)
        assert first_past_range(Curve(prog), [0.1], int(timing.run or 10_000)) is None


def test_compile_and_plot_of_a_schedule_past_the_float_range_exit_1_with_e223(tmp_path):
    spec = tmp_path / "grows.opt"
    spec.write_text("optimizer sgd lr=0.1\nstep every 1 x10\nrun 400 epochs\n")
    for extra in ((), ("--json",), ("--meta",), ("--meta", "--json")):
        assert_clean(run_limited("compile", str(spec), "--model", MODEL, *extra), 1, "[E223]")
    out = run_limited("plot", str(spec), "--model", MODEL, "-o", str(tmp_path / "grows.png"))
    assert_clean(out, 1, "[E223]")
    spec.write_text("optimizer sgd lr=0.1\nrun 100000 steps\nschedule exponential x1e300\n")
    assert_clean(run_limited("compile", str(spec), "--model", MODEL, "--steps-per-epoch", "10"), 1, "[E223]")


def test_compile_and_plot_of_a_growing_schedule_of_unknown_length_show_the_largest_float(tmp_path):
    spec = tmp_path / "grows.opt"
    spec.write_text("optimizer sgd lr=0.1\nrun 100000 steps\nschedule exponential x1e300\n")
    out = run_limited("compile", str(spec), "--model", MODEL, "--json")
    assert_clean(out, 0)
    data = json.loads(out.stdout, parse_constant=lambda word: pytest.fail(f"{word} is not JSON"))
    assert data["schedule"]["curves"][0]["groups"][0]["end"] == MAX
    assert_clean(run_limited("compile", str(spec), "--model", MODEL), 0)
    assert_clean(run_limited("plot", str(spec), "--model", MODEL, "-o", str(tmp_path / "grows.png")), 0)


def test_the_step_driver_runs_on_past_the_float_range():
    model = torch.nn.Linear(2, 1)
    compiled = specopt.compile("optimizer sgd lr=0.1\nstep every 1 steps x1e308", model)
    with pytest.warns(ScheduleWarning, match="W316"):
        for _ in range(4):
            compiled.train_step(model(torch.ones(3, 2)).sum())
    assert compiled.optimizer.param_groups[0]["lr"] == MAX and compiled.steps == 4
