"""Parsing: statement separation, comments, spans, keywords, values and the JSON form of plans."""

from __future__ import annotations

import json

import pytest

import specopt
from conftest import SEED_SPEC
from specopt.diagnostics import SpecError
from specopt.language.parse import comment_start, split_statements
from specopt.plan.plan import Plan, Relative


def errors(text: str):
    with pytest.raises(SpecError) as info:
        specopt.parse(text)
    return info.value.diagnostics


def codes(text: str) -> list[str]:
    return [d.code for d in errors(text)]


def test_separators_comments_and_order():
    text = "# header\nclip l2 1 # trailing ; not a separator\n\nfreeze a;group b lr=1;;step every 2 x0.5\n"
    kinds = [s.kind for s in specopt.parse(text).plan.statements]
    assert kinds == ["clip", "freeze", "group", "step"]


def test_spans_point_into_the_source():
    text = "freeze cnn.a\ngroup head: x.* & !x.b lr=x0.1"
    spec = specopt.parse(text)
    group = spec.plan.statements[1]
    atom = group.selectors[0].atoms[1]
    assert text[atom.span.start:atom.span.end] == "!x.b"
    assert atom.negated and atom.pattern == "x.b"
    opt = group.options[0]
    assert text[opt.span.start:opt.span.end] == "lr"
    assert text[opt.value_span.start:opt.value_span.end] == "x0.1"
    assert opt.value == Relative(factor=0.1, span=opt.value_span)
    assert spec.source.line_col(atom.span.start) == (2, 19)


def test_selector_forms():
    atoms = specopt.parse("freeze ^a.** @*Norm* ndim<2 ~b").plan.statements[0].selectors
    kinds = [(t.atoms[0].kind, t.atoms[0].pattern, t.atoms[0].anchored, t.atoms[0].optional) for t in atoms]
    assert kinds == [("name", "a.**", True, False), ("class", "*Norm*", False, False),
                     ("ndim", "<2", False, False), ("name", "b", False, True)]


def test_keywords_end_at_whitespace():
    assert codes("freezer x") == ["E101"]
    assert codes("freeze") == ["E100"]


def test_values():
    stmt = specopt.parse('optimizer lbfgs line_search_fn="strong_wolfe" max_eval=none max_iter=3').plan.optimizer
    assert [o.value for o in stmt.options] == ["strong_wolfe", None, 3]
    betas = specopt.parse("optimizer adam betas=(0.9, 0.95,) amsgrad=true").plan.optimizer.options
    assert betas[0].value == (0.9, 0.95) and betas[1].value is True


def test_every_error_of_a_file_is_reported():
    assert codes("frezee a\noptimizer adam lr=-1\nclip l2\nfreeze a..b") == ["E101", "E207", "E100", "E209"]


def test_unknown_word_value():
    assert codes("optimizer adam amsgrad=yes") == ["E103"]


def test_plan_round_trips_through_json():
    plan = specopt.load(SEED_SPEC).plan
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    clip_inf = specopt.parse("clip inf 2").plan
    assert Plan.model_validate_json(clip_inf.model_dump_json()) == clip_inf


def test_json_plans_get_the_same_validation():
    bad = {"statements": [{"kind": "optimizer", "name": "adam", "options": [{"key": "lr", "value": -1}]}]}
    with pytest.raises(SpecError) as info:
        Plan.model_validate_json(json.dumps(bad))
    assert [d.code for d in info.value.diagnostics] == ["E207"]


def test_plan_publishes_a_json_schema():
    schema = Plan.model_json_schema()
    assert schema["title"] == "Plan"
    assert {"statements", "version"} <= set(schema["properties"])


def test_plans_are_immutable():
    plan = specopt.parse("freeze a").plan
    with pytest.raises(Exception):
        plan.statements = ()


def test_oversized_input_is_refused():
    assert codes("freeze a\n" * 200_000) == ["E102"]


def messages(text: str) -> list[str]:
    return [d.message for d in errors(text)]


