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
import sys
import warnings

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch.optim import lr_scheduler as L

from specopt.catalog.schedule_kinds import Level, program, X1
from specopt.runtime.scheduler import SpecScheduler

BASES = st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=3)
# An end factor is 0 or at least 1e-3: torch's recursive LinearLR cannot represent a ratio below an ulp
# (from x1 to x1e-186 in one step gives exactly 0).
END_FACTORS = st.one_of(st.just(0.0), st.floats(1e-3, 1.0))


def assert_close(ours: float, theirs: float, base: float, where: str = "") -> None:
    """Relative tolerance 1e-12; where ours is exactly 0, torch's residue must be below 1e-15 x base.

    Below the smallest normal double (2.2e-308) floats are subnormal and keep ever fewer digits: a
    generated momentum of 5e-324 is 0 after torch's ``(start - end) / 2``. Differences that small are none.
    """
    theirs = float(theirs)
    if ours == 0:
        assert abs(theirs) <= 1e-15 * base, f"{where}: ours 0, torch {theirs!r}"
    else:
        assert abs(ours - theirs) <= max(1e-12 * abs(ours), sys.float_info.min), \
            f"{where}: ours {ours!r}, torch {theirs!r}"


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


def _second(kind: str, length: int, value: float, smallest: float):
    """A torch scheduler and our phase for the part after a linear warmup (``value`` in [0, 1])."""
    if kind == "cosine":
        floor = 10 * value * smallest  # within 10x the smallest base: see the module's docstring
        return (lambda o: L.CosineAnnealingLR(o, length, eta_min=floor),
                ("cosine", length, {"to": Level(floor, False)}))
    if kind == "polynomial":
        return lambda o: L.PolynomialLR(o, length, 1 + value), ("polynomial", length, {"power": 1 + value})
    if kind == "step":
        return lambda o: L.StepLR(o, 7, 0.5), ("step", length, {"every": 7.0, "gamma": Level(0.5, True)})
    return (lambda o: L.ExponentialLR(o, 0.9 + value / 10),
            ("exponential", length, {"gamma": Level(0.9 + value / 10, True)}))


@given(BASES, st.floats(0.01, 1.0), st.integers(1, 100), st.sampled_from(["cosine", "polynomial", "step",
                                                                          "exponential"]),
       st.integers(1, 200), st.floats(0.0, 1.0))
@example([1e-6], 1.0, 1, "cosine", 1, 1.0)  # torch's closed form at the milestone, eta_min above the base
def test_linear_then_another_equals_sequentiallr(bases, start, warm, kind, length, value):
    make_second, phase = _second(kind, length, value, min(bases))

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
@example([1e-3], {"total": 20, "pct": 0.3, "div": 25.0, "final_div": 1e4, "three_phase": False,
                  "anneal": "cos", "base_momentum": 0.0, "max_momentum": 5e-324, "peak": X1}, "sgd")
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


# --- resuming ----------------------------------------------------------------------------------

GROUP_BASES = [1e-3, 0.02, 0.5]
RESUMED = {
    "every kind of boundary": ("sgd", [
        program(("warmup", 5, {}),
                ("cosine", 21, {"every": 3.0, "mult": 2.0, "decay": Level(0.5, True), "to": Level(0.05, True)}),
                ("step", 12, {"every": 5.0, "gamma": Level(0.5, True)}),
                ("exponential", None, {"gamma": Level(0.9, True)})),
        program(("linear", 8, {"from": Level(0.0, False), "to": Level(0.1, False)}),
                ("cosine", 20, {"to": Level(0.01, False)}), hyper="weight_decay")]),
    "onecycle with momentum": ("sgd", [
        program(("constant", 4, {"value": Level(0.1, True)}),
                ("onecycle", 30, {"three_phase": True, "anneal": "linear"}), ("polynomial", 10, {}))]),
    "beta2 and a plateau": ("adam", [
        program(("warmup", 4, {}), ("plateau", None, {"factor": Level(0.5, True), "patience": 1, "cooldown": 1,
                                                      "floor": Level(0.1, True)})),
        program(("linear", 10, {"from": Level(0.9, False), "to": Level(0.99, False)}), hyper="beta2")]),
}
METRIC_STREAM = [1.0, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7] * 5
STEPS = 50


def snapshot(optimizer) -> list:
    """Every scheduled value of every group, as a comparable list."""
    return [(g["lr"], g.get("weight_decay"), g.get("momentum"), tuple(g.get("betas", ()))) for g in optimizer.param_groups]


def run(kind, programs, start=0, state=None, stop=STEPS):
    """Step a fresh scheduler from ``start`` to ``stop`` (loading ``state`` first); values at each t, last state."""
    optimizer = make_optimizer(GROUP_BASES, kind)
    scheduler = SpecScheduler(optimizer, programs)
    if state is not None:
        scheduler.load_state_dict(state)
    seen = []
    for t in range(start, stop):
        seen.append(snapshot(optimizer))
        optimizer.step()
        scheduler.step(METRIC_STREAM[t] if scheduler.needs_metric else None)
    seen.append(snapshot(optimizer))
    return seen, scheduler.state_dict()


