"""SpecScheduler gives torch's values where torch has the same schedule, resumes exactly, and behaves as an LRScheduler.

Exactness: every value is compared with torch's at every step of the phase's
defined range, with a relative tolerance of 1e-12 (:func:`assert_close`). The
one allowance: where our closed form is exactly 0, torch's recursive
(chainable) forms may leave a rounding residue of a few ulps of the group's
base (LinearLR ending at 0 leaves ~1e-17 x base), which must stay below
1e-15 x base. torch's recursive forms drift by about one ulp per step (LinearLR
reaches 1e-12 after ~10,000 steps), so generated lengths stay at or below a few
hundred steps. torch's cosine expression ``eta_min + (base - eta_min) * c``
loses digits when ``eta_min`` is far above ``base`` (its recursive and closed
forms then disagree with each other beyond 1e-12), so generated absolute floors
stay within 10x the smallest base.
"""

from __future__ import annotations

import copy
import io
import math
import warnings

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as L

from specopt.schedules import X1, Level, PhaseSpec, Program
from specopt.scheduler import SpecScheduler

BASES = st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=3)
# An end factor is 0 or at least 1e-3: torch's recursive LinearLR cannot represent a ratio below an ulp
# (from x1 to x1e-186 in one step gives exactly 0).
END_FACTORS = st.one_of(st.just(0.0), st.floats(1e-3, 1.0))


def assert_close(ours: float, theirs: float, base: float, where: str = "") -> None:
    """Relative tolerance 1e-12; where ours is exactly 0, torch's residue must be below 1e-15 x base."""
    theirs = float(theirs)
    if ours == 0:
        assert abs(theirs) <= 1e-15 * base, f"{where}: ours 0, torch {theirs!r}"
    else:
        assert abs(ours - theirs) <= 1e-12 * abs(ours), f"{where}: ours {ours!r}, torch {theirs!r}"


