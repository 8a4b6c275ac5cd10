"""The ``layers`` statement: slots, numbered layers, ``with``, the factor, its place in the cascade, its errors."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import specopt
from conftest import ROOT
from models import vit
from specopt.report.resolution_report import assignment_json, text_report


def lrs(text: str, model) -> dict[str, float]:
    """Each parameter's lr as a factor of the base lr (1 here)."""
    resolution = specopt.parse("optimizer sgd lr=1\n" + text).resolve(model)
    return {p.info.name: p.settings["lr"].value for p in resolution.params}


def depths(text: str, model) -> dict[str, int]:
    resolution = specopt.parse(text).resolve(model)
    return {p.info.name: next(o.depth for o in p.touched if hasattr(o, "depth")) for p in resolution.params}


def errors(text: str, model) -> list[tuple[str, str]]:
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(text).resolve(model)
    return [(d.code, d.message) for d in info.value.diagnostics]


def stack(*names: str, blocks: int = 0, after: tuple[str, ...] = ()) -> nn.Module:
    """A module with a Linear(2, 2) under each dotted name, ``blocks`` of them under ``blocks`` next,
    then those of ``after``."""
    model = nn.Module()
    for name in names + tuple(f"blocks.{i}" for i in range(blocks)) + after:
        parent = model
        *path, last = name.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(last, nn.Linear(2, 2))
    return model


# --- slots, numbers, depths ------------------------------------------------------------------------

def test_numbers_compare_as_numbers_and_the_rest_is_on_top():
    model = stack("embed", after=("head",), blocks=12)
    found = depths("layers embed then blocks.* decay=0.5", model)
    assert found["embed.weight"] == 0 and found["blocks.2.bias"] == 3 and found["blocks.10.weight"] == 11
    assert found["head.weight"] == 13
    factors = lrs("layers embed then blocks.* decay=0.5", model)
    assert factors["head.weight"] == 1 and factors["blocks.11.weight"] == 0.5 and factors["embed.bias"] == 0.5 ** 13


def test_several_wildcards_compare_element_by_element():
    model = stack(*(f"layers.{i}.blocks.{j}" for i, j in [(1, 0), (0, 10), (0, 2), (1, 1)]))
    found = depths("layers layers.*.blocks.* decay=0.5", model)
    order = sorted({n.rsplit(".", 1)[0]: d for n, d in found.items()}.items(), key=lambda kv: kv[1])
    assert [name for name, _ in order] == ["layers.0.blocks.2", "layers.0.blocks.10", "layers.1.blocks.0",
                                           "layers.1.blocks.1"]
    assert max(found.values()) == 3  # every parameter is in a slot: no layer on top


def test_a_wildcard_run_inside_a_segment_captures_its_digits():
    model = stack("conv1", "layer1.0", "layer1.1", "layer2.0", "layer10.0", "fc")
    found = depths("layers ^conv1 then layer*.* decay=0.5", model)
    assert [found[f"{m}.weight"] for m in ("conv1", "layer1.0", "layer1.1", "layer2.0", "layer10.0", "fc")] == \
        [0, 1, 2, 3, 4, 5]


def test_a_slot_without_wildcards_is_one_layer_and_outermost_modules_hold_their_subtree():
    model = stack("stem.a", "stem.b", "blocks.0.blocks.7", "blocks.1.x", "head")
    found = depths("layers stem then blocks.* decay=0.5", model)
    assert found["stem.a.weight"] == found["stem.b.bias"] == 0
    assert found["blocks.0.blocks.7.weight"] == 1 and found["blocks.1.x.weight"] == 2 and found["head.bias"] == 3


def test_anchored_and_case_folded_slots():
    model = stack("Blocks.0", "Blocks.1", "x.Blocks.5")
    found = depths("layers ^blocks.*/i decay=0.5", model)
    assert found["Blocks.0.weight"] == 0 and found["Blocks.1.weight"] == 1 and found["x.Blocks.5.weight"] == 2


