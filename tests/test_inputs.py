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
from specopt.plan.nodes import Length
from specopt.resolve.timeline import Switch, changes, ever_trained, state, timed_changes, timed_deciders


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


# --- compile's run length and steps per epoch: the rules of the spec's run and steps_per_epoch -------

SCHEDULED = "optimizer sgd lr=0.1\nschedule warmup 1 epochs then cosine 2 epochs"


@pytest.mark.parametrize("options, code", [
    ({"steps_per_epoch": float("nan")}, "E207"), ({"steps_per_epoch": 0}, "E207"), ({"steps_per_epoch": 2.5}, "E207"),
    ({"steps_per_epoch": float("inf")}, "E207"), ({"steps_per_epoch": True}, "E206"), ({"steps_per_epoch": "4"}, "E206"),
    ({"epochs": 0}, "E207"), ({"epochs": 2.5}, "E207"), ({"steps": -1}, "E207"), ({"steps": 10 ** 400}, "E207"),
    ({"epochs": "3"}, "E206"), ({"epochs": 3, "steps": 30}, "E236"),
])
def test_compile_refuses_a_run_length_or_steps_per_epoch_the_spec_could_not_say(options, code):
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(SCHEDULED, two_layers(), **options)
    assert codes(info) == [code]


def test_a_whole_float_steps_per_epoch_trains_as_the_int_does():
    from loops import loss_of, make_net, params_of, assert_same

    runs = []
    for spe in (2, 2.0):
        model = make_net()
        compiled = specopt.compile(SCHEDULED, model, steps_per_epoch=spe)
        for k in range(6):
            compiled.train_step(loss_of(model, k))
            if k % 2 == 1:
                compiled.end_epoch()
        runs.append(params_of(model))
    assert_same(*runs)


# --- accumulate: bounded when the spec is checked, never an overflow at the first train_step --------

def test_accumulating_more_micro_batches_than_a_run_could_is_refused_when_checking():
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse("accumulate 99999999999999999999")
    assert codes(info) == ["E207"] and "at most 1,000,000,000" in info.value.diagnostics[0].message


@pytest.mark.parametrize("count, code", [("1e30", "E108"), ("true", "E108"), ("99999999999999999999", "E207"),
                                         ('"4"', "E108"), ("2.0", "E108")])
def test_a_plan_file_counts_micro_batches_as_spec_text_does(count, code):
    from specopt.language.plan_data import parse_data

    with pytest.raises(specopt.SpecError) as info:
        parse_data(f'{{"statements": [{{"kind": "accumulate", "count": {count}}}]}}', "json")
    assert codes(info) == [code]


def test_the_largest_accumulation_steps_in_the_step_driver():
    from loops import loss_of, make_net

    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1\naccumulate 1000000000", model)
    assert compiled.train_step(loss_of(model, 0)) is False  # no step yet, and no overflow dividing the loss
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --- devices: numbers no machine has, and types this torch lacks ------------------------------------

@pytest.mark.parametrize("text, code", [("device cpu:3", "E235"), ("device cuda:99999999999999999999", "E235"),
                                        ("device cpu:99999999999999999999", "E235"), ("device cuda:128", "E235"),
                                        ("ema 0.99 device=cpu:1", "E235"), ("device cuda:01", "E232"),
                                        ("device cuda:" + "9" * 5000, "E235"), ("device cuda:١", "E100")])
def test_a_device_number_no_machine_has_is_refused_when_checking(text, code):
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(text)
    assert codes(info) == [code]


@pytest.mark.parametrize("text", ["device cpu", "device cpu:0", "device cuda:127", "ema 0.99 device=cuda:3"])
def test_device_names_torch_takes_still_pass(text):
    specopt.parse(text)


@pytest.mark.parametrize("text", ["device npu", "ema 0.99 device=npu:1"])
def test_a_device_type_this_torch_lacks_is_E410_at_compile(text):
    try:
        torch.device("npu")
        known = True
    except RuntimeError:  # not every torch has the type
        known = False
    model = two_layers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(text, model)
    assert codes(info) == ["E410"]
    assert known or "knows no device type 'npu'" in info.value.diagnostics[0].message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("text, command", [("device cuda:99999999999999999999\n", "compile"),
                                           ("device cpu:99999999999999999999\n", "check"),
                                           ("accumulate 99999999999999999999\n", "compile")])
