"""The table of schedule kinds and their closed forms: complete, continuous, and equal to their formulas.

Kinds that torch also has are compared with torch in ``test_scheduler.py``;
here every kind is compared with its formula written out independently, over
several param groups with different bases, and the array evaluation used for
previews is compared with the scalar one the scheduler uses.
"""

from __future__ import annotations

import importlib.util
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import ROOT
from processes import run_code
from specopt.catalog.schedule_curves import CLOSED_FORMS, Curve, boundaries, cycle, phase_levels, value_at, values
from specopt.catalog.registry import KNOWN_BOUNDS, check_bounds
from specopt.catalog.schedule_kinds import (ARG_KINDS, SCHEDULE_KINDS, X0, X1, Level, Mix, PhaseSpec, Program, cycled_hyper,
                               fingerprint, hyper_value, program)

BASES = st.lists(st.floats(1e-6, 10.0), min_size=2, max_size=4)
LEVELS = st.one_of(st.floats(0.0, 2.0).map(lambda v: Level(v, True)), st.floats(0.0, 1.0).map(lambda v: Level(v, False)))


def close(a: float, b: float, scale: float = 0.0) -> bool:
    """Relative tolerance 1e-12 (plus 1e-12 x ``scale`` where a formula subtracts values of that size)."""
    return abs(a - b) <= 1e-12 * max(abs(a), abs(b), scale)


# --- the table --------------------------------------------------------------------------------

def test_every_kind_has_a_closed_form_and_every_form_a_kind():
    assert set(CLOSED_FORMS) == set(SCHEDULE_KINDS)


@pytest.mark.parametrize("name", sorted(SCHEDULE_KINDS))
def test_declarations_are_well_formed(name):
    kind = SCHEDULE_KINDS[name]
    assert kind.name == name and kind.summary and kind.formula and kind.example.startswith("schedule ")
    assert kind.positional is None or kind.arg(kind.positional) is not None
    assert all(kind.arg(a) is not None for a in kind.open_with)
    for arg in kind.args:
        assert arg.kind in ARG_KINDS and arg.bounds in KNOWN_BOUNDS and arg.summary
        assert (arg.kind == "choice") == bool(arg.choices)
        if arg.kind == "choice":
            assert arg.default in arg.choices
        default = arg.default.value if isinstance(arg.default, Level) else arg.default
        assert check_bounds(arg.bounds, default) is None, f"{name}.{arg.name} default {default}"


def test_importing_the_table_and_the_closed_forms_needs_no_torch():
    code = "import sys, specopt.catalog.schedule_curves, specopt.catalog.schedule_kinds; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = run_code(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_mix_is_absolute_plus_relative_times_the_base():
    half = Mix.of_level(Level(0.5, True)) + Mix.of_level(Level(1e-6, False))
    assert half.of(2.0) == 1.000001 and half.level() is None and str(half) == "x0.5 + 1e-06"
    assert Mix.of_level(X1).level() == X1 and str(Mix(0.1, 0.0)) == "0.1"
    assert (Mix(1.0, 2.0) * 3 - Mix(1.0, 1.0)) / 2 == Mix(1.0, 2.5)


def test_fingerprint_changes_with_any_argument():
    a = program(("linear", 10, {"from": Level(0.1, True)}), ("cosine", 90, {}))
    b = program(("linear", 10, {"from": Level(0.1, False)}), ("cosine", 90, {}))
    assert fingerprint([a]) == fingerprint([program(("linear", 10, {"from": Level(0.1, True)}), ("cosine", 90, {}))])
    assert len({fingerprint([a]), fingerprint([b]), fingerprint([a, b]), fingerprint([])}) == 4


def test_group_values_by_name():
    group = {"lr": 0.1, "betas": (0.9, 0.99), "weight_decay": 0.0, "amsgrad": False}
    assert [hyper_value(group, h) for h in ("lr", "beta1", "beta2", "weight_decay")] == [0.1, 0.9, 0.99, 0.0]
    for hyper, words in (("momentum", "no option 'momentum'"), ("amsgrad", "not a number")):
        with pytest.raises(ValueError, match=words):
            hyper_value(group, hyper)
    assert cycled_hyper(group) == "beta1" and cycled_hyper({"momentum": 0}) == "momentum"
    assert cycled_hyper({"lr": 1}) is None


