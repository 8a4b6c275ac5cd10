"""Schedules compiled against a model: the contract lines, units, run lengths, ratios and resuming.

The closed forms themselves are tested in test_schedules.py and the runtime
in test_scheduler.py; here the spec language meets them: what a spec writes
is what the compiled scheduler does.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim import lr_scheduler

import specopt
from processes import run_code


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))


def lrs(compiled, t):
    return compiled.scheduler.values_at(t)["lr"]


def codes(text, **timing):
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(text, model(), **timing)
    return [(d.code, text[d.span.start:d.span.end] if d.span else None) for d in info.value.diagnostics]


# --- the contract lines of the schedule language ------------------------------------------------

def test_linear_then_cosine_equals_torchs_sequential_schedule():
    text = "optimizer sgd lr=0.1\nschedule linear 500 steps from x0.01 then cosine 9500 steps to x0.1"
    compiled = specopt.compile(text, model())
    assert compiled.schedule_unit == "step"
    reference = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    torch_lr = lr_scheduler.SequentialLR(reference, [
        lr_scheduler.LinearLR(reference, 0.01, 1.0, 500),
        lr_scheduler.CosineAnnealingLR(reference, 9500, eta_min=0.01)], milestones=[500])
    for t in range(10_000):
        if t in (0, 1, 250, 499, 500, 501, 5000, 9999):
            assert lrs(compiled, t)[0] == pytest.approx(torch_lr.get_last_lr()[0], rel=1e-12)
        reference.step()
        torch_lr.step()


def test_warmup_then_cosine_takes_the_rest_of_the_run():
    text = "optimizer sgd lr=1\nschedule warmup 5 epochs then cosine to x0.01"
    compiled = specopt.compile(text, model(), epochs=90)
    assert compiled.schedule_unit == "epoch"
    assert [lrs(compiled, t)[0] for t in (0, 5, 90)] == pytest.approx([0.0, 1.0, 0.01])
    assert lrs(compiled, 47.5)[0] == pytest.approx(0.01 + 0.99 * 0.5)


def test_without_the_run_length_the_open_phase_is_an_error_at_that_phase():
    found = codes("schedule warmup 5 epochs then cosine to x0.01")
    assert found == [("E216", "cosine to x0.01")]


def test_multistep_at_epochs():
    compiled = specopt.compile("optimizer sgd lr=1\nschedule multistep at 30,60,90 epochs x0.1", model())
    assert [lrs(compiled, t)[0] for t in (29, 30, 59, 60, 90, 200)] == pytest.approx(
        [1, 0.1, 0.1, 0.01, 0.001, 0.001])


def test_warmup_stable_decay_splits_the_run_as_documented():
    text = "optimizer sgd lr=1\nrun 100000 steps\nschedule warmup 2000 steps then constant 80% then linear to 0"
    compiled = specopt.compile(text, model())
    (curve,) = compiled.scheduler.curves
    assert list(curve.starts) == [0, 2000, 82000] and list(curve.lengths) == [2000, 80000, 18000]
    assert [lrs(compiled, t)[0] for t in (1000, 2000, 81999, 91000, 100000)] == pytest.approx(
        [0.5, 1, 1, 0.5, 0])


def test_weight_decay_moves_in_absolute_values_for_every_group():
    text = ("optimizer adamw weight_decay=0.05; group 1 weight_decay=0\n"
            "schedule weight_decay cosine from 0.04 to 0.4")
    compiled = specopt.compile(text, model(), epochs=10)
    assert compiled.scheduler.values_at(0)["weight_decay"] == pytest.approx([0.04, 0.04])
    assert compiled.scheduler.values_at(10)["weight_decay"] == pytest.approx([0.4, 0.4])
    assert [g["weight_decay"] for g in compiled.optimizer.param_groups] == pytest.approx([0.04, 0.04])


def test_a_relative_ramp_keeps_a_no_decay_group_at_zero():
    text = "optimizer adamw weight_decay=0.04; group 1 weight_decay=0\nschedule weight_decay cosine to x10"
    compiled = specopt.compile(text, model(), epochs=10)
    assert compiled.scheduler.values_at(10)["weight_decay"] == pytest.approx([0.4, 0.0])


# --- every group keeps its ratio ----------------------------------------------------------------

@pytest.mark.parametrize("schedule", [
    "schedule warmup 10 steps then cosine 90 steps to x0.01",
    "schedule onecycle 100 steps",
    "schedule linear 100 steps from x0.1 to x0.001",
    "step every 7 steps x0.5",
])
def test_a_group_with_ten_times_the_base_stays_ten_times_at_every_step(schedule):
    compiled = specopt.compile(f"optimizer sgd lr=0.01 momentum=0.9; group 1 lr=x10\n{schedule}", model())
    for t in range(0, 101):
        low, high = lrs(compiled, t)
        assert high == pytest.approx(10 * low, rel=1e-12, abs=1e-300)


def test_a_relative_floor_is_relative_to_each_groups_own_value():
    compiled = specopt.compile("optimizer sgd lr=1; group 1 lr=x10\nschedule cosine 10 steps to x0.01", model())
    assert lrs(compiled, 10) == pytest.approx([0.01, 0.1])


# --- units --------------------------------------------------------------------------------------

def test_epochs_become_steps_when_phases_mix_units():
    text = "optimizer sgd lr=1\nschedule warmup 1000 steps then cosine 30 epochs to x0.01\nsteps_per_epoch 500"
    compiled = specopt.compile(text, model())
    (curve,) = compiled.scheduler.curves
    assert compiled.schedule_unit == "step" and list(curve.lengths) == [1000, 15000]
    again = specopt.compile(text, model(), steps_per_epoch=100)   # the caller's number wins
    assert list(again.scheduler.curves[0].lengths) == [1000, 3000]


def test_mixing_units_without_steps_per_epoch_names_the_missing_number():
    text = "schedule warmup 1000 steps then cosine 30 epochs to x0.01"
    assert codes(text) == [("E216", "30 epochs")]
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(text, model())
    assert "steps per epoch" in info.value.diagnostics[0].message
    assert "steps_per_epoch" in info.value.diagnostics[0].hint


def test_a_share_of_a_run_given_in_epochs_in_a_step_schedule():
    text = "optimizer sgd lr=1\nschedule warmup 100 steps then constant 50% then linear to 0"
    compiled = specopt.compile(text, model(), epochs=10, steps_per_epoch=100)
    assert list(compiled.scheduler.curves[0].lengths) == [100, 500, 400]


def test_the_old_step_statement_means_what_it_meant():
    compiled = specopt.compile("optimizer sgd lr=1\nstep every 10 x0.1", model())
    assert compiled.schedule_unit == "epoch"
    assert [lrs(compiled, t)[0] for t in (9, 10, 25)] == pytest.approx([1, 0.1, 0.01])


# --- other hyperparameters ----------------------------------------------------------------------

def test_beta1_moves_the_first_of_betas_and_keeps_the_second():
    compiled = specopt.compile("optimizer adam betas=(0.9, 0.99)\nschedule beta1 linear 10 steps to x0.5",
                               model())
    for _ in range(10):
        compiled.optimizer.step()
        compiled.scheduler.step()
    assert [g["betas"] for g in compiled.optimizer.param_groups] == [pytest.approx((0.45, 0.99))]


def test_a_schedule_that_leaves_a_range_is_an_error_before_anything_is_built():
    m = model()
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile("freeze 0; schedule beta1 linear 10 epochs to x1.2", m)
    assert [d.code for d in info.value.diagnostics] == ["E217"]
    assert all(p.requires_grad for p in m.parameters())


def test_a_hyperparameter_the_optimizer_lacks_is_suggested():
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse("optimizer adamw\nschedule momentum cosine 10 epochs")
    (diag,) = info.value.diagnostics
    assert diag.code == "E204" and "beta1" in diag.hint


# --- plateau, Lightning -------------------------------------------------------------------------

def test_plateau_reduces_on_the_metric_and_lightning_gets_the_monitor():
    compiled = specopt.compile("optimizer sgd lr=1\nschedule plateau x0.5 patience 1 monitor val_acc mode max",
                               model())
    for metric in (0.5, 0.6, 0.6, 0.6):
        compiled.optimizer.step()
        compiled.scheduler.step(metric)
    assert compiled.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    config = compiled.lightning()["lr_scheduler"]
    assert config["monitor"] == "val_acc" and config["reduce_on_plateau"] and config["interval"] == "epoch"


def test_lightning_interval_is_the_schedule_unit():
    compiled = specopt.compile("schedule warmup 10 steps then cosine 90 steps", model())
    assert compiled.lightning()["lr_scheduler"]["interval"] == "step"
    assert "monitor" not in compiled.lightning()["lr_scheduler"]


# --- resuming -----------------------------------------------------------------------------------

RESUMED = "optimizer sgd lr=1 momentum=0.9; group 1 lr=x3\nschedule linear 4 steps from x0.1 then cosine 6 steps to x0.01 then constant"


def _train(compiled, m, steps):
    for _ in range(steps):
        m(torch.ones(2, 4)).sum().backward()
        compiled.optimizer.step()
        compiled.optimizer.zero_grad()
        compiled.scheduler.step()


@pytest.mark.parametrize("stop", [3, 4, 5, 9, 10, 11])
def test_a_resumed_run_has_exactly_the_values_of_an_uninterrupted_one(stop):
    m = model()
    whole = specopt.compile(RESUMED, m)
    _train(whole, m, 14)
    first_model = model()
    first = specopt.compile(RESUMED, first_model)
    _train(first, first_model, stop)
    saved, weights = first.state_dict(), first_model.state_dict()
    second_model = model()
    second_model.load_state_dict(weights)
    second = specopt.compile(RESUMED, second_model)
    second.load_state_dict(saved)
    _train(second, second_model, 14 - stop)
    assert [g["lr"] for g in second.optimizer.param_groups] == [g["lr"] for g in whole.optimizer.param_groups]
    assert all(torch.equal(a, b) for a, b in zip(second_model.parameters(), m.parameters()))


def test_a_fresh_process_continues_the_schedule(tmp_path):
    code = f"""
