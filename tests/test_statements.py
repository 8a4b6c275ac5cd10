"""Every statement kind is complete: grammar rule, plan union, parsing, checks, docs, fmt and listing.

A statement kind lives in one class (``specopt/statements.py``, ``specopt/phases.py``);
these tests fail when a kind is missing from any place that must know it.
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

import specopt
from processes import run_specopt
from specopt.language.fmt import format_text
from specopt.language.parse import grammar_text
from specopt.plan.plan import STATEMENT_KINDS, Plan, StatementNode

ROOT = Path(__file__).resolve().parent.parent
KINDS = {cls.keyword: cls for cls in STATEMENT_KINDS}


@pytest.mark.parametrize("keyword", sorted(KINDS))
def test_every_kind_has_its_grammar_rule_and_keyword(keyword):
    grammar = grammar_text()
    assert f"{keyword}_stmt:" in grammar
    assert f"| {keyword}_stmt" in grammar or f": {keyword}_stmt" in grammar
    assert f"/{keyword}(?!" in grammar


@pytest.mark.parametrize("keyword", sorted(KINDS))
def test_every_kind_is_in_the_plan_union_with_a_role(keyword):
    members = typing.get_args(typing.get_args(StatementNode)[0])
    cls = KINDS[keyword]
    assert cls in members
    assert cls.role in ("optimizer", "selection", "clip", "schedule", "timing", "training")


@pytest.mark.parametrize("keyword", sorted(KINDS))
def test_every_example_parses_into_its_kind_and_survives_a_json_round_trip(keyword):
    cls = KINDS[keyword]
    plan = specopt.parse(cls.example).plan
    assert [type(s) for s in plan.statements] == [cls]
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


@pytest.mark.parametrize("keyword", sorted(KINDS))
def test_every_example_is_in_canonical_form(keyword):
    example = KINDS[keyword].example
    assert format_text(example) == example + "\n"


@pytest.mark.parametrize("keyword", sorted(KINDS))
def test_every_kind_is_documented(keyword):
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert f"`{keyword}`" in text, f"docs/language.md never names the '{keyword}' statement"


def test_list_shows_every_kind():
    out = run_specopt("list").stdout
    for cls in STATEMENT_KINDS:
        assert cls.syntax in out


@pytest.mark.parametrize("text, message", [
    ("clip l2 1; clip l2 2", "a second 'clip' statement"),
    ("step every 3 x0.5; schedule cosine 10 epochs", "a second schedule for 'lr'"),
    ("schedule weight_decay cosine 5 epochs; schedule weight_decay linear 5 epochs", "a second schedule for 'weight_decay'"),
    ("run 5 epochs; run 10 epochs", "a second 'run' statement"),
])
def test_a_kind_held_once_is_reported_when_repeated(text, message):
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(text)
    assert [(d.code, d.message) for d in info.value.diagnostics] == [("E202", message)]


def test_a_run_too_long_for_a_number_is_out_of_range():
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse("run 1e310 epochs")
    assert [(d.code, d.message) for d in info.value.diagnostics] == [
        ("E207", "the run's length must be a whole number of at least 1, got inf")]