# --- each kind against its formula -------------------------------------------------------------

def each(prog: Program, bases, ts, expected) -> None:
    """Every group's value at every time equals ``expected(t, base)``, through every entry point.

    Formulas such as ``floor + (start - floor) * c`` subtract levels, so the
    tolerance is relative to the largest level of the group, not only to the value.
    """
    curve = Curve(prog)
    for t in ts:
        got = curve.values(t, bases)
        for b, v in zip(bases, got):
            want, scale = expected(t, b), _largest_level(prog, b)
            assert close(v, want, scale), f"t={t} base={b}: {v!r} != {want!r}"
            assert close(value_at(prog, b, t), want, scale) and close(curve.at(t).of(b), want, scale)


def _largest_level(prog: Program, base: float) -> float:
    levels = [v for p in prog.phases for v in p.args.values() if isinstance(v, Level)]
    return max([base] + [level.of(base) for level in levels])


@given(BASES, LEVELS, LEVELS, st.integers(1, 300))
def test_linear_from_to(bases, start, end, length):
    each(program(("linear", length, {"from": start, "to": end})), bases, range(0, length + 5, 7),
         lambda t, b: start.of(b) + (end.of(b) - start.of(b)) * min(t, length) / length)


@given(BASES, st.integers(1, 100), st.integers(1, 300))
def test_warmup_from_zero_to_the_base(bases, warm, steps):
    each(program(("warmup", warm, {}), ("constant", None, {})), bases, range(0, steps),
         lambda t, b: b * min(t, warm) / warm)


@given(BASES, st.integers(1, 200), LEVELS, LEVELS)
def test_cosine_with_relative_and_absolute_floors(bases, length, start, floor):
    each(program(("cosine", length, {"from": start, "to": floor})), bases, range(0, length + 3, 3),
         lambda t, b: floor.of(b) + (start.of(b) - floor.of(b)) * (1 + math.cos(math.pi * min(t, length) / length)) / 2)


def _restart_reference(t, period, mult, decay, top, floor):
    """SGDR with a peak multiplied by ``decay`` after each restart, one cycle at a time."""
    n, begin, span = 0, 0, period
    while t >= begin + span:
        n, begin, span = n + 1, begin + span, span * mult
    peak = top * decay ** n
    return floor + (peak - floor) * (1 + math.cos(math.pi * (t - begin) / span)) / 2


@given(BASES, st.integers(1, 30), st.sampled_from([1.0, 2.0, 3.0, 1.5]), st.floats(0.2, 1.0), LEVELS,
       st.integers(1, 400))
@example([1.0, 0.1], 3, 2.0, 0.5, Level(0.0, True), 100)
def test_cosine_restarts_with_decay_per_cycle(bases, period, mult, decay, floor, steps):
    prog = program(("cosine", None, {"to": floor, "every": float(period), "mult": mult, "decay": Level(decay, True)}))
    each(prog, bases, range(steps),
         lambda t, b: _restart_reference(t, period, mult, decay, b, floor.of(b)))


@pytest.mark.parametrize("mult", [2.0, 3.0, 1.5])  # periods exact in binary
def test_restarts_fall_on_the_exact_step(mult):
    begin, span = 0.0, 7.0
    for n in range(12):
        for t in (begin, begin + span - 1):
            got = cycle(t, 7.0, mult)
            assert got[0] == n and got[1] == t - begin and got[2] == span
        begin, span = begin + span, span * mult


@given(BASES, st.integers(1, 50), st.floats(0.1, 2.0), st.lists(st.integers(0, 100), max_size=5),
       st.floats(0.9, 1.1), st.integers(1, 20))
