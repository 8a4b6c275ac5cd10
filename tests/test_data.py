"""Plans as data: JSON and YAML files give the same plans, and the same quality of errors, as spec text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import specopt
from golden import GOLDEN
from processes import run_code, run_specopt
from specopt.language.plan_data import dump_plan, parse_data
from specopt.diagnostics import SpecError
from specopt.plan.plan import Plan

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((GOLDEN / "plan").glob("*.opt")) + [ROOT / "examples" / "seed.opt"]
FREEZE_A = {"kind": "freeze", "selectors": [{"atoms": [{"kind": "name", "pattern": "a"}]}]}


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    elif isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def errors(text: str, fmt: str = "yaml") -> list:
    with pytest.raises(SpecError) as info:
        parse_data(text, fmt, f"plan.{fmt}")
    return list(info.value.diagnostics)




# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_spec_to_data_and_back_gives_the_same_plan(spec_path, suffix, tmp_path):
    original = specopt.load(spec_path).plan
    data = dump_plan(original)
    loaded = specopt.load(write(tmp_path, "plan" + suffix, data))
    assert dump_plan(loaded.plan) == dump_plan(Plan.model_validate(data)) == data
    assert dump_plan(loaded.plan) == dump_plan(Plan.model_validate(json.loads(json.dumps(data))))


def test_a_full_model_dump_with_spans_loads(tmp_path):
    original = specopt.load(ROOT / "examples" / "seed.opt").plan
    loaded = specopt.load(write(tmp_path, "plan.json", original.model_dump(mode="json"))).plan
    assert dump_plan(loaded) == dump_plan(original)
    text = (tmp_path / "plan.json").read_text()
    first = loaded.statements[0].span  # spans now point into the JSON file, not the dumped spec text
    assert text[first.start:first.end].lstrip().startswith("{") and '"optimizer"' in text[first.start:first.end]


def test_errors_found_against_a_model_point_into_the_data_file(tmp_path):
    from seed_model import Network

    path = write(tmp_path, "plan.yaml", {"statements": [
        {"kind": "freeze", "selectors": [{"atoms": [{"kind": "name", "pattern": "convolution3*"}]}]}]})
    with pytest.raises(specopt.SpecError) as info:
        specopt.load(path).compile(Network())
    [diag] = info.value.diagnostics
    assert diag.code == "E301"
    assert info.value.source.line_col(diag.span.start)[0] > 1
    assert "closest real names: convolution1_1" in info.value.render()


def test_data_plan_compiles_like_the_spec(tmp_path):
    from seed_model import Network

    text = specopt.load(ROOT / "examples" / "seed.opt")
    data = specopt.load(write(tmp_path, "seed.yaml", dump_plan(text.plan)))
    groups = [(g.settings, g.params) for g in data.compile(Network()).resolution.groups]
    assert groups == [(g.settings, g.params) for g in text.compile(Network()).resolution.groups]
    assert len(groups) == 2


def test_yaml_reads_exponent_numbers_as_numbers():
    plan, _ = parse_data("statements:\n  - kind: optimizer\n    name: adam\n    options:\n"
                         "      - {key: lr, value: 1e-3}\n      - {key: eps, value: 1.5E-8}\n", "yaml")
    assert [o.value for o in plan.optimizer.options] == [1e-3, 1.5e-8]


def test_empty_yaml_is_an_empty_plan_like_an_empty_spec():
    plan, _ = parse_data("# nothing yet\n", "yaml")
    assert plan.statements == () and plan == specopt.parse("# nothing yet\n").plan.model_copy(update={"span": None})


# --- structural errors: paths, hints, positions -------------------------------------------------

def test_unknown_field_names_its_path_and_the_closest_field():
    [diag] = errors("statements:\n  - kind: freeze\n    selectors:\n      - atoms: [{kind: name, patern: a}]\n")
    assert diag.code == "E106" and diag.path == ("statements", 0, "selectors", 0, "atoms", 0, "patern")
    assert diag.message == "unknown field 'patern' in a selector" and diag.hint == "did you mean 'pattern'?"
    rendered = diag.render(specopt.Source("", "plan.yaml"))
    assert rendered.startswith("plan.yaml:statements.0.selectors.0.atoms.0.patern:")


def test_unknown_statement_kind_suggests_the_closest():
    [diag] = errors(json.dumps({"statements": [{"kind": "frezee", "selectors": []}]}), "json")
    assert (diag.code, diag.message, diag.hint) == ("E101", "unknown statement 'frezee'", "did you mean 'freeze'?")
    assert diag.path == ("statements", 0, "kind")


def test_missing_and_mistyped_fields():
    diags = errors("statements:\n  - kind: step\n    gamma: 0.1\n  - kind: clip\n    mode: l2\n    max: big\n"
                   "  - {kind: step, every: 1, gamma: 0.1, unit: epochs}\n")
    got = {(d.code, ".".join(map(str, d.path))): d for d in diags}
    assert set(got) == {("E107", "statements.0.every"), ("E108", "statements.1.max"),
                        ("E108", "statements.2.unit")}
    assert got["E107", "statements.0.every"].message == "a 'step' statement is missing 'every'"
    assert got["E108", "statements.1.max"].message == "'max' must be a number, got \"big\""
    assert got["E108", "statements.2.unit"].hint == "did you mean 'epoch'?"


def test_a_bad_option_value_is_reported_once():
    group = {"kind": "group", "selectors": FREEZE_A["selectors"],
             "options": [{"key": "lr", "value": {"factr": 1}}, {"key": "betas", "value": [[0.9], 0.99]}]}
    diags = errors(json.dumps({"statements": [group]}), "json")
    assert [(d.code, ".".join(map(str, d.path))) for d in diags] == [
        ("E106", "statements.0.options.0.value.factr"), ("E108", "statements.0.options.1.value.0")]
    assert diags[0].hint == "did you mean 'factor'?"


def test_wrong_top_level_shape():
    [diag] = errors("- kind: clip\n")
    assert diag.code == "E108" and diag.message == "a plan must be a mapping, got a list" and diag.path == ()


def test_yaml_diagnostics_point_at_the_key():
    text = "statements:\n  - kind: step\n    every: ten\n    gamma: 0.1\n"
    [diag] = errors(text)
    source = specopt.Source(text, "plan.yaml")
    assert source.line_col(diag.span.start) == (3, 5)
    assert "plan.yaml:statements.0.every:3:5: error: 'every' must be a whole number" in diag.render(source)


def test_json_diagnostics_point_at_the_enclosing_object():
    text = '{"statements": [\n  {"kind": "clip", "mode": "l2", "max": 1},\n  {"kind": "step", "every": "x"}\n]}'
    diags = errors(text, "json")
    source = specopt.Source(text, "plan.json")
    assert {source.line_col(d.span.start) for d in diags} == {(3, 3)}


# --- semantic errors: the plan's own checks, by path --------------------------------------------

def test_plan_checks_give_the_path_of_their_node():
    data = {"statements": [
        {"kind": "optimizer", "name": "adam", "options": [{"key": "lrr", "value": 1e-3}]},
        {"kind": "group", "selectors": FREEZE_A["selectors"], "options": [{"key": "lr", "value": -1}]},
        {"kind": "clip", "mode": "l2", "max": 1}, {"kind": "clip", "mode": "l2", "max": 2}]}
    diags = errors(yaml.safe_dump(data, sort_keys=False))
    got = {d.code: (".".join(map(str, d.path)), d) for d in diags}
    assert set(got) == {"E204", "E207", "E202"}
    assert got["E204"][0] == "statements.0.options.0" and got["E204"][1].hint == "did you mean 'lr'?"
    assert got["E207"][0] == "statements.1.options.0.value"
    assert got["E202"][0] == "statements.3"
    assert all(d.span is not None for d in diags)


def test_unknown_optimizer_points_at_its_name():
    [diag] = errors(json.dumps({"statements": [{"kind": "optimizer", "name": "adamm"}]}), "json")
    assert diag.code == "E201" and diag.path == ("statements", 0, "name") and "'adam'" in diag.hint


def test_import_path_optimizer_needs_permission_in_data_too():
    [diag] = errors(json.dumps({"statements": [{"kind": "optimizer", "name": "mypkg.optim:Lion"}]}), "json")
    assert diag.code == "E220" and diag.path == ("statements", 0, "name")


def test_bad_rank_test_from_data_is_a_selector_error():
    atom = {"kind": "ndim", "pattern": "about 2"}
    [diag] = errors(json.dumps({"statements": [{"kind": "freeze", "selectors": [{"atoms": [atom]}]}]}), "json")
    assert diag.code == "E209" and diag.path == ("statements", 0, "selectors", 0, "atoms", 0)


# --- malformed files ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, text, where, words", [
    ("json", '{"statements": [\n  {"kind": "clip" "mode": "l2"}\n]}', (2, 19), "Expecting ',' delimiter"),
    ("json", '{"statements": [], "statements": []}', (1, 1), "key 'statements' appears twice"),
    ("json", "[" * 100 + "]" * 100, (1, 65), "nests more than 64 levels"),
    ("json", "", (1, 1), "Expecting value"),
    ("yaml", "statements:\n  - kind: clip\n   mode: l2\n", (3, 4), "not valid YAML"),
    ("yaml", "statements: []\nstatements: []\n", (2, 1), "key 'statements' appears twice"),
    ("yaml", "a: !!int abc\n", (1, 4), "cannot read this value"),
    ("yaml", "---\n{}\n---\n{}\n", (3, 1), "not valid YAML"),
])
def test_malformed_files_are_positioned(fmt, text, where, words):
    [diag] = errors(text, fmt)
    assert diag.code == "E105" and words in diag.message
    assert specopt.Source(text).line_col(diag.span.start) == where


# --- the command line ---------------------------------------------------------------------------

def test_cli_checks_yaml_and_json_plans(tmp_path):
    good = write(tmp_path, "good.yaml", dump_plan(specopt.load(ROOT / "examples" / "seed.opt").plan))
    bad = write(tmp_path, "bad.json", {"statements": [{"kind": "step", "every": 0, "gamma": 0.1}]})
    out = run_specopt("check", str(good), str(bad))
    assert out.returncode == 1 and f"{good}: ok (5 statements)" in out.stdout
    assert f"{bad}:statements.0:3:5: error: step interval must be at least 1, got 0 [E207]" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_check_of_a_yaml_plan_does_not_import_torch(tmp_path):
    plan = write(tmp_path, "plan.yml", "statements:\n  - {kind: clip, mode: l2, max: 1}\n")
    code = ("import sys; from specopt.cli.main import main; rc = main(['check', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    out = run_code(code, str(plan))
    assert out.returncode == 0, out.stderr


def test_cli_without_pyyaml_is_a_usage_error(tmp_path):
    plan = write(tmp_path, "plan.yaml", "statements: []\n")
    code = ("import sys; sys.modules['yaml'] = None; from specopt.cli.main import main; "
            "sys.exit(main(['check', sys.argv[1]]))")
    out = run_code(code, str(plan))
    assert out.returncode == 2 and "needs PyYAML: pip install 'specopt[yaml]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_schema_prints_the_plan_schema_without_torch():
    code = ("import sys; from specopt.cli.main import main; rc = main(['schema']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    out = run_code(code)
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert schema == Plan.model_json_schema()
    assert {"statements", "version"} <= set(schema["properties"])