def test_a_rank_selector_and_an_intersection_in_a_slot():
    model = stack("embed", blocks=3)
    found = depths("layers embed & ndim==2 then blocks.* & !blocks.1 decay=0.5", model)
    assert found["embed.weight"] == 0 and found["blocks.0.weight"] == 1 and found["blocks.2.bias"] == 2
    assert found["embed.bias"] == found["blocks.1.weight"] == 3  # the rest


def test_an_optional_slot_may_select_nothing():
    assert depths("layers ~missing then blocks.* decay=0.5", stack(blocks=2))["blocks.1.weight"] == 1


# --- with ------------------------------------------------------------------------------------------

def swin_like() -> nn.Module:
    return stack("patch_embed", "layers.0.blocks.0", "layers.0.blocks.1", "layers.1.downsample",
                 "layers.1.blocks.0", "layers.1.blocks.1", "norm", "head")


def test_with_joins_the_first_layer_starting_with_its_numbers_or_the_last_one():
    found = depths("layers patch_embed then layers.*.blocks.* with layers.*.downsample ^norm decay=0.5", swin_like())
    assert found["layers.1.downsample.weight"] == found["layers.1.blocks.0.weight"] == 3
    assert found["norm.weight"] == found["layers.1.blocks.1.weight"] == 4
    assert found["head.weight"] == 5


def test_a_with_that_joins_nothing_is_e303():
    model = stack("blocks.0", "blocks.1", "extra.5")
    assert errors("layers blocks.* with extra.* decay=0.5", model) == [
        ("E306", "'extra.*' matches 'extra.5', numbered 5, which starts no layer of slot 1")]


# --- the factor ---------------------------------------------------------------------------------------

def test_min_scale_clamps_and_layers_of_one_factor_share_a_param_group():
    model = stack("embed", after=("head",), blocks=4)
    factors = lrs("layers embed then blocks.* decay=0.5 min_scale=0.2", model)
    assert factors["embed.weight"] == factors["blocks.0.weight"] == factors["blocks.1.weight"] == 0.2
    assert factors["blocks.2.weight"] == 0.25 and factors["blocks.3.weight"] == 0.5
    resolution = specopt.parse("optimizer sgd lr=1; layers embed then blocks.* decay=0.5 min_scale=0.3").resolve(model)
    names = [g.name for g in resolution.groups]
    assert names == ["layers@1:21 x0.3", "layers@1:21 x0.5", "layers@1:21 x1"]


def test_freeze_below_freezes_where_it_stands_and_a_later_unfreeze_wins():
    model = stack("embed", after=("head",), blocks=3)
    spec = specopt.parse("layers embed then blocks.* decay=0.5 freeze_below=0.2\nunfreeze embed")
    resolution = spec.resolve(model)
    frozen = {p.info.name for p in resolution.params if p.frozen}
    assert frozen == {"blocks.0.weight", "blocks.0.bias"}  # x0.125; embed (x0.0625) is unfrozen again
    origin = resolution.param("blocks.0.weight").frozen_by
    assert origin.label == "layers@1:1 depth 1 (x0.125)" and origin.frozen


def test_a_frozen_layer_can_be_unfrozen_at_a_point_of_the_run():
    model = stack("embed", after=("head",), blocks=2)
    compiled = specopt.parse("optimizer sgd lr=1\nlayers embed then blocks.* decay=0.5 freeze_below=0.4\n"
                             "unfreeze blocks.0 at epoch 2").compile(model)
    block = model.get_submodule("blocks.0")
    assert not block.weight.requires_grad and not model.embed.weight.requires_grad
    for _ in range(2):
        compiled.optimizer.step()
        compiled.end_epoch()
    assert block.weight.requires_grad and not model.embed.weight.requires_grad
    assert ("blocks.0.weight  (by layers@2:1 depth 1 (x0.25); trainable from epoch 2 (unfreeze@3:1))"
            in text_report(compiled.resolution, None, None))


# --- the cascade ----------------------------------------------------------------------------------