import sys, torch, specopt
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
compiled = specopt.compile({RESUMED!r}, model)
if sys.argv[1] == "save":
    for _ in range(5):
        compiled.optimizer.step(); compiled.scheduler.step()
    torch.save(compiled.state_dict(), sys.argv[2])
else:
    compiled.load_state_dict(torch.load(sys.argv[2], weights_only=False))
    print(repr([g["lr"] for g in compiled.optimizer.param_groups]))
"""
    path = str(tmp_path / "opt.pt")
    assert run_code(code, "save", path).returncode == 0
    out = run_code(code, "load", path)
    assert out.returncode == 0, out.stderr
    expected = specopt.compile(RESUMED, model()).scheduler.values_at(5)["lr"]
    assert eval(out.stdout) == expected


def test_a_checkpoint_from_before_the_schedule_language_resumes_its_position():
    compiled = specopt.compile("optimizer sgd lr=1\nstep every 2 x0.1", model())
    saved = compiled.state_dict()
    saved["scheduler"] = {"step_size": 2, "gamma": 0.1, "base_lrs": [1.0], "last_epoch": 4, "_step_count": 5,
                          "_get_lr_called_within_step": False, "_last_lr": [0.01]}
    again = specopt.compile("optimizer sgd lr=1\nstep every 2 x0.1", model())
    again.load_state_dict(saved)
    assert again.optimizer.param_groups[0]["lr"] == pytest.approx(0.01) and not math.isnan(again.scheduler.last_epoch)
