"""The compile report, explain and diff say when parameters become trainable or frozen, and the loop's settings."""

from __future__ import annotations

import specopt
from loops import make_net
from specopt.report.diff import diff_resolutions, render_text
from specopt.report.explain import explain, render_text as explain_text
from specopt.report.resolution_report import describe_clip, describe_schedule, text_report
from specopt.report.training_report import training_report

SPEC = """freeze backbone norms=eval
unfreeze backbone.block1 at step 30 warmup 10 steps
unfreeze backbone at 50%
accumulate 4
ema 0.999 every=2
"""


def compiled_report(text: str = SPEC, **timing) -> str:
    compiled = specopt.compile(text, make_net(), **timing)
    res = compiled.resolution
    return text_report(res, describe_clip(res), describe_schedule(res), None, training_report(compiled))


def test_the_compile_report_lists_changes_over_the_run_in_time_order():
    report = compiled_report(steps=100)
    assert "backbone.block1.0.weight  (by freeze@1:1; trainable from step 30 (unfreeze@2:1, lr warmup 10 steps))" \
        in report
    assert ("over the run:\n"
            "  step 30        unfreeze@2:1  trainable: 4 tensors, 88 elements, lr warmup over 10 steps\n"
            "  50% (step 50)  unfreeze@3:1  trainable: 4 tensors, 56 elements\n") in report
    assert "accumulate 4 micro-batches per optimizer step (compiled.train_step divides each loss by 4)" in report
    assert ("ema        decay 0.999, updated every 2 optimizer steps, buffers averaged, on the model's device"
            in report)
    assert "norms      eval (running statistics fixed): 2 layers: backbone.block0.1, backbone.block1.1" in report


def test_explain_shows_when_a_parameter_becomes_trainable():
    compiled = specopt.compile(SPEC, make_net(), steps=100)
    text = explain_text(explain(compiled, "backbone.block1.0.weight"))
    assert "sets unfrozen from step 30 (lr warmup 10 steps)" in text
    assert "frozen by freeze@1:1 at the start, param group [1] default+unfreeze@2:1" in text
    assert "from step 30: trainable (by unfreeze@2:1, lr warmup 10 steps)" in text
    data = explain(compiled, "backbone.block1.0.weight").to_json()["params"][0]
    assert data["changes"][0]["moment"] == "step 30" and data["changes"][0]["warmup"] == "10 steps"


def test_diff_compares_when_parameters_become_trainable():
    a = specopt.parse(SPEC).resolve(make_net())
    b = specopt.parse("freeze backbone norms=eval\nunfreeze backbone at epoch 2\naccumulate 2").resolve(make_net())
    text = render_text(diff_resolutions(a, b, "a.opt", "b.opt"), "Net")
    assert "accumulate 4 -> 2" in text
    assert "ema        decay 0.999, updated every 2 optimizer steps, buffers averaged, on the model's device -> none" \
        in text
    assert ("over the run  trainable from step 30 (lr warmup 10 steps) -> trainable from epoch 2" in text)
    assert "over the run  trainable from 50% -> trainable from epoch 2" in text


def test_the_json_assignment_lists_each_parameters_changes():
    from specopt.report.resolution_report import assignment_json

    compiled = specopt.compile(SPEC, make_net(), steps=100)
    params = {p["name"]: p for p in assignment_json(compiled.resolution, compiled.source)["params"]}
    [change] = params["backbone.block1.0.weight"]["changes"]
    assert (change["at"], change["trainable"], change["warmup"], change["by"]["label"]) == (
        "step 30", True, "10 steps", "unfreeze@2:1")
    assert params["head.weight"]["changes"] == []