def test_it_overrides_earlier_lrs_later_statements_override_it_and_it_sets_only_lr():
    model = stack("embed", after=("head",), blocks=2)
    spec = ("optimizer adamw lr=1e-3 weight_decay=0.05\ngroup blocks lr=5 weight_decay=0\n"
            "layers embed then blocks.* decay=0.5\ngroup head lr=x10")
    resolution = specopt.parse(spec).resolve(model)
    block = resolution.param("blocks.1.weight")
    assert block.settings["lr"].value == 5e-4 and block.settings["weight_decay"].value == 0
    assert resolution.param("head.weight").settings["lr"].value == 1e-2
    assert resolution.warnings == ()


def test_with_several_optimizers_each_parameter_scales_its_own_optimizers_lr():
    model = stack("embed", blocks=2, after=("head",))
    spec = "optimizer adamw lr=1e-3\noptimizer sgd for blocks lr=0.1\nlayers embed then blocks.* decay=0.5"
    resolution = specopt.parse(spec).resolve(model)
    lr = {p.info.name: p.settings["lr"].value for p in resolution.params}
    assert (lr["embed.weight"], lr["blocks.0.weight"], lr["blocks.1.bias"], lr["head.weight"]) == \
        (1.25e-4, 0.025, 0.05, 1e-3)
    assert "sets lr=x0.5^2 (= 0.025)" in specopt.parse(spec).compile(model).explain("blocks.0.bias")


def test_a_layers_statement_overridden_everywhere_is_w301():
    spec = specopt.parse("optimizer sgd lr=1\nlayers blocks.* decay=0.5\ngroup ** lr=2")
    assert [w.code for w in spec.resolve(stack(blocks=2)).warnings] == ["W301"]


def test_compiled_param_groups_keep_their_ratios_under_a_schedule():
    model = stack("embed", after=("head",), blocks=2)
    compiled = specopt.parse("optimizer sgd lr=1\nlayers embed then blocks.* decay=0.5\n"
                             "schedule step every 1 epochs x0.1").compile(model)
    assert [g["lr"] for g in compiled.optimizer.param_groups] == [0.125, 0.25, 0.5, 1.0]
    compiled.optimizer.step()
    compiled.end_epoch()
    assert [g["lr"] for g in compiled.optimizer.param_groups] == pytest.approx([0.0125, 0.025, 0.05, 0.1])


def test_reports_show_the_depth():
    model = stack("embed", after=("head",), blocks=2)
    spec = specopt.parse("optimizer sgd lr=1\nlayers embed then blocks.* decay=0.5")
    resolution = spec.resolve(model)
    report = text_report(resolution, None, None)
    assert "layers     layers@2:1: 4 layers, lr x0.5^(3 - depth)" in report
    assert re.search(r"3 +x1 +2  head \(no slot selects them\)", report)
    data = json.loads(json.dumps(assignment_json(resolution, spec.source)))
    set_by = data["params"][2]["settings"]["lr"]["set_by"]
    assert (set_by["depth"], set_by["top"], set_by["scale"], set_by["label"]) == (1, 3, 0.5 ** 2,
                                                                                 "layers@2:1 depth 1 (x0.25)")
    assert [(x["depth"], x["members"], x["tensors"]) for x in data["layers"]] == [
        (0, ["embed"], 2), (1, ["blocks.0"], 2), (2, ["blocks.1"], 2), (3, ["head"], 2)]


def test_explain_shows_the_power_and_the_depth():
    model = stack("embed", after=("head",), blocks=2)
    text = specopt.parse("optimizer sgd lr=1\nlayers embed then blocks.* decay=0.5").compile(model).explain("blocks.0.bias")
    assert "sets lr=x0.5^2 (= 0.25)" in text and re.search(r"lr=0.25 +by layers@2:1 depth 1 \(x0.25\)", text)


# --- the words then and with ------------------------------------------------------------------------

def test_then_and_with_are_keywords_only_after_a_selector_of_layers():
    model = stack("then", "with", "x")
    assert specopt.parse("freeze then with").resolve(model).param("then.weight").frozen
    assert specopt.parse("group with lr=1").plan.statements[0].selectors[0].atoms[0].pattern == "with"
    assert depths("layers {then} then {with} decay=0.5", model)["with.bias"] == 1
    with pytest.raises(specopt.SpecError, match="unexpected end of statement, expected a selector"):
        specopt.parse("layers x then")


