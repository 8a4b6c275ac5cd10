"""A schedule in the loops people write: a plateau phase fed through the step driver, and the warnings
for a schedule stepped in a way that cannot be what was meant.

``compiled.end_epoch(metric=...)`` feeds a ``plateau`` phase exactly as a
hand-written ``scheduler.step(metric)`` would, without advancing the schedule a
second time; a plateau phase that gets no metric warns (W313). A scheduler
stepped both by the driver and directly, or more often than the optimizer
steps, warns (W314), and so does one stepped past the run's length (W315),
each once. Correct loops warn about nothing.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from typing import Iterator

import pytest
import torch

import specopt
from loops import assert_same, loss_of, make_net, params_of
from specopt.runtime.scheduler import ScheduleWarning

METRICS = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8, 0.9]


@contextmanager
def schedule_warnings() -> Iterator[list[str]]:
    """Record the codes of the schedule warnings given inside; any other warning fails the test (but torch's
    own about a scheduler stepped before the optimizer's first step, which skipped steps give)."""
    codes: list[str] = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
        yield codes
    for w in seen:
        assert isinstance(w.message, ScheduleWarning), str(w.message)
        codes.append(w.message.diagnostic.code)


def _hand_plateau_loop(epochs: int, steps: int):
    """SGD with ReduceLROnPlateau(factor=0.5, patience=1) stepped with the metric once per epoch."""
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=False)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    lrs, k = [], 0
    for epoch in range(epochs):
        for _ in range(steps):
            loss_of(model, k).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            k += 1
        plateau.step(METRICS[epoch])
        lrs.append(optimizer.param_groups[0]["lr"])
    return model, lrs


# --- item 5: a plateau phase under the step driver -------------------------------------------------

def test_end_epoch_with_a_metric_equals_reduce_lr_on_plateau_in_a_hand_written_loop():
    hand, hand_lrs = _hand_plateau_loop(10, 3)
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1 momentum=0.9 foreach=false\nschedule plateau x0.5 patience 1",
                               model)
    lrs, k = [], 0
    with schedule_warnings() as codes:
        for epoch in range(10):
            for _ in range(3):
                compiled.train_step(loss_of(model, k))
                k += 1
            compiled.end_epoch(metric=torch.tensor(METRICS[epoch]))
            lrs.append(compiled.optimizer.param_groups[0]["lr"])
    assert codes == []
    assert lrs == hand_lrs and min(lrs) < 0.1
    assert compiled.scheduler.last_epoch == 10  # one advance per epoch
    assert_same(params_of(model), params_of(hand))


def test_a_step_unit_plateau_counts_the_epoch_metric_without_advancing_the_schedule():
    """Warmup over steps, then a plateau fed at each epoch's end: as LinearLR per step and ReduceLROnPlateau
    per epoch once the warmup is over (the plateau counts metrics from the time it starts)."""
    model, hand = make_net(), make_net()
    optimizer = torch.optim.SGD(hand.parameters(), lr=0.1, foreach=False)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.5, total_iters=4)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    compiled = specopt.compile("optimizer sgd lr=0.1 foreach=false\n"
                               "schedule warmup 4 steps from x0.5 then plateau x0.5 patience 0", model)
    k = 0
    with schedule_warnings() as codes:
        for epoch in range(8):
            for _ in range(3):
                loss_of(hand, k).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                warmup.step()
                compiled.train_step(loss_of(model, k))
                k += 1
            if 3 * (epoch + 1) >= 4:
                plateau.step(METRICS[epoch])
            compiled.end_epoch(metric=METRICS[epoch])
            assert compiled.optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"],
                                                                           rel=1e-12)
    assert codes == []
    assert compiled.scheduler.last_epoch == compiled.steps == 24
    assert optimizer.param_groups[0]["lr"] < 0.05
    assert_same(params_of(model), params_of(hand), exact=False)


def test_a_plateau_phase_without_metrics_warns_once_when_it_runs():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nschedule warmup 3 epochs then plateau x0.5", model)
    seen_at = []
    for epoch in range(6):
        compiled.train_step(loss_of(model, epoch))
        with schedule_warnings() as codes:
            compiled.end_epoch()
        seen_at += [(epoch, code) for code in codes]
    assert seen_at == [(3, "W313")]  # the fourth epoch's end is the first the plateau phase counts


def test_a_step_unit_plateau_without_metrics_warns_at_the_end_of_an_epoch():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nschedule warmup 2 steps then plateau x0.5", model)
    with schedule_warnings() as codes:
        for epoch in range(3):
            for k in range(3):
                compiled.train_step(loss_of(model, k))
            compiled.end_epoch()
    assert codes == ["W313"]


def test_a_hand_written_epoch_loop_without_metrics_warns():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nschedule plateau x0.5", model)
    with schedule_warnings() as codes:
        for epoch in range(3):
            compiled.optimizer.step()
            compiled.scheduler.step()
    assert codes == ["W313"]