def test_bad_devices_and_counts_on_the_command_line(text, command, tmp_path):
    from limited import assert_clean, run_limited

    spec = tmp_path / "bad.opt"
    spec.write_text(text)
    model = ["--model", "examples/seed_model.py:Network"] if command == "compile" else []
    assert_clean(run_limited(command, str(spec), *model), 1, "[E235]" if "device" in text else "[E207]")


# --- plans written as data follow the rules of spec text -----------------------------------------

def _data_codes(text: str, fmt: str = "yaml") -> list[str]:
    from specopt.language.plan_data import parse_data

    with pytest.raises(specopt.SpecError) as info:
        parse_data(text, fmt)
    return codes(info)


def _unfreeze(clauses: str) -> str:
    return "statements:\n  - kind: unfreeze\n    selectors: [body]\n" + clauses


@pytest.mark.parametrize("text, code", [
    (_unfreeze("    at: {value: 1.5, unit: step}\n"), "E212"),
    (_unfreeze("    at: {value: .inf, unit: epoch}\n"), "E212"),
    (_unfreeze("    at: {value: .inf, unit: percent}\n"), "E212"),
    (_unfreeze("    at: {value: 3, unit: step}\n    warmup: {value: .inf, unit: step}\n"), "E212"),
    ("statements:\n  - kind: ema\n    decay: '0.9'\n", "E108"),
    ("statements:\n  - kind: accumulate\n    count: true\n", "E108"),
    ("statements:\n  - kind: clip\n    mode: l2\n    max: '1'\n", "E108"),
    ("statements:\n  - kind: step\n    every: 2.0\n    gamma: 0.5\n", "E108"),
    ("statements:\n  - kind: freeze\n    selectors: [{atoms: [{kind: name, pattern: a, negated: 1}]}]\n", "E108"),
    ("statements:\n  - kind: run\n    length: {value: '١٠', unit: step}\n", "E108"),
    ("statements:\n  - kind: group\n    selectors: [a]\n    options: {lr: " + "9" * 400 + "}\n", "E103"),
    ('statements:\n  - kind: freeze\n    selectors: ["a\\0b"]\n', "E109"),
    ('statements:\n  - kind: optimizer\n    name: "adam\\u200b"\n', "E109"),
])
def test_a_plan_file_refuses_what_spec_text_refuses(text, code):
    assert _data_codes(text) == [code]


@pytest.mark.parametrize("text, code", [
    ("unfreeze body at step 3 warmup 1e400 steps", "E212"), ("schedule cosine 1e400 steps", "E212"),
    ("run ١٠ steps", "E100"), ("group body lr=١", "E100"), ("freeze ndim<١", "E100"),
    ("unfreeze body at step " + "9" * 400, "E103"), ("group body lr=" + "9" * 400, "E103"),
    ("ema 0.9 every=" + "9" * 400, "E103"), ("steps_per_epoch " + "9" * 400, "E103"),
])
def test_spec_text_refuses_the_same(text, code):
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(text)
    assert codes(info) == [code]


def test_a_json_number_with_other_digits_is_malformed():
    assert _data_codes('{"statements": [{"kind": "accumulate", "count": 1\u0661}]}', "json") == ["E105"]


# --- line breaks and invisible characters ---------------------------------------------------------

def test_a_lone_carriage_return_ends_a_line(tmp_path):
    path = tmp_path / "mac.opt"
    path.write_bytes(b"optimizer sgd lr=0.1\rfreeze head\rclip l2 -1\r")
    with pytest.raises(specopt.SpecError) as info:
        specopt.load(path)
    assert codes(info) == ["E207"] and info.value.diagnostics[0].render(info.value.source).startswith(
        f"{path}:3:1: error: clip maximum")
    path.write_bytes(b"optimizer sgd lr=0.1\rfreeze head\r")
    assert [s.kind for s in specopt.load(path).plan.statements] == ["optimizer", "freeze"]


def test_a_lone_carriage_return_ends_a_line_of_a_plan_file_too():
    text = "statements:\r  - kind: clip\r    mode: l2\r    max: -1\r"
    from specopt.language.plan_data import parse_data

    with pytest.raises(specopt.SpecError) as info:
        parse_data(text, "yaml")
    assert info.value.render().startswith("<string>:statements.0:2:5: error: clip maximum")


