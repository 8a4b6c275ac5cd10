"""Values computed from relative ones pass the same range checks as written ones."""

from __future__ import annotations

import pytest
import torch

import specopt


def model():
    return torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))


@pytest.mark.parametrize("text, message, at", [
    ("optimizer adadelta rho=0.9; group 1 rho=x2", "'rho' must be between 0 and 1, but x2 makes it 1.8", "x2"),
    ("optimizer adam lr=1e308; group 1 lr=x10", "'lr' must be a finite number, but x10 makes it inf", "x10"),
])
def test_a_relative_value_out_of_range_is_positioned_at_the_statement_that_made_it(text, message, at):
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(text, model())
    diag = info.value.diagnostics[0]
    assert (diag.code, diag.message) == ("E207", message)
    assert text[diag.span.start:diag.span.end] == at


def test_every_statement_that_makes_a_bad_value_is_reported():
    text = "optimizer sgd momentum=100; group 0 momentum=x1e308; group 1 momentum=x1e307"
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(text, model())
    assert [(d.code, text[d.span.start:d.span.end]) for d in info.value.diagnostics] == [
        ("E207", "x1e308"), ("E207", "x1e307")]


def test_the_model_is_unchanged_after_a_relative_value_error():
    m = model()
    with pytest.raises(specopt.SpecError):
        specopt.compile("freeze 0; optimizer adadelta rho=0.9; group 1 rho=x2", m)
    assert all(p.requires_grad for p in m.parameters())


def test_a_relative_value_in_range_compiles():
    compiled = specopt.compile("optimizer adadelta rho=0.45; group 1 rho=x2", model())
    assert [g["rho"] for g in compiled.optimizer.param_groups] == [0.45, 0.9]