def test_stepping_the_scheduler_as_well_as_the_driver_warns():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nschedule plateau x0.5", model)
    with schedule_warnings() as codes:
        for epoch in range(3):
            compiled.train_step(loss_of(model, epoch))
            compiled.end_epoch(metric=1.0)
            compiled.scheduler.step(1.0)
    assert codes == ["W314"]
    assert compiled.scheduler.last_epoch == 6


# --- item 7: a schedule stepped in the wrong unit ----------------------------------------------------

def _hand_loop(compiled, model, batches: int, schedule_every: int = 1, optimizer_every: int = 1) -> list[tuple]:
    """``batches`` batches: backward each, optimizer.step() every ``optimizer_every`` and scheduler.step()
    every ``schedule_every`` batches; the schedule warnings with the batch they came at."""
    out = []
    for k in range(batches):
        with schedule_warnings() as codes:
            loss_of(model, k).backward()
            if (k + 1) % optimizer_every == 0:
                compiled.optimizer.step()
                compiled.optimizer.zero_grad(set_to_none=True)
            if (k + 1) % schedule_every == 0:
                compiled.scheduler.step()
        out += [(k + 1, code) for code in codes]
    return out


def test_an_epoch_schedule_stepped_per_batch_warns_once_past_the_run():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nrun 10 epochs\nschedule cosine to x0.01", model)
    assert compiled.schedule_unit == "epoch"
    assert _hand_loop(compiled, model, 40) == [(11, "W315")]


def test_an_epoch_schedule_stepped_per_batch_warns_when_the_steps_per_epoch_are_known():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nschedule cosine 10 epochs to x0.01", model, steps_per_epoch=8)
    assert _hand_loop(compiled, model, 40) == [(3, "W314")]


def test_a_step_schedule_stepped_per_micro_batch_warns_once():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nschedule cosine 1000 steps", model)
    assert _hand_loop(compiled, model, 60, optimizer_every=4) == [(22, "W314")]  # 22 calls, 5 steps


def test_correct_loops_do_not_warn():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nrun 12 epochs\nschedule cosine to x0.01", model,
                               steps_per_epoch=5)
    assert _hand_loop(compiled, model, 60, schedule_every=5) == []
    compiled = specopt.compile("optimizer sgd lr=0.1\nrun 12 epochs\nschedule cosine to x0.01", model,
                               steps_per_epoch=1)  # full-batch training: one step per epoch
    assert _hand_loop(compiled, model, 12) == []
    compiled = specopt.compile("optimizer sgd lr=0.1\nrun 30 steps\nschedule cosine 30 steps", model)
    assert _hand_loop(compiled, model, 120, schedule_every=4, optimizer_every=4) == []


def test_a_few_skipped_steps_do_not_warn():
    """A GradScaler skips the first steps and then one now and then, while the loop steps the scheduler."""
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nschedule cosine 2000 steps", model)
    with schedule_warnings() as codes:
        for k in range(1000):
            if k >= 16 and k % 100:
                compiled.optimizer.step()
            compiled.scheduler.step()
    assert codes == []


def test_the_driver_warns_only_past_the_run():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\naccumulate 2\nrun 6 steps\nschedule cosine 6 steps", model)
    with schedule_warnings() as codes:
        for k in range(12):
            compiled.train_step(loss_of(model, k))
        compiled.end_epoch()
    assert codes == []
    with schedule_warnings() as codes:
        compiled.train_step(loss_of(model, 12))
        compiled.train_step(loss_of(model, 13))
    assert codes == ["W315"]


@pytest.mark.parametrize("driver", [True, False], ids=["step driver", "hand-written loop"])
def test_a_resumed_run_does_not_warn(driver):
    text = "optimizer sgd lr=0.1\nrun 40 steps\nschedule cosine 40 steps"
    first_model = make_net()
    first = specopt.compile(text, first_model)
    for k in range(20):
        first.train_step(loss_of(first_model, k))
    saved = first.state_dict()
    model = make_net()
    resumed = specopt.compile(text, model)
    resumed.load_state_dict(saved)
    with schedule_warnings() as codes:
        for k in range(20, 40):
            if driver:
                resumed.train_step(loss_of(model, k))
            else:
                resumed.optimizer.step()
                resumed.scheduler.step()
    assert codes == [] and resumed.scheduler.last_epoch == 40


def test_a_loop_that_validates_every_other_epoch_does_not_warn():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\nschedule plateau x0.5 patience 0", model)
    with schedule_warnings() as codes:
        for epoch in range(8):
            compiled.train_step(loss_of(model, epoch))
            compiled.end_epoch(metric=METRICS[epoch] if epoch % 2 == 0 else None)
    assert codes == [] and compiled.optimizer.param_groups[0]["lr"] < 0.1