# --- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, code, message", [
    ("layers a.** decay=0.5", "E233", "layers cannot be ordered: '**' matches any number of segments, so what it "
     "matches has no order"),
    ("layers a.*_* decay=0.5", "E233", "layers cannot be ordered: segment '*_*' holds wildcards apart from each "
     "other, so what each captured is ambiguous"),
    ("layers a.* & b.* decay=0.5", "E233", "layers cannot be ordered: 'a.*' and 'b.*' both have wildcards, so "
     "which one orders the layers is ambiguous"),
    ("layers a.* b.*.c.* decay=0.5", "E233", "layers cannot be ordered: the selectors of one slot must capture as "
     "many numbers each (they number the same layers)"),
    ("layers a.* with b.*.c.* decay=0.5", "E233", "layers cannot be ordered: 'b.*.c.*' captures 2 numbers, but its "
     "slot numbers its layers by one number"),
    ("layers a", "E234", "layers needs decay=D, the lr factor from one layer to the one below"),
    ("layers a decay=0.5 decays=1", "E234", "layers has no setting 'decays'"),
    ("layers a decay=0", "E207", "'decay' must be above 0 and at most 1, got 0"),
    ("layers a decay=1.5", "E207", "'decay' must be above 0 and at most 1, got 1.5"),
    ("layers a decay=0.5 min_scale=2", "E207", "'min_scale' must be between 0 and 1, got 2"),
    ("layers a decay=0.5 freeze_below=0", "E207", "'freeze_below' must be above 0 and at most 1, got 0"),
    ("layers a decay=x0.5", "E206", "'decay' takes a number, not a relative value"),
    ("layers a decay=0.5 decay=0.6", "E203", "'decay' is given twice"),
])
def test_plan_errors(text, code, message):
    with pytest.raises(specopt.SpecError) as info:
        specopt.parse(text)
    assert (code, message) in [(d.code, d.message) for d in info.value.diagnostics]


def test_model_errors():
    model = stack("embed", blocks=2, after=("norm", "head"))
    assert errors("layers embd then blocks.* decay=0.5", model)[0][0] == "E301"
    assert errors("layers * decay=0.5", model)[0] == (
        "E307", "'*' matches 'embed' (and 3 more modules), where a wildcard captured 'embed': layers are ordered "
                "by whole numbers")
    assert errors("layers blocks then blocks.1 decay=0.5", model) == [
        ("E308", "'blocks.1.weight' is selected by 'blocks' (slot 1) and by 'blocks.1' (slot 2), but it can be in "
                 "one layer only")]
    assert errors("layers embed with norm then blocks.* with norm decay=0.5", model)[0][0] == "E308"


def test_a_slot_that_selects_nothing_hides_the_errors_it_causes():
    model = stack("blocks.0", "extra.5")
    assert errors("layers blockz.* with extra.* decay=0.5", model) == [
        ("E301", "selector 'blockz.*' selects nothing (prefix it with ~ if that is intended)")]


# --- timm -------------------------------------------------------------------------------------------

TIMM = {
    "vit_base_patch16_224": "group no_decay: ndim<=1 cls_token pos_embed weight_decay=0\n"
                            "layers cls_token pos_embed patch_embed then blocks.* with ^norm decay=0.75",
    "swin_tiny_patch4_window7_224": "group no_decay: ndim<=1 relative_position_bias_table weight_decay=0\n"
                                    "layers patch_embed then layers.*.blocks.* with layers.*.downsample ^norm "
                                    "decay=0.75",
    "convnext_tiny": "group no_decay: ndim<=1 weight_decay=0\n"
                     "layers stem then stages.*.blocks.* with stages.*.downsample decay=0.75",
    "resnet50": "group no_decay: ndim<=1 weight_decay=0\nlayers ^conv1 ^bn1 then layer*.* decay=0.75",
}


