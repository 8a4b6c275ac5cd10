"""Powers in relative values: ``x0.75^3`` wherever a factor is allowed, kept as written by fmt."""

from __future__ import annotations

import math

import pytest

import specopt
from specopt.language.plan_data import dump_plan
from specopt.language.fmt import format_text
from specopt.plan.nodes import factor_value


@pytest.mark.parametrize("text, value", [
    ("x0.1", 0.1), ("x0.75^3", 0.421875), ("x0.5^-1", 2.0), ("x2^+2", 4.0), ("x0.1^2", 0.01),
    ("x4^0.5", 2.0), ("x1e-2^2", 1e-4), ("x0^0", 1.0), ("x10^400", math.inf), ("x0^-1", math.inf),
])
def test_a_factor_stands_for_its_power(text, value):
    assert factor_value(text) == value


def test_a_group_scales_by_the_power(seed_model):
    spec = specopt.parse("optimizer sgd lr=0.1\ngroup cnn lr=x0.75^3\ngroup classifier lr=x0.5^-1")
    resolution = spec.resolve(seed_model)
    assert resolution.param("cnn.VGG_16.convolution1_1.weight").settings["lr"].value == 0.0421875
    assert resolution.param("classifier.bias").settings["lr"].value == 0.2


def test_schedules_and_step_take_powers():
    plan = specopt.parse("step every 2 x0.5^2").plan
    assert plan.statements[0].gamma == 0.25
    phase = specopt.parse("schedule cosine 10 epochs to x0.1^2").plan.statements[0].phases[0]
    assert phase.arg("to").value.factor == 0.01


def test_fmt_keeps_the_power_as_written():
    assert format_text("group cnn  lr = x0.75^3\nstep every 2 x0.5^-1") == "group cnn lr=x0.75^3\nstep every 2 x0.5^-1\n"


def test_a_plan_as_data_keeps_the_resulting_factor():
    data = dump_plan(specopt.parse("group cnn lr=x0.75^3").plan)
    assert data["statements"][0]["options"][0]["value"] == {"factor": 0.421875}


@pytest.mark.parametrize("text, code, message", [
    ("group cnn lr=x10^400", "E207", "factor for 'lr' must be a finite number"),
    ("group cnn lr=x0^-1", "E207", "factor for 'lr' must be a finite number"),
    ("group cnn lr=x0.75^", "E100", "unexpected '^'; a power is ^ followed by a number, like x0.75^3"),
    ("group cnn lr=x0.75^a", "E100", "unexpected '^a'; a power is ^ followed by a number, like x0.75^3"),
    ("group cnn lr=x-0.5^2", "E100", "unexpected '-0.5^2'; a factor is x followed by a number, like x0.1"),
])
def test_bad_powers_are_reported(text, code, message):
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(text)
    assert [(d.code, d.message) for d in info.value.diagnostics] == [(code, message)]