def test_multiplicative_kinds(bases, every, gamma, at, rate, interval):
    each(program(("step", None, {"every": float(every), "gamma": Level(gamma, True)})), bases, range(0, 200, 3),
         lambda t, b: b * gamma ** (t // every))
    if at:
        each(program(("multistep", None, {"at": tuple(float(m) for m in at), "gamma": Level(gamma, True)})),
             bases, range(0, 120, 3), lambda t, b: b * gamma ** sum(t >= m for m in at))
    each(program(("exponential", None, {"gamma": Level(rate, True), "every": float(interval)})), bases,
         range(0, 200, 3), lambda t, b: b * rate ** (t / interval))


@given(BASES, st.integers(1, 200), st.floats(0.1, 4.0), LEVELS)
def test_polynomial(bases, length, power, floor):
    each(program(("polynomial", length, {"power": power, "to": floor})), bases, range(0, length + 3, 3),
         lambda t, b: floor.of(b) + (b - floor.of(b)) * (1 - min(t, length) / length) ** power)


@given(BASES, st.integers(1, 500), st.integers(0, 3000))
def test_inverse_sqrt_after_a_warmup_is_the_peak_times_sqrt_warmup_over_t(bases, warm, extra):
    prog = program(("warmup", warm, {}), ("inverse_sqrt", None, {}))
    t = warm + extra
    each(prog, bases, [t], lambda t, b: b * math.sqrt(warm / t))


@given(BASES, st.floats(1.0, 1000.0), st.integers(0, 3000))
def test_inverse_sqrt_with_a_timescale(bases, scale, t):
    each(program(("inverse_sqrt", None, {"timescale": scale})), bases, [t],
         lambda t, b: b * math.sqrt(scale / (scale + t)))


def test_constant_holds_where_it_starts_or_the_factor_given():
    prog = program(("linear", 10, {"from": X1, "to": Level(0.5, True)}), ("constant", 10, {}),
                   ("constant", None, {"value": Level(0.1, True)}))
    each(prog, [1.0, 4.0], range(10, 40), lambda t, b: b * (0.5 if t < 20 else 0.1))


def test_plateau_holds_its_start_and_reduces_by_count():
    prog = program(("warmup", 5, {}), ("plateau", None, {"factor": Level(0.5, True), "floor": Level(0.2, True),
                                                         "eps": 0.0}))
    assert value_at(prog, 2.0, 100) == 2.0
    assert [value_at(prog, 2.0, 100, r) for r in range(4)] == [2.0, 1.0, 0.5, 0.4]
    assert value_at(prog, 2.0, 3, reductions=3) == 1.2  # still warming up


def test_onecycle_peaks_at_pct_and_ends_at_peak_over_div_over_final_div():
    prog = program(("onecycle", 100, {"peak": Level(2.0, True), "pct": 0.25, "div": 10.0, "final_div": 100.0}))
    curve = Curve(prog)
    assert close(curve.at(0).of(1.0), 0.2) and close(curve.at(24).of(1.0), 2.0)
    assert close(curve.at(99).of(1.0), 0.002) and curve.at(500) == curve.at(99) == curve.ends[0]


def test_onecycle_momentum_holds_its_maximum_outside_the_cycle():
    prog = program(("constant", 10, {}), ("onecycle", 100, {"base_momentum": 0.8, "max_momentum": 0.9}),
                   ("polynomial", 10, {}))
    momentum = Curve(prog, "momentum", "beta1")
    assert momentum.hyper == "beta1" and momentum.boundaries == (0.0, 10.0, 110.0, 120.0)
    assert [momentum.at(t) for t in (0, 9, 10, 109, 115, 500)] == [Mix(0.9, 0.0)] * 6
    assert close(momentum.at(10 + 29).absolute, 0.8)


# --- programs: continuity, holding, errors -----------------------------------------------------

def test_phases_continue_where_the_previous_ended_unless_from_is_given():
    prog = program(("linear", 10, {"from": Level(0.01, True), "to": Level(0.5, True)}),
                   ("exponential", 10, {"gamma": Level(0.5, True)}),
                   ("cosine", 10, {"from": Level(1e-3, False), "to": X0}))
    levels = phase_levels(prog)
    assert levels[0] == (Mix(0.0, 0.01), Mix(0.0, 0.5))
    assert levels[1][0] == Mix(0.0, 0.5) and levels[1][1] == Mix(0.0, 0.5 * 0.5 ** 10)
    assert levels[2] == (Mix(1e-3, 0.0), Mix(0.0, 0.0))
    assert boundaries(prog) == (0.0, 10.0, 20.0, 30.0)


def test_the_value_holds_after_the_last_phase():
    prog = program(("warmup", 10, {}), ("cosine", 90, {"to": Level(0.1, True)}))
    curve = Curve(prog)
    assert curve.end_time == 100.0
    assert curve.at(100) == curve.at(10**9) == Mix(0.0, 0.1)


@pytest.mark.parametrize("phases, words", [
    ([("warp", 5, {})], "unknown schedule kind 'warp'"),
    ([], "no phases"),
    ([("linear", None, {})], "linear needs a length"),
    ([("cosine", None, {}), ("constant", None, {})], "needs a length"),
    ([("plateau", 10, {}), ("constant", None, {})], "plateau must be the last phase"),
    ([("inverse_sqrt", None, {})], "needs a timescale"),
    ([("step", None, {"gamma": Level(0.1, True)})], "step needs 'every'"),
    ([("step", None, {"every": 3.0, "gamma": Level(0.1, False)})], "'gamma' is a factor"),
    ([("linear", 10, {"to": 0.5})], "'to' must be a Level"),
    ([("multistep", None, {"gamma": Level(0.1, True)})], "needs 'at'"),
])
def test_programs_that_cannot_run_say_why(phases, words):
    with pytest.raises(ValueError, match=words):
        Curve(program(*phases))


def test_phases_must_run_back_to_back_from_zero():
    with pytest.raises(ValueError, match="starts at 5"):
        Curve(Program("lr", (PhaseSpec("constant", 5, None),)))
    with pytest.raises(ValueError, match="starts at 12.*not where linear ends \\(10"):
        Curve(Program("lr", (PhaseSpec("linear", 0, 10), PhaseSpec("constant", 12, None))))


# --- arrays of times ---------------------------------------------------------------------------

@st.composite
def _phase(draw, kind: str, last: bool):
    """One phase of ``kind``: (kind, length, args); open-ended only where the kind allows it, and last."""
    length = st.integers(1, 200).map(float)
    factor = st.floats(0.2, 1.5).map(lambda v: Level(v, True))
    args = draw({
        "constant": st.fixed_dictionaries({}, optional={"value": factor}),
        "linear": st.fixed_dictionaries({"to": LEVELS}, optional={"from": LEVELS}),
        "warmup": st.fixed_dictionaries({"from": LEVELS}),
        "cosine": st.fixed_dictionaries({"to": LEVELS}, optional={"from": LEVELS, "every": length,
                                                                 "mult": st.sampled_from([1.0, 2.0, 1.5]),
                                                                 "decay": factor}),
        "step": st.fixed_dictionaries({"every": length, "gamma": factor}),
        "multistep": st.fixed_dictionaries({"at": st.lists(length, min_size=1, max_size=3).map(tuple),
                                            "gamma": factor}),
        "exponential": st.fixed_dictionaries({"gamma": st.floats(0.98, 1.01).map(lambda v: Level(v, True))}),
        "polynomial": st.fixed_dictionaries({"to": LEVELS, "power": st.floats(0.5, 3.0)}),
        "inverse_sqrt": st.fixed_dictionaries({"timescale": length}),
        "onecycle": st.fixed_dictionaries({"peak": LEVELS, "pct": st.floats(0.05, 0.95),
                                           "three_phase": st.booleans(),
                                           "anneal": st.sampled_from(["cos", "linear"])}),
        "plateau": st.fixed_dictionaries({}),
    }[kind])
    open_ok = last and not SCHEDULE_KINDS[kind].length_required(args)
    return kind, draw(st.one_of(st.none(), length) if open_ok else length), args


@st.composite
def programs(draw):
    """Programs of one to four phases of any kinds (plateau only last)."""
    count = draw(st.integers(1, 4))
    kinds = [draw(st.sampled_from(sorted(k for k in SCHEDULE_KINDS if k != "plateau"))) for _ in range(count - 1)]
    kinds.append(draw(st.sampled_from(sorted(SCHEDULE_KINDS))))
    return program(*[draw(_phase(k, i == count - 1)) for i, k in enumerate(kinds)])


def _scale(prog: Program, bases) -> float:
    """The largest value a program reaches for any of ``bases``, sampled: with the largest level, the size
    arrays are compared at (the array path adds levels in another order than the scalar one)."""
    curve = Curve(prog)
    end = curve.end_time or (curve.starts[-1] + 400)
    return max(abs(v) for t in range(0, int(end) + 2) for v in curve.values(t, bases))


@given(programs(), BASES)
@example(program(("onecycle", 2.0, {"peak": Level(0.0, True), "pct": 0.5, "three_phase": False, "anneal": "cos"})),
         [1.0, 1.0])  # a part of length 0 over arrays
@example(program(("onecycle", 1.0, {"pct": 0.5, "anneal": "linear"})), [1e-6, 1e-6])  # a value far below its peak
def test_arrays_of_times_give_the_scalar_values(prog, bases):
    curve = Curve(prog)
    end = int(curve.end_time or curve.starts[-1] + 400) + 2
    ts = np.arange(0.0, end)
    arrays = [curve.over(ts, np), curve.over(torch.arange(0.0, end, dtype=torch.float64), torch)]
    for b in bases:
        scale = max(_scale(prog, bases), _largest_level(prog, b))
        scalar = [curve.values(t, [b])[0] for t in range(end)]
        for mix in arrays:
            got = [float(v) for v in mix.of(b)]
            bad = [(t, g, s) for t, (g, s) in enumerate(zip(got, scalar)) if not close(g, s, scale)]
            assert not bad, f"base {b}: (t, array, scalar) {bad[:3]}"


@given(programs(), BASES)
def test_each_phase_starts_where_the_previous_ended_unless_it_says_from(prog, bases):
    curve = Curve(prog)
    for k in range(1, len(prog.phases)):
        phase = prog.phases[k]
        restarts = "from" in phase.args or "value" in phase.args or phase.kind in ("warmup", "onecycle")
        if not restarts:
            assert curve.levels[k] == curve.ends[k - 1]


def test_a_million_step_preview_is_computed_as_arrays():
    # how long it takes is benchmarks/bench_schedule.py's to say; here: that it is one array, and right
    prog = program(("linear", 2000, {"from": Level(0.01, True)}), ("constant", 80_000, {}),
                   ("cosine", 18_000, {"to": Level(0.1, True)}))
    ts = np.arange(0.0, 1_000_000.0)
    out = values(prog, 1e-3, ts, np)
    assert out.shape == ts.shape and close(float(out[-1]), 1e-4)
    assert close(float(out[1000]), value_at(prog, 1e-3, 1000.0))


# --- the documentation ---------------------------------------------------------------------------

DOCS = ROOT / "docs" / "schedules.md"


def _sections() -> dict[str, str]:
    """The kind sections of docs/schedules.md: heading name -> its text."""
    parts = re.split(r"^## ", DOCS.read_text(encoding="utf-8"), flags=re.M)
    return {p.split("\n", 1)[0].strip(): p for p in parts[1:]}


@pytest.mark.parametrize("name", sorted(SCHEDULE_KINDS))
def test_every_kind_is_documented_with_its_arguments_and_picture(name):
    section = _sections().get(name)
    assert section is not None, f"docs/schedules.md has no section '## {name}'"
    kind = SCHEDULE_KINDS[name]
    assert kind.summary in " ".join(section.split()) and "Formula:" in section and "torch:" in section
    missing = [a.name for a in kind.args if f"| `{a.name}` |" not in section]
    assert not missing, f"arguments of {name} missing from its table: {missing}"
    assert f"](schedules/{name}.png)" in section
    picture = ROOT / "docs" / "schedules" / f"{name}.png"
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), f"{picture} is missing or not a PNG"


def test_the_picture_script_draws_every_kind():
    spec = importlib.util.spec_from_file_location("make_schedule_pictures", ROOT / "docs" / "make_schedule_pictures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert set(script.EXAMPLES) | {"plateau"} >= set(SCHEDULE_KINDS)
    for name, (text, prog) in script.EXAMPLES.items():
        Curve(prog)
        assert text.startswith("schedule ") and prog.phases[0].kind in text
    linked = set(re.findall(r"\]\(schedules/(\w+)\.png\)", DOCS.read_text(encoding="utf-8")))
    assert linked == set(script.EXAMPLES) | {"plateau"}