def stops(programs) -> list[int]:
    """Before, at and after every phase boundary (and every restart of the first program)."""
    from specopt.catalog.schedule_curves import Curve

    marks = {b for p in programs for b in Curve(p).boundaries} | {5 + 3, 5 + 9}
    return sorted({int(b) + d for b in marks for d in (-1, 0, 1)} & set(range(1, STEPS)))


@pytest.mark.parametrize("name", sorted(RESUMED))
def test_a_resumed_scheduler_continues_exactly(name):
    kind, programs = RESUMED[name]
    whole, _ = run(kind, programs)
    for stop in stops(programs):
        before, state = run(kind, programs, stop=stop)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            after, _ = run(kind, programs, start=stop, state=torch.load(buffer))
        assert before[:-1] + after == whole, f"stopped at {stop}"


def test_resuming_under_a_changed_schedule_warns_and_continues_at_the_same_time():
    old = [program(("warmup", 10, {}), ("cosine", 90, {}))]
    new = [program(("warmup", 10, {}), ("cosine", 190, {"to": Level(0.1, True)}))]
    _, state = run("sgd", old, stop=30)
    optimizer = make_optimizer(GROUP_BASES)
    scheduler = SpecScheduler(optimizer, new)
    with pytest.warns(UserWarning, match="the schedule changed since this state was saved: continuing at step 30"):
        scheduler.load_state_dict(state)
    from specopt.catalog.schedule_curves import Curve

    expected = Curve(new[0]).values(30, GROUP_BASES)
    assert scheduler.last_epoch == 30 and [g["lr"] for g in optimizer.param_groups] == expected
    assert scheduler.get_last_lr() == expected


def test_a_state_that_is_not_ours_is_refused():
    scheduler = SpecScheduler(make_optimizer(GROUP_BASES), [program(("warmup", 10, {}))])
    with pytest.raises(ValueError, match="not a SpecScheduler state"):
        scheduler.load_state_dict(L.StepLR(make_optimizer(GROUP_BASES), 3).state_dict())


def test_the_plateau_state_travels_with_the_checkpoint():
    programs = RESUMED["beta2 and a plateau"][1]
    _, state = run("adam", programs, stop=20)
    assert state["plateau"]["lr"]["reductions"] > 0
    fresh = SpecScheduler(make_optimizer(GROUP_BASES, "adam"), programs)
    fresh.load_state_dict(copy.deepcopy(state))
    assert fresh.state_dict() == state


# --- behaving as a torch scheduler ---------------------------------------------------------------

