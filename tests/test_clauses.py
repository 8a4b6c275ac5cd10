"""The clauses of freeze and unfreeze: 'at', 'warmup' and 'norms=', as written in the contract."""

from __future__ import annotations

import pytest

import specopt
from specopt.language.fmt import format_text
from specopt.plan.nodes import Length

CONTRACT = """freeze backbone
unfreeze backbone.layer4 at epoch 3
unfreeze backbone at 50%
unfreeze encoder.layer.{10,11} at step 2000 warmup 500 steps
"""


def test_the_contract_lines_parse_as_written():
    statements = specopt.parse(CONTRACT).plan.statements
    assert [(s.kind, s.at and (s.at.value, s.at.unit), s.warmup and (s.warmup.value, s.warmup.unit))
            for s in statements] == [("freeze", None, None), ("unfreeze", (3.0, "epoch"), None),
                                     ("unfreeze", (50.0, "percent"), None),
                                     ("unfreeze", (2000.0, "step"), (500.0, "step"))]
    assert format_text(CONTRACT) == CONTRACT


@pytest.mark.parametrize("text, field, value", [
    ("freeze head at step 10", "at", Length(value=10, unit="step")),
    ("freeze backbone norms=eval", "norms", "eval"),
    ("unfreeze backbone at 25% warmup 2 epochs norms=train", "warmup", Length(value=2, unit="epoch")),
    ("unfreeze a norms=train at epoch 1", "norms", "train"),
    ("freeze at at epoch 1", "at", Length(value=1, unit="epoch")),   # a module called 'at', then the clause
])
def test_clauses(text, field, value):
    stmt = specopt.parse(text).plan.statements[0]
    got = getattr(stmt, field)
    assert (got.model_copy(update={"span": None}) if isinstance(got, Length) else got) == value
    assert format_text(text) == text + "\n"


@pytest.mark.parametrize("text, code, message", [
    ("freeze head at epochs 3", "E100", "a moment is written 'at epoch N', not 'at epochs N'"),
    ("freeze head at epoch 3 at step 4", "E203", "'at' is given twice"),
    ("freeze head at step 0", "E212", "a moment is after the start of the run, got step 0"),
    ("freeze head at 150%", "E212", "a share of the run is at most 100%, got 150%"),
    ("unfreeze head warmup 10 steps", "E230", "a warmup ramps what the statement unfreezes at a point of the "
                                             "run, but this statement has no 'at'"),
    ("unfreeze head at step 5 warmup 0 steps", "E212", "a length must be greater than 0, got 0 steps"),
    ("freeze head norms=frozen", "E206", "norms takes eval or train, not 'frozen'"),
    ("freeze head lr=0.1", "E100", "unexpected 'lr='; a freeze or unfreeze sets only norms="),
    ("freeze head warmup 5 steps", "E100", "unexpected 'warmup', expected 'at' or key=value"),
])
def test_clause_errors(text, code, message):
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(text)
    assert (info.value.diagnostics[0].code, info.value.diagnostics[0].message) == (code, message)


def test_a_warmup_on_a_freeze_in_a_data_plan_is_e230():
    from specopt.language.plan_data import parse_data

    text = ('{"statements": [{"kind": "freeze", "selectors": [{"atoms": [{"kind": "name", "pattern": "a"}]}], '
            '"at": {"value": 3, "unit": "step"}, "warmup": {"value": 5, "unit": "step"}}]}')
    with pytest.raises(specopt.SpecError) as info:
        parse_data(text, "json")
    assert [d.code for d in info.value.diagnostics] == ["E230"]