def test_a_nul_byte_is_named_and_shown():
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse("optimizer sgd lr=0.1\nfreeze head\x00 body\nclip l2 -1")
    assert codes(info) == ["E109", "E207"]  # the other statements are still checked
    text = info.value.render()
    assert "an invisible character, U+0000 (NUL) [E109]" in text and "freeze head\u2400 body" in text
    assert "\x00" not in text and "unexpected ''" not in text


@pytest.mark.parametrize("ch", ["\x00", "\x1b", "\u200b", "\u202e", "\u2028", "\x85", "\ufeff"])
def test_every_invisible_character_in_a_statement_is_E109(ch):
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(f"freeze a{ch}b")
    assert codes(info) == ["E109"] and f"U+{ord(ch):04X}" in info.value.diagnostics[0].message


def test_comments_may_hold_anything_and_tabs_separate_words():
    spec = specopt.parse("freeze\ta  # \x00 \u202e \u200b\nclip l2 1\f")
    assert [s.kind for s in spec.plan.statements] == ["freeze", "clip"]


def test_a_no_break_space_is_named_where_it_is_unexpected():
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse("freeze\u00a0head")
    assert "unexpected U+00A0 (NO-BREAK SPACE)" in info.value.diagnostics[0].message


def test_a_file_of_invisible_characters_is_reported_in_bounded_space(tmp_path):
    from limited import assert_clean, run_limited

    path = tmp_path / "nul.opt"
    path.write_bytes(b"freeze \x00\n" * 100_000)
    out = run_limited("check", str(path))
    assert_clean(out, 1, "[E109]", "invisible characters in 99980 more place(s)")


def test_a_nul_byte_on_the_command_line(tmp_path):
    from limited import assert_clean, run_limited

    path = tmp_path / "nul.opt"
    path.write_bytes(b"optimizer sgd lr=0.1\x00\n")
    assert_clean(run_limited("compile", str(path), "--model", "examples/seed_model.py:Network"), 1,
                 "U+0000 (NUL) [E109]")


# --- the short forms of a hand-written plan --------------------------------------------------------

SHORT_TEXT = """optimizer sgd lr=0.1 momentum=0.9
freeze backbone.block0 ndim<2 & !head.* norms=eval
unfreeze backbone.block0 at step 2 warmup 2 steps
group fast: head.* @*Norm*/i lr=x10
schedule warmup 1 epochs then cosine 2 epochs to x0.1
run 3 epochs
steps_per_epoch 2
"""

SHORT_YAML = """statements:
  - kind: optimizer
    name: sgd
    options: {lr: 0.1, momentum: 0.9}
  - kind: freeze
    selectors: [backbone.block0, "ndim<2 & !head.*"]
    norms: eval
  - kind: unfreeze
    selectors: backbone.block0
    at: step 2
    warmup: 2 steps
  - kind: group
    name: fast
    selectors: ["head.* @*Norm*/i"]
    options: {lr: {factor: 10}}
  - kind: schedule
    phases:
      - {kind: warmup, length: 1 epochs}
      - {kind: cosine, length: 2 epochs, args: {to: {factor: 0.1}}}
  - kind: run
    length: 3 epochs
  - {kind: steps_per_epoch, steps: 2}
"""


def test_short_forms_give_the_plan_the_spec_text_gives():
    import json

    from specopt.language.plan_data import dump_plan, dump_yaml, parse_data
    from specopt.report.spec_changes import plan_hash

    text = specopt.parse(SHORT_TEXT).plan
    yaml_plan, _ = parse_data(SHORT_YAML, "yaml")
    assert dump_plan(yaml_plan) == dump_plan(text) and plan_hash(yaml_plan) == plan_hash(text)
    assert dump_yaml(yaml_plan) == dump_yaml(text)  # written back in the long form, as the text's plan is
    short_json = {"statements": [{"kind": "optimizer", "name": "sgd", "options": {"lr": 0.1, "momentum": 0.9}},
                                 {"kind": "freeze", "selectors": ["ndim<2"]}]}
    json_plan, _ = parse_data(json.dumps(short_json), "json")
    assert dump_plan(json_plan) == dump_plan(specopt.parse("optimizer sgd lr=0.1 momentum=0.9\nfreeze ndim<2").plan)