def test_quoted_strings_hold_separators_and_comment_marks():
    text = 'optimizer lbfgs line_search_fn="a;b" # c\nfreeze x; group y lr=1 # "not; a string"'
    plan = specopt.parse(text).plan
    assert [s.kind for s in plan.statements] == ["optimizer", "freeze", "group"]
    assert plan.optimizer.options[0].value == "a;b"
    assert specopt.parse('optimizer lbfgs line_search_fn="#1;"').plan.optimizer.options[0].value == "#1;"


def test_split_statements_follows_the_string_terminal():
    assert split_statements('a "x;y" b;c # "d;e"') == [(0, 'a "x;y" b'), (10, "c ")]
    # an unclosed quote is no STRING, so the ';' after it still separates
    assert split_statements('a "x;y') == [(0, 'a "x'), (5, "y")]
    assert split_statements('a "x\ny"; b') == [(0, 'a "x'), (5, 'y"'), (8, " b")]
    assert comment_start('f "#" # c') == 6 and comment_start('f "#"') == -1


@pytest.mark.parametrize("text, message", [
    ("group classifier lr=x-1", "unexpected '-1'; a factor is x followed by a number, like x0.1"),
    ("group a lr=x0.1x", "unexpected 'x'; a factor is x followed by a number, like x0.1"),
    ("group a lr=1 b", "unexpected 'b', expected key=value"),
    ("group a lr=(0.1 b", "unexpected 'b', expected ')' or ','"),
    ('group a lr=(")" 2', "unexpected '2', expected ')' or ','"),
    ("group a lr=(0.1) 2", "unexpected '2', expected key=value"),
    ("optimizer x-1", "unexpected '-1', expected key=value"),
    ("=0.1", "unexpected '='"),  # lark knows no token before the first one
])
def test_expected_words_fit_the_place_of_the_error(text, message):
    assert [d.message for d in errors(text) if d.code == "E100"] == [message]


# --- every error of a file in one run ----------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("group head.* wd=0.1 betas=(0.9,", [("E204", "adam has no option 'wd'"), ("E100", None)]),
    ("optimizer adamw wd=0.1 lr==3; clip l2 20", [("E204", "adamw has no option 'wd'"), ("E100", None)]),
    ("group a lr=1e-3 beta1=0.8 momentum=", [("E204", "adam has no option 'beta1'"), ("E100", None)]),
])
def test_a_syntax_error_does_not_hide_the_other_errors_of_its_statement(text, expected):
    found = [(d.code, d.message if d.code != "E100" else None) for d in errors(text)]
    assert found == expected


def test_problems_that_blanking_a_bad_word_could_cause_are_not_reported():
    # 'group a lr=' loses its only option to the syntax error: "group sets no hyperparameter" would be ours
    assert codes("group a lr=") == ["E100"]
    assert codes("freeze a b c &") == ["E100"]
    # what blanking reveals before the error is reported: '(0.1)' is no number, 'x' no optimizer
    assert codes("group a lr=(0.1) 2") == ["E206", "E100"]
    assert codes("optimizer x-1") == ["E201", "E100"]


def test_a_spec_with_errors_keeps_the_statements_that_could_be_read():
    with pytest.raises(SpecError) as info:
        specopt.parse("freeze conv3*\noptimizer adam wd=0.1\ngroup head lr=\nclip l2")
    # the group is read without its broken option, for its selectors; the clip has no value to read
    assert [s.kind for s in info.value.statements] == ["freeze", "optimizer", "group"]


def test_plan_errors_do_not_hide_selector_errors_against_a_model(seed_model):
    text = "optimizer adam wd=0.1\nfreeze convolution3*\ngroup classifer lr=x2"
    with pytest.raises(SpecError) as info:
        specopt.compile(text, seed_model)
    assert [d.code for d in info.value.diagnostics] == ["E204", "E301", "E301"]
    hint = info.value.diagnostics[2].hint
    assert "classifier" in hint


@pytest.mark.parametrize("key, meant", [("wd", "weight_decay"), ("learning_rate", "lr"), ("beta1", "betas"),
                                        ("momentum", "betas"), ("epsilon", "eps")])
def test_common_other_spellings_get_a_did_you_mean(key, meant):
    (diag,) = errors(f"optimizer adam {key}=0.1")
    assert diag.code == "E204" and f"did you mean '{meant}'" in diag.hint
