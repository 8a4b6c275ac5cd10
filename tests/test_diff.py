"""``specopt diff``: per-parameter changes between two specs compiled against the seed model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from processes import run_specopt
from seed_model import Network
from torch import nn

import specopt
from specopt.report.diff import ABSENT, diff_json, diff_resolutions, render_text, resolve_spec
from specopt.language.fmt import format_text

ROOT = Path(__file__).resolve().parent.parent
MODEL = "examples/seed_model.py:Network"
CONV1 = ["cnn.VGG_16.convolution1_1.weight", "cnn.VGG_16.convolution1_1.bias",
         "cnn.VGG_16.convolution1_2.weight", "cnn.VGG_16.convolution1_2.bias"]
HEAD = ["classifier.weight", "classifier.bias"]


def diff(a: str, b: str, model=Network):
    return diff_resolutions(resolve_spec(specopt.parse(a, "a.opt"), model),
                            resolve_spec(specopt.parse(b, "b.opt"), model), "a.opt", "b.opt")


def by_name(d):
    return {p.name: p for p in d.changed}


def test_the_same_spec_changes_nothing():
    text = (ROOT / "examples" / "seed.opt").read_text()
    d = diff(text, text)
    assert d.changed == [] and d.empty and diff_json(d, MODEL)["identical"] is True
    assert "no parameter changes" in render_text(d, MODEL)


def test_reformatting_and_moving_lines_changes_nothing():
    text = (ROOT / "examples" / "seed.opt").read_text()
    moved = "\n\n\n" + format_text(text)
    d = diff(text, moved)
    groups = {p.group for p in d.params if p.name.startswith("cnn.VGG_16.convolution2")}
    assert groups == {("group@6:35", "group@10:1")}  # the unnamed group's name moved with its line
    assert d.changed == [] and d.empty


def test_freezing_more_reports_frozen_group_and_totals():
    d = diff("freeze cnn.VGG_16.convolution1_1", "freeze cnn.VGG_16.convolution1_*")
    changed = by_name(d)
    assert sorted(changed) == sorted(CONV1[2:])
    p = changed["cnn.VGG_16.convolution1_2.weight"]
    assert p.frozen == (False, True) and p.group_changed and p.group == ("default", None)
    assert p.settings == {}
    assert (d.a.frozen_tensors, d.b.frozen_tensors) == (2, 4)
    assert (d.a.frozen_elements, d.b.frozen_elements) == (224, 808)
    assert (d.a.groups, d.b.groups) == (1, 1)


def test_hyperparameter_changes_old_and_new():
    d = diff("optimizer adam lr=1e-2\ngroup head: classifier lr=x0.5",
             "optimizer adam lr=1e-2\ngroup head: classifier lr=1e-4 weight_decay=0.1")
    changed = by_name(d)
    assert sorted(changed) == sorted(HEAD)
    p = changed["classifier.weight"]
    assert p.settings == {"lr": (0.005, 1e-4), "weight_decay": (0, 0.1)}
    assert not p.group_changed and p.group == ("head", "head")


def test_equal_numbers_are_not_a_change():
    d = diff("optimizer sgd lr=1 momentum=0", "optimizer sgd lr=1.0 momentum=0.0")
    assert d.changed == [] and d.empty


def test_a_parameter_frozen_on_both_sides_has_no_hyperparameter_changes():
    d = diff("freeze classifier\ngroup classifier lr=0.5", "freeze classifier\ngroup classifier lr=0.25")
    assert d.changed == []


def test_unfreezing_shows_the_values_it_trains_with():
    d = diff("freeze classifier\ngroup classifier lr=0.5", "group classifier lr=0.25")
    p = by_name(d)["classifier.bias"]
    assert p.frozen == (True, False) and p.settings == {"lr": (0.5, 0.25)}
    assert p.group == (None, "group@1:1") and p.group_sizes == (0, 2)


def test_a_group_that_loses_members_is_no_change_for_those_left_in_it():
    d = diff("group classifier lr=1e-2", "group classifier lr=1e-2\ngroup classifier.bias weight_decay=0.5")
    assert list(by_name(d)) == ["classifier.bias"]
    p = by_name(d)["classifier.bias"]
    assert p.settings == {"weight_decay": (0, 0.5)} and p.group_changed
    assert p.group == ("group@1:1", "group@1:1+group@2:1") and p.group_sizes == (2, 1)
    assert (d.a.groups, d.b.groups) == (2, 3)


def test_renaming_a_group_is_a_change():
    d = diff("group head: classifier lr=1e-2", "group cls: classifier lr=1e-2")
    assert sorted(by_name(d)) == sorted(HEAD)
    assert by_name(d)["classifier.bias"].group == ("head", "cls") and by_name(d)["classifier.bias"].settings == {}


def test_changing_the_optimizer_marks_keys_the_other_lacks():
    d = diff("optimizer adam", "optimizer sgd lr=1e-3")
    p = d.changed[0]
    assert len(d.changed) == 10
    assert p.settings["betas"] == ((0.9, 0.999), ABSENT)
    assert p.settings["momentum"] == (ABSENT, 0)
    assert "lr" not in p.settings
    data = diff_json(d, MODEL)
    assert data["params"][0]["settings"]["betas"] == {"old": [0.9, 0.999]}
    assert data["params"][0]["settings"]["momentum"] == {"new": 0}
    assert (data["a"]["optimizer"], data["b"]["optimizer"]) == ("adam", "sgd")


def test_text_report_groups_identical_changes_and_lists_spec_level_changes():
    d = diff("freeze cnn.VGG_16.convolution1_*\nclip l2 20", "step every 5 x0.5\nclip value 1")
    text = render_text(d, MODEL)
    assert text.splitlines()[0] == f"a.opt -> b.opt against {MODEL}: 10 tensors, 4,466 elements"
    assert "clip       l2 20 -> value 1" in text
    assert "schedule   none -> step every 5 epochs x0.5" in text
    block = "\n".join([f"  {n}" for n in CONV1] + ["      frozen        yes -> no",
                                                  "      group         (frozen) -> default (10 tensors)"])
    assert block in text
    assert "changed       4 of 10 parameters (808 elements)" in text
    assert "frozen        4 tensors, 808 elements -> 0 tensors, 0 elements" in text
    assert "param groups  1 -> 1" in text


def test_models_with_different_parameters_are_refused():
    a = resolve_spec(specopt.parse("clip l2 1"), Network)
    b = resolve_spec(specopt.parse("clip l2 1"), lambda: nn.Linear(2, 3))
    with pytest.raises(ValueError, match="different parameters"):
        diff_resolutions(a, b, "a", "b")


def test_a_spec_that_freezes_everything_can_be_compared():
    d = diff("clip l2 1", "freeze **")
    assert len(d.changed) == 10 and (d.a.groups, d.b.groups) == (1, 0)
    assert all(p.frozen == (False, True) and p.settings == {} for p in d.changed)


def test_each_spec_is_resolved_against_a_fresh_model():
    models = []

    def make():
        models.append(Network())
        return models[-1]

    resolve_spec(specopt.parse("freeze classifier"), make)
    resolve_spec(specopt.parse("freeze cnn"), make)
    assert len(models) == 2 and models[0] is not models[1]


# --- command line ------------------------------------------------------------------------------

def run(*args: str) -> subprocess.CompletedProcess:
    return run_specopt(*args, timeout=180)  # compiles two specs


def test_cli_text_and_json(tmp_path):
    new = tmp_path / "new.opt"
    new.write_text("optimizer adam lr=1e-2 weight_decay=1e-3\nfreeze cnn.VGG_16.convolution1_1\n"
                   "group head: classifier lr=x0.1 weight_decay=0\nclip l2 20\nstep every 10 x0.1\n")
    out = run("diff", "examples/seed.opt", str(new), "--model", MODEL)
    assert out.returncode == 0, out.stderr
    assert "  classifier.weight\n  classifier.bias\n      group         default (2 tensors) -> head (2 tensors)\n" \
           "      lr            0.01 -> 0.001\n      weight_decay  0.001 -> 0\n" in out.stdout
    assert "param groups  2 -> 2" in out.stdout
    out = run("diff", "examples/seed.opt", str(new), "--model", MODEL, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["totals"] == {"params": 10, "changed": 8, "changed_elements": 4242}
    assert data["identical"] is False
    conv2 = next(p for p in data["params"] if p["name"] == "cnn.VGG_16.convolution2_1.weight")
    assert conv2["settings"] == {"lr": {"old": 0.001, "new": 0.01}}
    assert data["a"]["frozen"] == {"tensors": 4, "elements": 808}


def test_cli_spec_errors_of_both_files_exit_1(tmp_path):
    bad_a, bad_b = tmp_path / "a.opt", tmp_path / "b.opt"
    bad_a.write_text("frezee a\n")
    bad_b.write_text("freeze convolution3*\n")
    out = run("diff", str(bad_a), str(bad_a), "--model", MODEL)
    assert out.returncode == 1 and out.stderr.count("unknown statement 'frezee' [E101]") == 2
    out = run("diff", "examples/seed.opt", str(bad_b), "--model", MODEL)
    assert out.returncode == 1 and f"{bad_b}:1:8: error: selector 'convolution3*' selects nothing" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [
    ("diff", "examples/seed.opt", "examples/seed.opt"),
    ("diff", "examples/seed.opt", "missing.opt", "--model", MODEL),
    ("diff", "examples/seed.opt", "examples/seed.opt", "--model", "examples/seed_model.py:Nope"),
])
def test_cli_usage_errors_exit_2(args):
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
