"""explain: every statement that touched a parameter, what it set, overrides, and the final values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from processes import run_specopt

import specopt
from specopt.report.explain import Explanation, explain, render_text

ROOT = Path(__file__).resolve().parent.parent
MODEL = "examples/seed_model.py:Network"
SEED = (ROOT / "examples" / "seed.opt").read_text()
CONV2 = "cnn.VGG_16.convolution2_1.weight"

# Every parameter under cnn is frozen; classifier.bias is frozen, unfrozen, and
# given lr twice, the second time relative to the base lr of 0.1.
OVERRIDES = """optimizer sgd lr=0.1
freeze cnn classifier.bias
unfreeze classifier
group head: classifier lr=0.5 momentum=0.9
group classifier.bias lr=x2
"""


run = run_specopt


@pytest.fixture
def seed(seed_model):
    return specopt.parse(SEED, "examples/seed.opt").compile(seed_model), seed_model


@pytest.fixture
def overrides(seed_model):
    return specopt.parse(OVERRIDES, "over.opt").compile(seed_model), seed_model


def _one(compiled, model, name):
    [p] = explain(compiled, name, model).params
    return p


def test_every_parameter_in_model_order_without_a_selector(seed):
    compiled, _ = seed
    result = explain(compiled)
    assert isinstance(result, Explanation) and result.selector is None
    assert [p.name for p in result.params] == [p.info.name for p in compiled.resolution.params]
    assert len(result.params) == result.total == 10


def test_group_statement_with_position_text_and_final_values(seed):
    p = _one(*seed, CONV2)
    [touch] = p.touches
    ref = touch.statement
    assert (ref.index, ref.kind, ref.line, ref.column) == (2, "group", 6, 35)
    assert ref.text == "group convolution2* lr=1e-3"
    [lr] = touch.sets
    assert (lr.key, lr.value, lr.overridden_by) == ("lr", 1e-3, None)
    assert not p.frozen and p.group == "group@6:35" and p.group_index == 0
    final = {v.key: v for v in p.settings}
    assert final["lr"].value == 1e-3 and final["lr"].set_by.label == "group@6:35"
    assert final["weight_decay"].value == 1e-3 and final["weight_decay"].set_by.kind == "optimizer"
    assert final["eps"].set_by is None  # torch's default


def test_frozen_parameter_names_its_freeze(seed):
    p = _one(*seed, "cnn.VGG_16.convolution1_1.bias")
    assert p.frozen and p.group is None and p.group_index is None
    assert p.frozen_by.label == "freeze@6:1"
    [touch] = p.touches
    assert touch.statement.text == "freeze cnn.VGG_16.convolution1_*"
    assert [(s.key, s.value, s.written) for s in touch.sets] == [("frozen", True, "frozen", )]


def test_untouched_parameter_has_no_statements(seed):
    p = _one(*seed, "classifier.weight")
    assert p.touches == () and not p.frozen and p.group == "default"


def test_overridden_values_name_the_later_statement(overrides):
    p = _one(*overrides, "classifier.bias")
    kinds = [t.statement.kind for t in p.touches]
    assert kinds == ["freeze", "unfreeze", "group", "group"]
    freeze, unfreeze, head, relative = p.touches
    assert freeze.sets[0].overridden_by.label == "unfreeze@3:1"
    assert unfreeze.sets[0].overridden_by is None
    lr, momentum = head.sets
    assert lr.value == 0.5 and lr.overridden_by.label == "group@5:1" and lr.overridden_by.line == 5
    assert momentum.overridden_by is None
    [rel] = relative.sets
    assert rel.written == "x2" and rel.value == pytest.approx(0.2) and rel.overridden_by is None
    final = {v.key: v for v in p.settings}
    assert final["lr"].value == pytest.approx(0.2) and final["momentum"].set_by.label == "head"
    assert not p.frozen and p.group == "head+group@5:1"


def test_parameter_frozen_by_the_model(seed_model):
    seed_model.classifier.weight.requires_grad_(False)
    compiled = specopt.parse("group classifier.bias lr=1e-2").compile(seed_model)
    p = _one(compiled, seed_model, "classifier.weight")
    assert p.frozen and p.touches == () and p.frozen_by.index == -1 and p.frozen_by.kind == "model"
    assert "frozen by model (requires_grad=False)" in render_text(explain(compiled, "classifier.weight",
                                                                          seed_model))


@pytest.mark.parametrize("selector, expected", [
    ("convolution2*", ["cnn.VGG_16.convolution2_1.weight", "cnn.VGG_16.convolution2_1.bias",
                       "cnn.VGG_16.convolution2_2.weight", "cnn.VGG_16.convolution2_2.bias"]),
    ("ndim<2", ["cnn.VGG_16.convolution1_1.bias", "cnn.VGG_16.convolution1_2.bias",
                "cnn.VGG_16.convolution2_1.bias", "cnn.VGG_16.convolution2_2.bias", "classifier.bias"]),
    ("@Linear", ["classifier.weight", "classifier.bias"]),
    ("convolution1* & ndim>1", ["cnn.VGG_16.convolution1_1.weight", "cnn.VGG_16.convolution1_2.weight"]),
    ("~nothing_here", []),
])
def test_selector_picks_exactly_what_it_would_in_a_spec(seed, selector, expected):
    compiled, model = seed
    result = explain(compiled, selector, model)
    assert [p.name for p in result.params] == expected and result.selector == selector


def test_selector_that_selects_nothing_is_E301_with_suggestions(seed):
    compiled, model = seed
    with pytest.raises(specopt.SpecError) as info:
        explain(compiled, "convolution3*", model)
    [diag] = info.value.diagnostics
    assert diag.code == "E301" and "convolution1_1" in diag.hint
    assert (diag.span.start, diag.span.end) == (0, len("convolution3*"))
    assert str(info.value).startswith("<selector>:1:1: error: selector 'convolution3*' selects nothing")


@pytest.mark.parametrize("selector, code", [("a; group b lr=1", "E100"), ("", "E100"), ("a & ", "E100"),
                                            ("@Lniear", "E301")])
def test_malformed_selectors_are_positioned_errors(seed, selector, code):
    compiled, model = seed
    with pytest.raises(specopt.SpecError) as info:
        explain(compiled, selector, model)
    assert [d.code for d in info.value.diagnostics] == [code]
    assert info.value.source.text == selector


def test_a_selector_is_matched_against_the_compiled_model(seed):
    compiled, model = seed
    assert explain(compiled, "convolution2*") == explain(compiled, "convolution2*", model)
    assert [p.name for p in explain(compiled, "classifier").params] == ["classifier.weight", "classifier.bias"]


def test_text_rendering_and_compiled_explain(overrides):
    compiled, model = overrides
    text = compiled.explain("classifier.bias", model=model)
    assert text == render_text(explain(compiled, "classifier.bias", model))
    assert text.startswith("over.opt: 1 of 10 parameters selected by 'classifier.bias'")
    assert "    2:1     freeze cnn classifier.bias\n            sets frozen  (overridden by unfreeze@3:1)" in text
    assert "sets lr=0.5  (overridden by group@5:1)" in text and "sets lr=x2 (= 0.2)" in text
    assert "trainable, param group [1] head+group@5:1" in text
    assert "dampening=0" in text and "default" in text


def test_json_is_plain_data(overrides):
    compiled, model = overrides
    data = json.loads(json.dumps(explain(compiled, "classifier.bias", model).to_json()))
    [p] = data["params"]
    assert p["shape"] == [10] and p["touches"][0]["statement"]["text"] == "freeze cnn classifier.bias"
    assert p["touches"][0]["sets"][0]["overridden_by"]["label"] == "unfreeze@3:1"


def test_cli_explain_one_parameter():
    out = run("explain", "examples/seed.opt", CONV2, "--model", MODEL)
    assert out.returncode == 0, out.stderr
    assert "examples/seed.opt: 1 of 10 parameters selected by" in out.stdout
    assert "6:35    group convolution2* lr=1e-3" in out.stdout
    assert "trainable, param group [0] group@6:35" in out.stdout


def test_cli_explain_json():
    out = run("explain", "examples/seed.opt", "ndim<2", "--model", MODEL, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [p["name"] for p in data["params"]][-1] == "classifier.bias" and len(data["params"]) == 5


def test_cli_selector_selecting_nothing_exits_1():
    out = run("explain", "examples/seed.opt", "convolution3*", "--model", MODEL)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "<selector>:1:1: error: selector 'convolution3*' selects nothing" in out.stderr
    assert "closest real names: convolution1_1" in out.stderr


def test_cli_explain_needs_a_model():
    out = run("explain", "examples/seed.opt")
    assert out.returncode == 2 and "Traceback" not in out.stderr