def timm_layer_decay(model, **options) -> dict[int, tuple[float, float]]:
    """timm's own layer decay: each trained tensor's (lr scale, weight decay), by the tensor's id."""
    from timm.optim._param_groups import param_groups_layer_decay

    nwd = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    groups = param_groups_layer_decay(model, weight_decay=0.05, no_weight_decay_list=nwd, layer_decay=0.75,
                                      **options)
    return {id(p): (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}


def compare_with_timm(text: str, model, **options) -> None:
    """Every tensor: frozen in both or in neither, and the same lr scale and weight decay."""
    resolution = specopt.parse("optimizer adamw lr=1e-3 weight_decay=0.05\n" + text).resolve(model)
    theirs = timm_layer_decay(model, **options)
    for p in resolution.params:
        tensor = resolution.tensors[p.info.name]
        assert p.frozen == (id(tensor) not in theirs), p.info.name
        if not p.frozen:
            scale, decay = theirs[id(tensor)]
            assert p.settings["lr"].value / 1e-3 == pytest.approx(scale, rel=1e-12), p.info.name
            assert p.settings["weight_decay"].value == decay, p.info.name


@pytest.mark.parametrize("name", sorted(TIMM))
@pytest.mark.parametrize("extra, options", [("", {}), (" freeze_below=0.1", {"no_opt_scale": 0.1}),
                                            (" min_scale=0.05", {"min_scale": 0.05})])
def test_timm_layer_decay_is_matched_parameter_by_parameter(name, extra, options):
    from peers import peer

    timm = peer("timm")
    with torch.device("meta"):
        model = timm.create_model(name)
    text = TIMM[name] + extra
    assert len(("optimizer adamw lr=1e-3 weight_decay=0.05\n" + text).splitlines()) <= 3
    compare_with_timm(text, model, **options)


# --- the docs ---------------------------------------------------------------------------------------

def _section_examples():
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = text[text.index("## 15. Layer-wise"):]
    return re.findall(r"```python\n(.*?)```\n\nprints:\n\n```text\n(.*?)```", section, re.S)


@pytest.mark.parametrize("code, shown", _section_examples())
def test_the_layers_section_python_examples_print_what_it_shows(code, shown):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/language.md", "exec"), {"__name__": "docs_example"})
    assert out.getvalue() == shown


def test_the_layers_section_report_is_what_compile_prints(tmp_path):
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = text[text.index("## 15. Layer-wise"):]
    spec = re.search(r"```opt\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"\$ specopt compile layer_decay.opt.*?\n\.\.\.\n(.*?)```", section, re.S).group(1)
    resolution = specopt.parse(spec).resolve(vit())
    assert shown in text_report(resolution, None, None) + "\n"


# --- the statement is the groups written out by hand ------------------------------------------------

@given(blocks=st.integers(1, 12), decay=st.floats(0.05, 1.0), min_scale=st.sampled_from([0, 0.1, 0.5]),
       head=st.booleans())
def test_the_statement_equals_the_groups_written_out_by_hand(blocks, decay, min_scale, head):
    model = stack("embed", blocks=blocks, after=("head",) if head else ())
    top = blocks + head
    hand = [f"group embed lr=x{max(min_scale, decay ** top)!r}"]
    hand += [f"group blocks.{i} lr=x{max(min_scale, decay ** (top - 1 - i))!r}" for i in range(blocks)]
    ours = lrs(f"layers embed then blocks.* decay={decay!r} min_scale={min_scale}", model)
    assert ours == lrs("\n".join(hand), model)


def test_a_plan_as_data_round_trips_and_formats_back(tmp_path):
    from specopt.language.plan_data import dump_plan
    from specopt.language.fmt import format_text

    text = "layers cls_token pos_embed then blocks.* with ^norm decay=0.75 min_scale=0.1\n"
    spec = specopt.parse(text)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(dump_plan(spec.plan)))
    loaded = specopt.load(path).plan.statements[0]
    assert [[t.atoms[0].text for t in s.selectors + s.joins] for s in loaded.slots] == [
        ["cls_token", "pos_embed"], ["blocks.*", "^norm"]]
    assert loaded.setting("decay") == 0.75 and loaded.setting("min_scale") == 0.1
    assert format_text("layers  cls_token pos_embed  then blocks.*  with ^norm decay = 0.75 min_scale=0.1") == text
