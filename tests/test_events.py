"""Moments on their clocks, E216 for a number nobody gave, and lr warmups composing with a scheduler."""

from __future__ import annotations

import pytest
import torch

import specopt
from loops import loss_of, make_net
from specopt.runtime.unfreezing import Ramps
from specopt.plan.timing import plan_timing


def events_of(text: str, **timing):
    compiled = specopt.compile(text, make_net(), **timing)
    return [(e.clock, e.at, e.ramp) for e in compiled.driver.board.events]


@pytest.mark.parametrize("text, timing, expected", [
    ("freeze head at epoch 3", {}, [("epoch", 3.0, None)]),
    ("freeze head at step 7", {}, [("step", 7.0, None)]),
    ("freeze head at 50%", {"epochs": 9}, [("epoch", 4.5, None)]),
    ("run 1000 steps; freeze head at 25%", {}, [("step", 250.0, None)]),
    ("unfreeze head at epoch 1 warmup 2 epochs", {"steps_per_epoch": 10}, [("epoch", 1.0, 20.0)]),
    ("unfreeze head at step 10 warmup 5%", {"epochs": 10, "steps_per_epoch": 100}, [("step", 10.0, 50.0)]),
])
def test_moments_and_warmups_in_their_units(text, timing, expected):
    assert events_of(text, **timing) == expected


@pytest.mark.parametrize("text, timing, message", [
    ("freeze head at 50%", {}, "50% is a share of the run, whose length nobody gave"),
    ("unfreeze head at step 3 warmup 1 epoch", {}, "a warmup counts optimizer steps: 1 epoch must be converted to "
                                                   "steps, but nobody gave the steps per epoch"),
    ("unfreeze head at step 3 warmup 10%", {"epochs": 5}, "a warmup counts optimizer steps: 10% of the run needs "
                                                          "the steps per epoch, which nobody gave"),
])
def test_a_number_nobody_gave_is_e216(text, timing, message):
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(text, make_net(), **timing)
    assert [(d.code, d.message) for d in info.value.diagnostics] == [("E216", message)]


def test_a_percent_moment_rounds_up_to_the_next_tick_of_its_clock():
    model = make_net()
    compiled = specopt.compile("freeze head at 50%", model, epochs=3)     # epoch 1.5: applies from epoch 2
    flags = []
    for _ in range(3):
        compiled.end_epoch()
        flags.append(model.head.weight.requires_grad)
    assert flags == [True, False, False]


def test_ramps_compose_with_a_chainable_scheduler():
    """StepLR reads group['lr']: the ramp never leaks into the scheduled values."""
    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [p]}], lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    ramps = Ramps(optimizer)
    ramps.start(0, 0, 4)
    seen = []
    for step in range(1, 7):
        optimizer.step()
        ramps.restore()
        scheduler.step()
        ramps.capture()
        ramps.apply(step)
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == [1.0 * 1 / 4, 0.5 * 2 / 4, 0.5 * 3 / 4, 0.25, 0.25, 0.125]
    assert not ramps.active


def test_timing_counted_in_another_unit():
    plan = specopt.parse("run 10 epochs; steps_per_epoch 50").plan
    timing = plan_timing(plan)
    assert timing.counted_in("step").run == 500 and timing.counted_in("epoch").run == 10


def test_a_freeze_at_a_point_drops_gradients_and_keeps_optimizer_state():
    model = make_net()
    compiled = specopt.compile("freeze head at step 2", model)
    for k in range(3):
        compiled.train_step(loss_of(model, k))
    assert model.head.weight.grad is None and compiled.optimizer.state[model.head.weight]