def test_a_short_form_plan_trains_as_its_spec_text_does(tmp_path):
    from loops import assert_same, loss_of, make_net, params_of

    path = tmp_path / "plan.yaml"
    path.write_text(SHORT_YAML)
    runs = []
    for spec in (specopt.parse(SHORT_TEXT), specopt.load(path)):
        model = make_net()
        compiled = spec.compile(model)
        for k in range(8):
            compiled.train_step(loss_of(model, k))
            if k % 2 == 1:
                compiled.end_epoch()
        runs.append(params_of(model))
    assert_same(*runs)


def test_problems_of_short_forms_are_reported_at_what_the_file_wrote_with_the_rest():
    from specopt.language.plan_data import parse_data

    text = """statements:
  - kind: optimizer
    name: adam
    options: {lrr: 1.0e-3, betas: [0.9, 1.5]}
  - kind: freeze
    selectors: ["ndim<2", "a..b", "x at step 3", "c;d", "e ="]
  - kind: unfreeze
    selectors: body
    at: stepp 2000
"""
    with pytest.raises(specopt.SpecError) as info:
        parse_data(text, "yaml")
    found = [(d.code, ".".join(map(str, d.path)), info.value.source.line_col(d.span.start))
             for d in info.value.diagnostics]
    assert found == [("E204", "statements.0.options.lrr", (4, 15)), ("E207", "statements.0.options.betas", (4, 28)),
                     ("E209", "statements.1.selectors.1", (6, 27)), ("E100", "statements.1.selectors.2", (6, 35)),
                     ("E100", "statements.1.selectors.3", (6, 50)), ("E100", "statements.1.selectors.4", (6, 57)),
                     ("E108", "statements.2.at", (9, 5))]


def test_a_plan_file_with_short_forms_on_the_command_line(tmp_path):
    from limited import assert_clean, run_limited

    path = tmp_path / "plan.yaml"
    path.write_text("statements:\n  - kind: freeze\n    selectors: [\"cnn.*\", \"convolution3*\"]\n"
                    "  - kind: optimizer\n    name: adam\n    options: {lr: 1.0e-3}\n")
    out = run_limited("compile", str(path), "--model", "examples/seed_model.py:Network")
    assert_clean(out, 1, "plan.yaml:3:26: error: selector 'convolution3*' selects nothing")


@pytest.mark.parametrize("steps", ["١٠", "1_000", " 10", "9" * 400])
def test_the_command_line_reads_numbers_as_a_spec_does(steps):
    from specopt.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["compile", "examples/seed.opt", "--model", "examples/seed_model.py:Network", "--steps", steps])
    assert info.value.code == 2


def test_numbered_modules_may_be_selected_by_number_in_a_plan_file():
    from specopt.language.plan_data import dump_plan, parse_data

    plan, _ = parse_data("statements:\n  - kind: freeze\n    selectors: [0, 2]\n", "yaml")
    assert dump_plan(plan) == dump_plan(specopt.parse("freeze 0 2").plan)
    assert _data_codes("statements:\n  - kind: freeze\n    selectors: [true]\n") == ["E108"]


@pytest.mark.parametrize("pattern", ["a b", "a=b", "a:b", 'a"b', "a;b", "a(b)"])
def test_a_plan_file_selector_holds_only_what_spec_text_can_write(pattern):
    import json

    atom = {"kind": "name", "pattern": pattern}
    text = json.dumps({"statements": [{"kind": "freeze", "selectors": [{"atoms": [atom]}]}]})
    assert _data_codes(text, "json") == ["E209"]


@pytest.mark.parametrize("name, text, code", [
    ("moment.yaml", "statements:\n  - kind: unfreeze\n    selectors: [cnn]\n    at: {value: 1.5, unit: step}\n",
     "E212"),
    ("decay.json", '{"statements": [{"kind": "ema", "decay": "0.9"}]}', "E108"),
    ("digits.opt", "optimizer sgd lr=0.1\nrun \u0661\u0660 steps\n", "E100"),
    ("mac.opt", "optimizer sgd lr=0.1\rclip l2 -1\r", "E207"),
])
def test_bad_plans_on_the_command_line(name, text, code, tmp_path):
    from limited import assert_clean, run_limited

    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    assert_clean(run_limited("compile", str(path), "--model", "examples/seed_model.py:Network"), 1, f"[{code}]")