def make_optimizer(bases, kind: str = "sgd") -> torch.optim.Optimizer:
    """One param group per base learning rate (SGD with momentum, or Adam with betas)."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": b} for b in bases]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=1.0, betas=(0.9, 0.999))
    return torch.optim.SGD(groups, lr=1.0, momentum=0.9, weight_decay=0.01)


def read(group, key: str) -> float:
    return float(group["betas"][0] if key == "beta1" else group[key])


def side_by_side(make_torch, programs, bases, steps, kind="sgd", keys=("lr",), metrics=None):
    """Run torch's scheduler and ours in step; compare every key of every group at t = 0..steps."""
    theirs_opt, ours_opt = make_optimizer(bases, kind), make_optimizer(bases, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, ours = make_torch(theirs_opt), SpecScheduler(ours_opt, programs)
        for t in range(steps + 1):
            for key in keys:
                for k, (a, b) in enumerate(zip(ours_opt.param_groups, theirs_opt.param_groups)):
                    assert_close(read(a, key), read(b, key), bases[k], f"t={t} {key} group {k}")
            if t == steps:
                break
            theirs_opt.step()
            ours_opt.step()
            args = () if metrics is None else (metrics[t],)
            theirs.step(*args)
            ours.step(*args)
    assert ours.last_epoch == steps and ours.get_last_lr() == [g["lr"] for g in ours_opt.param_groups]


def program(*phases: tuple, hyper: str = "lr") -> Program:
    """A program from (kind, length, args) triples, back to back from 0."""
    out, start = [], 0.0
    for kind, length, args in phases:
        out.append(PhaseSpec(kind, start, length, args))
        start += length or 0.0
    return Program(hyper, tuple(out))


@given(BASES, st.floats(0.01, 1.0), END_FACTORS, st.integers(1, 400))
@example([1e-3, 0.5], 0.3, 0.0, 50)
@example([1.0], 0.3773722081679811, 0.0, 103)  # the closed form must end at exactly 0, not -5.6e-17
def test_linear_equals_linearlr(bases, start, end, length):
    side_by_side(lambda o: L.LinearLR(o, start, end, length),
                 [program(("linear", length, {"from": Level(start, True), "to": Level(end, True)}))],
                 bases, length + 5)


@given(BASES, st.floats(0.01, 1.0), st.integers(1, 300))
def test_warmup_equals_linearlr_to_the_base(bases, start, length):
    side_by_side(lambda o: L.LinearLR(o, start, 1.0, length),
                 [program(("warmup", length, {"from": Level(start, True)}))], bases, length + 5)


@given(BASES, st.integers(1, 400), st.floats(0.0, 10.0))
def test_cosine_equals_cosineannealinglr(bases, length, floor):
    floor *= min(bases)
    side_by_side(lambda o: L.CosineAnnealingLR(o, length, eta_min=floor),
                 [program(("cosine", length, {"to": Level(floor, False)}))], bases, length)


@given(BASES, st.integers(1, 40), st.integers(1, 3), st.floats(0.0, 10.0), st.integers(1, 300))
@example([0.1], 3, 2, 0.0, 100)  # restarts at 3, 9, 21, 45, 93: the logarithm must land on each exactly
def test_cosine_every_equals_warm_restarts(bases, period, mult, floor, steps):
    floor *= min(bases)
    side_by_side(lambda o: L.CosineAnnealingWarmRestarts(o, period, mult, eta_min=floor),
                 [program(("cosine", None, {"to": Level(floor, False), "every": float(period),
                                            "mult": float(mult)}))], bases, steps)


@given(BASES, st.integers(1, 40), st.floats(0.1, 2.0), st.integers(1, 200))
def test_step_equals_steplr(bases, every, gamma, steps):
    side_by_side(lambda o: L.StepLR(o, every, gamma),
                 [program(("step", None, {"every": float(every), "gamma": Level(gamma, True)}))], bases, steps)


@given(BASES, st.lists(st.integers(1, 150), min_size=1, max_size=6), st.floats(0.1, 2.0))
@example([1.0], [5, 5, 9], 0.5)  # a repeated milestone applies gamma twice
def test_multistep_equals_multisteplr(bases, milestones, gamma):
    milestones = sorted(milestones)
    at = tuple(float(m) for m in milestones)
    side_by_side(lambda o: L.MultiStepLR(o, milestones, gamma),
                 [program(("multistep", None, {"at": at, "gamma": Level(gamma, True)}))], bases, 160)


@given(BASES, st.floats(0.9, 1.1), st.integers(1, 400))
def test_exponential_equals_exponentiallr(bases, gamma, steps):
    side_by_side(lambda o: L.ExponentialLR(o, gamma),
                 [program(("exponential", None, {"gamma": Level(gamma, True)}))], bases, steps)


@given(BASES, st.integers(1, 400), st.floats(0.1, 5.0))
def test_polynomial_equals_polynomiallr(bases, length, power):
    side_by_side(lambda o: L.PolynomialLR(o, length, power),
                 [program(("polynomial", length, {"power": power}))], bases, length + 5)


@given(BASES, st.floats(0.01, 1.0), st.integers(1, 100))
def test_constant_then_constant_x1_equals_constantlr(bases, factor, length):
    side_by_side(lambda o: L.ConstantLR(o, factor, length),
                 [program(("constant", length, {"value": Level(factor, True)}),
                          ("constant", None, {"value": X1}))], bases, length + 5)


def _second(kind: str, length: int, value: float):
    """A torch scheduler and our phase for the part after a linear warmup."""
    if kind == "cosine":
        return (lambda o: L.CosineAnnealingLR(o, length, eta_min=value),
                ("cosine", length, {"to": Level(value, False)}))
    if kind == "polynomial":
        return lambda o: L.PolynomialLR(o, length, 1 + value), ("polynomial", length, {"power": 1 + value})
    if kind == "step":
        return lambda o: L.StepLR(o, 7, 0.5), ("step", length, {"every": 7.0, "gamma": Level(0.5, True)})
    return (lambda o: L.ExponentialLR(o, 0.9 + value / 10),
            ("exponential", length, {"gamma": Level(0.9 + value / 10, True)}))


@given(BASES, st.floats(0.01, 1.0), st.integers(1, 100), st.sampled_from(["cosine", "polynomial", "step",
                                                                          "exponential"]),
       st.integers(1, 200), st.floats(0.0, 1.0))
def test_linear_then_another_equals_sequentiallr(bases, start, warm, kind, length, value):
    make_second, phase = _second(kind, length, value)

    def make(o):
        first = L.LinearLR(o, start, 1.0, warm)
        return L.SequentialLR(o, [first, make_second(o)], [warm])
    side_by_side(make, [program(("linear", warm, {"from": Level(start, True)}), phase)], bases, warm + length)


ONECYCLE = st.fixed_dictionaries({
    "total": st.integers(2, 300), "pct": st.floats(0.01, 0.99), "div": st.floats(1.0, 100.0),
    "final_div": st.floats(1.0, 1e5), "three_phase": st.booleans(), "anneal": st.sampled_from(["cos", "linear"]),
    "base_momentum": st.floats(0.0, 1.0), "max_momentum": st.floats(0.0, 1.0),
    "peak": st.one_of(st.floats(0.1, 10.0).map(lambda v: Level(v, True)),
                      st.floats(1e-4, 1.0).map(lambda v: Level(v, False)))})


@given(BASES, ONECYCLE, st.sampled_from(["sgd", "adam"]))
@example([1e-3, 0.5], {"total": 20, "pct": 0.3, "div": 25.0, "final_div": 1e4, "three_phase": True,
                       "anneal": "cos", "base_momentum": 0.85, "max_momentum": 0.95, "peak": X1}, "adam")
def test_onecycle_equals_onecyclelr_with_momentum(bases, a, kind):
    total, pct = a["total"], a["pct"]
    if float(pct * total) in (1.0, 2.0) or (a["three_phase"] and float(2 * pct * total) - 2 == float(pct * total) - 1):
        return  # torch divides by zero there (a part of length 0)
    peak = a["peak"]
    max_lr = [peak.of(b) for b in bases]
    args = {"peak": peak, "pct": pct, "div": a["div"], "final_div": a["final_div"], "anneal": a["anneal"],
            "three_phase": a["three_phase"], "base_momentum": a["base_momentum"],
            "max_momentum": a["max_momentum"]}

    def make(o):
        return L.OneCycleLR(o, max_lr, total, pct_start=pct, anneal_strategy=a["anneal"],
                            base_momentum=a["base_momentum"], max_momentum=a["max_momentum"],
                            div_factor=a["div"], final_div_factor=a["final_div"], three_phase=a["three_phase"])
    keys = ("lr", "beta1" if kind == "adam" else "momentum")
    side_by_side(make, [program(("onecycle", total, args))], bases, total - 1, kind, keys)


PLATEAU = st.fixed_dictionaries({
    "mode": st.sampled_from(["min", "max"]), "threshold_mode": st.sampled_from(["rel", "abs"]),
    "threshold": st.sampled_from([0.0, 1e-4, 0.05]), "patience": st.integers(0, 4),
    "cooldown": st.integers(0, 3), "factor": st.floats(0.05, 0.95), "eps": st.sampled_from([0.0, 1e-8, 1e-3]),
    "floor": st.one_of(st.sampled_from([0.0, 1e-4]).map(lambda v: Level(v, False)),
                       st.floats(0.0, 0.5).map(lambda v: Level(v, True)))})
METRICS = st.lists(st.sampled_from([1.0, 0.99, 0.5, 0.4999, 2.0, 0.1, -1.0]), min_size=1, max_size=60)


@given(BASES, PLATEAU, METRICS)
@example([1e-3, 0.5], {"mode": "min", "threshold_mode": "rel", "threshold": 1e-4, "patience": 0, "cooldown": 1,
                       "factor": 0.5, "eps": 1e-3, "floor": Level(0.1, True)}, [1.0] * 12)
def test_plateau_equals_reducelronplateau(bases, a, metrics):
    floor = a["floor"]
    min_lr = [floor.of(b) for b in bases]
    args = {**{k: v for k, v in a.items() if k != "factor"}, "factor": Level(a["factor"], True)}

    def make(o):
        return L.ReduceLROnPlateau(o, a["mode"], a["factor"], a["patience"], a["threshold"], a["threshold_mode"],
                                   a["cooldown"], min_lr, a["eps"])
    side_by_side(make, [program(("plateau", None, args))], bases, len(metrics), metrics=metrics)
