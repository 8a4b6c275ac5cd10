"""Checkpoints that explain themselves: the spec they were saved under, and what changed when loaded under another."""

from __future__ import annotations

import warnings

import pytest
import torch

import specopt
from specopt.runtime.compiled import CheckpointError, CheckpointWarning
from specopt.report.diff import diff_resolutions, render_text
from specopt.report.spec_changes import plan_hash

OLD = "optimizer adam lr=1e-2\nfreeze cnn.VGG_16.convolution1_*\ngroup convolution2* lr=1e-3\nclip l2 20\n"
NEW = "optimizer adam lr=1e-2\nfreeze cnn.VGG_16.convolution1_1\ngroup head: classifier lr=x0.1\nclip l2 10\n"


def _saved(text: str, model) -> dict:
    compiled = specopt.compile(text, model)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    compiled.optimizer.step()
    return compiled.state_dict()


def _network():
    from seed_model import Network

    torch.manual_seed(0)
    return Network()


def test_the_checkpoint_records_the_spec_and_its_plans_hash():
    saved = _saved(OLD, _network())["spec"]
    assert saved["text"] == OLD and saved["name"] == "<string>"
    assert saved["hash"] == plan_hash(specopt.parse(OLD).plan) and len(saved["hash"]) == 16
    assert saved["plan"]["statements"][1]["kind"] == "freeze"


def test_layout_and_comments_do_not_change_the_hash():
    reformatted = "# the same spec\n" + OLD.replace("\n", ";  # why\n", 1).replace("lr=1e-3", "lr = 1e-3")
    assert plan_hash(specopt.parse(reformatted).plan) == plan_hash(specopt.parse(OLD).plan)
    assert plan_hash(specopt.parse(NEW).plan) != plan_hash(specopt.parse(OLD).plan)


def test_the_same_spec_loads_without_a_word():
    saved = _saved(OLD, _network())
    again = specopt.compile(OLD, _network())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = again.load_state_dict(saved)
    assert result.complete and result.spec_change is None


def test_a_strict_load_under_another_spec_says_what_changed_in_diffs_words_and_loads_nothing():
    model = _network()
    saved = _saved(OLD, model)
    target = specopt.compile(NEW, model)
    expected = render_text(diff_resolutions(specopt.parse(OLD).resolve(_network()), target.resolution,
                                            "<string> (checkpoint)", "<string> (now)"), "Network")
    with pytest.raises(CheckpointError) as exc:
        target.load_state_dict(saved)
    assert "E505" in [d.code for d in exc.value.diagnostics]
    diagnostic = next(d for d in exc.value.diagnostics if d.code == "E505")
    assert diagnostic.message.startswith("the checkpoint was saved under another spec (<string>, plan ")
    for line in expected.splitlines():
        assert line in diagnostic.hint
    assert "clip       l2 20 -> l2 10" in diagnostic.hint and "frozen        yes -> no" in diagnostic.hint
    assert target.optimizer.state_dict()["state"] == {}, "nothing was loaded"


def test_a_non_strict_load_warns_with_the_changes_and_restores_by_name():
    model = _network()
    saved = _saved(OLD, model)
    target = specopt.compile(NEW, model)
    with pytest.warns(CheckpointWarning) as caught:
        result = target.load_state_dict(saved, strict=False)
    text = "\n".join(str(w.message) for w in caught)
    assert "saved under another spec" in text and "lr            0.001 -> 0.01" in text
    assert result.spec_change is not None and result.spec_change.diff.changed
    assert result.not_restored == ["cnn.VGG_16.convolution1_2.bias", "cnn.VGG_16.convolution1_2.weight"]
    assert target.optimizer.param_groups[-1]["lr"] == pytest.approx(1e-3), "the new spec's lr"


def test_a_spec_written_differently_that_trains_the_same_is_no_change():
    saved = _saved("optimizer adam\nclip l2 1", _network())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = specopt.compile("clip l2 1.0", _network()).load_state_dict(saved)
    assert result.spec_change is None


def test_a_checkpoint_without_a_spec_record_is_not_compared():
    saved = _saved(OLD, _network())
    del saved["spec"]
    result = specopt.compile(NEW, _network()).load_state_dict(saved, strict=False)
    assert result.spec_change is None


def test_a_saved_spec_that_no_longer_fits_the_model_is_reported_as_such():
    saved = _saved(OLD + "freeze ~gone\n", _network())
    saved["spec"]["text"] = saved["spec"]["text"].replace("~gone", "gone")  # as if the model lost it
    with pytest.warns(CheckpointWarning, match="cannot be compared with this one against this model: "
                                                "selector 'gone' selects nothing"):
        specopt.compile(OLD, _network()).load_state_dict(saved, strict=False)
