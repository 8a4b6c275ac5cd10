"""Plan validation: the messages of option checks and the clip modes a plan accepts."""

from __future__ import annotations

import math

import pytest

import specopt
from specopt.diagnostics import SpecError
from specopt.plan.plan import parse_clip_mode


def diagnostics(text: str) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        specopt.parse(text)
    return [(d.code, d.message) for d in info.value.diagnostics]


def test_a_relative_value_outside_a_group_says_where_it_belongs():
    assert diagnostics("optimizer adam lr=x0.1") == [
        ("E206", "a relative value (x0.1) is allowed only in group statements, for numeric keys")]


def test_a_relative_value_for_a_non_numeric_key_names_the_kind():
    assert diagnostics("group a betas=x0.5") == [
        ("E206", "a relative value (x0.5) is allowed only for numeric keys; 'betas' takes a tuple of "
                 "2 numbers, like (0.9, 0.9)")]


@pytest.mark.parametrize("text, message", [
    ("optimizer lbfgs max_iter=20.0", "'max_iter' takes a whole number, not 20.0"),
    ("optimizer lbfgs history_size=1e2", "'history_size' takes a whole number, not 100.0"),
    ("optimizer adam amsgrad=1.0", "'amsgrad' takes true or false, not 1.0"),
    ("optimizer adam lr=-0.25", "'lr' must be at least 0, got -0.25"),
    ("optimizer adam lr=-3", "'lr' must be at least 0, got -3"),
])
def test_values_are_shown_as_they_were_written(text, message):
    assert [m for _, m in diagnostics(text)] == [message]


@pytest.mark.parametrize("mode, p", [
    ("l2", 2.0), ("l1", 1.0), ("l3", 3.0), ("l1.5", 1.5), ("l10", 10.0), ("l0.5", 0.5),
    ("inf", math.inf), ("linf", math.inf), ("value", None),
])
def test_clip_modes(mode, p):
    assert parse_clip_mode(mode) == p
    assert specopt.parse(f"clip {mode} 1").plan.clip.norm_type == p


@pytest.mark.parametrize("mode", ["l1_0", "l1e1", "l2.", "l.5", "l0", "l0.0", "lnan", "linfinity",
                                  "l\u0662", "l" + "9" * 400, "L2", "l"])
def test_clip_modes_that_float_would_read_are_refused(mode):
    assert parse_clip_mode(mode) is None
    assert diagnostics(f"clip {mode} 1") == [("E211", f"unknown clip mode '{mode}'")]
