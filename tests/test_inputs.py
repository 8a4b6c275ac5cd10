"""Every way an input arrives follows one set of rules, and bounded work: compile arguments, the
accumulation count, device names, selectors with too many alternatives, many timed statements,
plans written as data, digits, line breaks and invisible characters.

Each bad input is a coded diagnostic, also on the command line under a 4 GiB address-space
limit (``tests/limited.py``), never a traceback.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import specopt
from specopt.nodes import Length
from specopt.timeline import Switch, changes, ever_trained, state, timed_changes, timed_deciders


def codes(exc) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def two_layers() -> torch.nn.Module:
    model = torch.nn.Module()
    model.head, model.body = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    return model


# --- many freeze/unfreeze ... at statements: work linear in their number ------------------------

def _switching(n: int) -> str:
    lines = ["optimizer sgd lr=0.1", "freeze body"]
    lines += [f"{'unfreeze' if i % 2 == 0 else 'freeze'} body at step {i + 1}" for i in range(n)]
    return "\n".join(lines)


def _calls_while_compiling(n: int) -> int:
    """Python function calls (generator steps included) that compiling a spec of ``n`` timed statements makes."""
    spec, model, count = specopt.parse(_switching(n)), two_layers(), [0]

    def profile(frame, event, arg):
        if event == "call":
            count[0] += 1

    sys.setprofile(profile)
    try:
        spec.compile(model)
    finally:
        sys.setprofile(None)
    return count[0]


def test_compiling_twice_the_timed_statements_costs_about_twice_the_calls():
    specopt.compile(_switching(2), two_layers())  # imports and caches
    small, large = _calls_while_compiling(200), _calls_while_compiling(400)
    assert large / small < 2.3  # the quadratic timeline made 3.9x


def _old_state(switches, built, fired=frozenset()):
    trainable, decider = built, None
    for s in switches:
        if not s.timed or s.index in fired:
            trainable, decider = not s.freezes, s
    return trainable, decider


def _switch_lists():
    one = st.tuples(st.booleans(), st.one_of(st.none(), st.integers(1, 6)), st.booleans())
    return st.lists(one, max_size=8).map(lambda items: tuple(
        Switch(SimpleNamespace(index=k, label=f"s{k}"), freezes, Length(value=at, unit="step") if at else None,
               Length(value=2, unit="step") if warm and at else None)
        for k, (freezes, at, warm) in enumerate(items)))


@given(_switch_lists(), st.booleans())
def test_the_linear_timeline_agrees_with_the_cascade_at_every_moment(switches, built):
    timed = [s for s in switches if s.timed]
    order = sorted(timed, key=lambda s: s.at.value)
    fired, current, expected = set(), _old_state(switches, built)[0], []
    for s in order:  # the state changes when the moments come, in their order
        fired.add(s.index)
        now, decider = _old_state(switches, built, frozenset(fired))
        if now != current:
            expected.append((s.at.value, now, decider.index))
            current = now
    assert [(c.moment.value, c.trainable, c.by.index) for c in changes(switches, built)] == expected
    every = frozenset(s.index for s in timed)
    assert ever_trained(switches, built) == (
        state(switches, built)[0] or any(_old_state(switches, built, frozenset(f))[0]
                                         for f in _subsets(every)))
    assert timed_deciders(switches) == {
        s.index for k, s in enumerate(switches) if s.timed and all(t.timed for t in switches[k + 1:])}
    assert timed_changes(switches, built) == {
        s.index for k, s in enumerate(switches) if s.timed and s.freezes in (
            _old_state(switches[:k], built)[0], _old_state(switches[:k], built, every)[0])}


def _subsets(items: frozenset) -> list[set]:
    out = [set()]
    for item in items:
        out += [s | {item} for s in out]
    return out


def test_lines_and_columns_of_a_long_spec_are_found_without_rescanning_it():
    from specopt.diagnostics import Source

    text = "a\n\nbc\r\nd"
    source = Source(text)
    assert [source.line_col(k) for k in range(len(text) + 1)] == [
        (text.count("\n", 0, k) + 1, k - text.rfind("\n", 0, k)) for k in range(len(text) + 1)]
    assert [source.line_text(k) for k in range(0, 6)] == ["", "a", "", "bc\r", "d", ""]


# --- selectors that cannot be matched: E209 in every command, never a crash in the model checks ---

MANY_BRACES = "cnn{" + ",".join(f"x{i}" for i in range(70)) + "}"


@pytest.mark.parametrize("text", [f"freeze {MANY_BRACES}", f"group {MANY_BRACES} & cnn lr=1",
                                  f"optimizer sgd for {MANY_BRACES}", f"layers cnn then {MANY_BRACES} decay=0.5",
                                  "freeze a[", "freeze a}", "freeze " + "{" * 9 + "a" + "}" * 9])
def test_a_selector_that_cannot_be_matched_is_E209_when_compiling_against_a_model(text, seed_model):
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(text, seed_model)
    assert codes(info) == ["E209"]


def test_the_other_selectors_of_its_statement_are_still_matched(seed_model):
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(f"freeze {MANY_BRACES} typo cnn", seed_model)
    assert codes(info) == ["E209", "E301"] and "'typo'" in info.value.diagnostics[1].message


@pytest.mark.parametrize("command", ["compile", "explain", "check"])
def test_many_brace_alternatives_on_the_command_line(command, tmp_path):
    from limited import assert_clean, run_limited

    spec = tmp_path / "braces.opt"
    spec.write_text(f"freeze {MANY_BRACES}\n")
    model = ["--model", "examples/seed_model.py:Network"] if command != "check" else []
    assert_clean(run_limited(command, str(spec), *model), 1, "[E209]", "more than 64 brace alternatives")