def test_it_is_an_lrscheduler_with_torchs_bookkeeping():
    optimizer = make_optimizer(GROUP_BASES)
    scheduler = SpecScheduler(optimizer, [program(("warmup", 4, {"from": Level(0.5, True)}))])
    assert isinstance(scheduler, L.LRScheduler)
    assert scheduler.last_epoch == 0 and scheduler._step_count == 1
    assert scheduler.get_last_lr() == [b / 2 for b in GROUP_BASES] == [g["lr"] for g in optimizer.param_groups]
    assert [g["initial_lr"] for g in optimizer.param_groups] == GROUP_BASES
    with pytest.warns(UserWarning, match=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`"):
        scheduler.step()
    optimizer.step()
    scheduler.step()
    assert scheduler.last_epoch == 2 and scheduler.get_last_lr() == [b * 0.75 for b in GROUP_BASES]
    assert scheduler.get_lr() == scheduler.get_last_lr()


def test_a_second_scheduler_on_the_same_optimizer_keeps_the_bases():
    optimizer = make_optimizer(GROUP_BASES)
    programs = [program(("warmup", 4, {}))]
    SpecScheduler(optimizer, programs)
    assert [g["lr"] for g in optimizer.param_groups] == [0.0] * 3
    again = SpecScheduler(optimizer, programs)
    assert again.bases["lr"] == GROUP_BASES and again.values_at(4)["lr"] == GROUP_BASES


def test_other_hyperparameters_follow_their_programs_and_betas_keep_their_other_element():
    optimizer = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": b, "weight_decay": w}
                                   for b, w in ((1e-3, 0.1), (1e-2, 0.0))], betas=(0.9, 0.95))
    scheduler = SpecScheduler(optimizer, [
        program(("cosine", 10, {"from": Level(0.04, False), "to": Level(0.4, False)}), hyper="weight_decay"),
        program(("linear", 10, {"from": Level(0.85, False), "to": Level(0.95, False)}), hyper="beta1"),
        program(("constant", None, {"value": Level(0.5, True)}), hyper="beta2")])
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.4, 0.4]
    assert [g["betas"] for g in optimizer.param_groups] == [(0.95, 0.475)] * 2
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-2]  # no lr program: left alone
    assert scheduler.values_at(0) == {"weight_decay": [0.04, 0.04], "beta1": [0.85, 0.85], "beta2": [0.475, 0.475]}


def test_tensor_values_are_filled_in_place():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=torch.tensor(0.01), betas=(torch.tensor(0.9), torch.tensor(0.99)))
    lr, beta1 = optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["betas"][0]
    scheduler = SpecScheduler(optimizer, [program(("warmup", 2, {})),
                                          program(("linear", 2, {"to": Level(0.5, True)}), hyper="beta1")])
    optimizer.step()
    scheduler.step()
    group = optimizer.param_groups[0]
    assert group["lr"] is lr and float(lr) == pytest.approx(0.005) and group["betas"][0] is beta1
    assert float(beta1) == pytest.approx(0.9 * 0.75)


@pytest.mark.parametrize("make, programs, words", [
    (lambda: make_optimizer([1.0]), [program(("warmup", 2, {})), program(("cosine", 2, {}))],
     "more than one schedule for lr"),
    (lambda: make_optimizer([1.0], "adam"), [program(("warmup", 2, {}), hyper="momentum")],
     "no param group has 'momentum' to schedule"),
    (lambda: make_optimizer([1.0]), [program(("warmup", 2, {}), hyper="beta1")], "no param group has .beta1."),
    (lambda: torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))]), [program(("onecycle", 10, {}))],
     "onecycle moves momentum or beta1 .cycle_momentum., but the optimizer has neither; write cycle_momentum false"),
    (lambda: make_optimizer([1.0]), [program(("onecycle", 10, {})), program(("warmup", 2, {}), hyper="momentum")],
     "another schedule sets momentum"),
])
def test_programs_that_cannot_run_on_the_optimizer_are_refused(make, programs, words):
    with pytest.raises(ValueError, match=words):
        SpecScheduler(make(), programs)


def test_onecycle_without_cycle_momentum_runs_on_any_optimizer():
    optimizer = torch.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = SpecScheduler(optimizer, [program(("onecycle", 10, {"cycle_momentum": False}))])
    assert scheduler.get_last_lr() == [pytest.approx(0.1 / 25)]


def test_metrics_count_only_while_the_plateau_runs():
    optimizer = make_optimizer([1.0])
    scheduler = SpecScheduler(optimizer, [program(("warmup", 3, {"from": Level(0.5, True)}),
                                                  ("plateau", None, {"patience": 0, "factor": Level(0.5, True)}))])
    assert scheduler.needs_metric and scheduler.monitor == "val_loss"
    for metric in (5.0, 5.0, 5.0):  # during the warmup: ignored
        optimizer.step()
        scheduler.step(metric)
    assert optimizer.param_groups[0]["lr"] == 1.0
    for metric in (5.0, 5.0, None, 5.0):
        optimizer.step()
        scheduler.step(metric)
    assert optimizer.param_groups[0]["lr"] == 0.25 and scheduler.last_epoch == 7


def test_a_metric_without_a_plateau_warns_once():
    optimizer = make_optimizer([1.0])
    scheduler = SpecScheduler(optimizer, [program(("warmup", 3, {}))])
    optimizer.step()
    with pytest.warns(UserWarning, match="no plateau phase: the metric passed to step\\(\\) is ignored"):
        scheduler.step(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.step()
        scheduler.step(1.0)


def _lightning():
    try:
        import lightning.pytorch as pl
    except Exception as exc:  # noqa: BLE001 - a broken install (torchvision for another torch) is as good as none
        pytest.skip(f"lightning cannot be imported here: {type(exc).__name__}: {exc}")
    return pl


def test_lightning_steps_the_schedule_and_feeds_the_plateau(tmp_path):
    pl = _lightning()
    seen = []
    programs = [program(("warmup", 2, {}), ("cosine", 2, {})), program(("plateau", None, {
        "patience": 0, "factor": Level(0.5, True), "monitor": "loss"}), hyper="weight_decay")]

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, index):
            group = self.trainer.optimizers[0].param_groups[0]
            if index == 0:
                seen.append((group["lr"], group["weight_decay"]))
            self.log("loss", 1.0, on_step=False, on_epoch=True)
            return self.layer(batch).sum()

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
            scheduler = SpecScheduler(optimizer, programs, unit="epoch")
            return {"optimizer": optimizer, "lr_scheduler": {
                "scheduler": scheduler, "interval": "epoch", "reduce_on_plateau": scheduler.needs_metric,
                "monitor": scheduler.monitor}}

    loader = torch.utils.data.DataLoader(torch.randn(4, 2), batch_size=2)
    trainer = pl.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(Module(), loader)
    from specopt.catalog.schedule_curves import Curve

    lrs = [Curve(programs[0]).values(t, [0.1])[0] for t in range(4)]
    assert seen == list(zip(lrs, [0.01, 0.01, 0.005, 0.0025]))


def test_the_unit_is_a_step_or_an_epoch():
    with pytest.raises(ValueError, match="unit must be 'step' or 'epoch', not 'batch'"):
        SpecScheduler(make_optimizer([1.0]), [], unit="batch")
