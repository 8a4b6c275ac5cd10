"""Precise selectors: the owner-class form ``@@``, the flags ``/i`` and ``/first``, and how an
intersection and a complement treat a tied tensor's names.

The models are shaped like the ones that motivated each form: timm ConvNeXt's classifier head
(a ``NormMlpClassifierHead`` owning a norm and the classifier ``fc``), transformers' mixed
spellings of norm layers, and GPT-2's ``lm_head.weight`` tied to ``transformer.wte.weight``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
import torch
from torch import nn

import specopt
from specopt.language.plan_data import dump_plan, parse_data
from specopt.diagnostics import SpecError
from specopt.report.explain import select
from specopt.language.fmt import format_text
from specopt.plan.plan import Plan, Selector
from conftest import ROOT

NO_DECAY = "optimizer adamw weight_decay=0.05\ngroup no_decay: ndim<2 @@*Norm* weight_decay=0"


# --- models -----------------------------------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):
    """timm's channels-first LayerNorm: a subclass, so ``@@LayerNorm`` covers it."""


class NormMlpClassifierHead(nn.Module):
    """timm's head: a norm, then the classifier; it holds no parameter itself."""

    def __init__(self, width: int, classes: int):
        super().__init__()
        self.norm = LayerNorm2d(width)
        self.fc = nn.Linear(width, classes)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, norm, MLP, and a layer-scale vector the block holds itself."""

    def __init__(self, width: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(width, width, 7, padding=3, groups=width)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.Linear(4 * width, width))
        self.gamma = nn.Parameter(torch.ones(width))


class ConvNeXtLike(nn.Module):
    """A stem, two blocks and timm's ``NormMlpClassifierHead``."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 4, stride=4), LayerNorm2d(width))
        self.stages = nn.Sequential(ConvNeXtBlock(width), ConvNeXtBlock(width))
        self.head = NormMlpClassifierHead(width, classes)


class T5LayerNorm(nn.Module):
    """A norm class of its own, not derived from ``nn.LayerNorm``."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))


class LlamaRMSNorm(T5LayerNorm):
    """Another spelling: ``RMSNorm``."""


class MixedNorms(nn.Module):
    """Norm layers spelled as transformers' models spell them."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.LayerNorm = nn.LayerNorm(width)  # BERT
        self.layernorm = nn.LayerNorm(width)  # ViT
        self.layer_norm = T5LayerNorm(width)  # T5
        self.norm = LlamaRMSNorm(width)  # Llama


class GPT2Block(nn.Module):
    """Two norms, attention and MLP projections."""

    def __init__(self, width: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.c_attn = nn.Linear(width, 3 * width)
        self.ln_2 = nn.LayerNorm(width)
        self.c_fc = nn.Linear(width, 4 * width)


class GPT2Like(nn.Module):
    """GPT-2's layout: ``lm_head.weight`` is ``transformer.wte.weight``, whose first name that is."""

    def __init__(self, vocab: int = 16, width: int = 4):
        super().__init__()
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(vocab, width), "wpe": nn.Embedding(8, width),
                                          "h": nn.ModuleList([GPT2Block(width)]), "ln_f": nn.LayerNorm(width)})
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight


def resolve(text: str, model: nn.Module):
    return specopt.parse(text).resolve(model)


def values(text: str, model: nn.Module, key: str) -> dict:
    return {p.info.name: p.settings[key].value for p in resolve(text, model).params}


def only_error(text: str, model: nn.Module):
    with pytest.raises(SpecError) as info:
        resolve(text, model)
    (diag,) = info.value.diagnostics
    return diag


# --- 1. @@: the class of the module that owns the parameter -----------------------------------

def test_owner_form_keeps_decay_on_the_classifier_of_a_norm_head():
    wd = values(NO_DECAY, ConvNeXtLike(), "weight_decay")
    assert wd["head.fc.weight"] == 0.05  # owned by a Linear inside NormMlpClassifierHead
    assert wd["head.norm.weight"] == wd["head.norm.bias"] == 0
    assert wd["stem.1.weight"] == wd["stages.0.norm.weight"] == 0
    assert wd["stages.0.gamma"] == wd["head.fc.bias"] == 0  # ndim<2
    assert wd["stages.0.mlp.0.weight"] == wd["stem.0.weight"] == 0.05


def test_subtree_form_covers_everything_below_a_matching_module():
    wd = values(NO_DECAY.replace("@@", "@"), ConvNeXtLike(), "weight_decay")
    assert wd["head.fc.weight"] == 0  # what the owner form exists to avoid
    assert wd["stages.0.mlp.0.weight"] == 0.05


def test_timm_convnext_atto_on_the_meta_device():
    try:
        import timm
    except (ImportError, RuntimeError) as exc:  # absent, or its torchvision built for another torch
        pytest.skip(f"timm cannot be imported here: {type(exc).__name__}: {exc}")
    with torch.device("meta"):
        model = timm.create_model("convnext_atto", pretrained=False)
    assert type(model.head).__name__ == "NormMlpClassifierHead"
    wd = values(NO_DECAY, model, "weight_decay")
    assert wd["head.fc.weight"] == 0.05
    assert wd["head.norm.weight"] == wd["head.norm.bias"] == 0
    assert values(NO_DECAY.replace("@@", "@"), model, "weight_decay")["head.fc.weight"] == 0


def test_owner_form_matches_base_classes_as_the_subtree_form_does():
    lr = values("group @@LayerNorm lr=0.5", ConvNeXtLike(), "lr")
    assert lr["stem.1.weight"] == lr["head.norm.weight"] == lr["stages.1.norm.bias"] == 0.5  # LayerNorm2d too
    assert lr["head.fc.weight"] == lr["stages.0.gamma"] == 0.001


def test_owner_form_selects_what_a_container_holds_itself():
    lr = values("group @@ConvNeXtBlock lr=0.5", ConvNeXtLike(), "lr")
    assert [n for n, v in lr.items() if v == 0.5] == ["stages.0.gamma", "stages.1.gamma"]


def test_owner_form_of_a_container_without_parameters_hints_at_the_subtree_form():
    diag = only_error("freeze @@NormMlpClassifierHead", ConvNeXtLike())
    assert diag.code == "E301"
    assert "'@NormMlpClassifierHead' selects those of its submodules" in diag.hint
    assert "head.norm.weight" in diag.hint


def test_owner_hint_with_first_looks_at_first_names():
    diag = only_error("freeze @@ModuleDict/first", GPT2Like())
    assert diag.code == "E301" and "'@ModuleDict' selects those of its submodules" in diag.hint
    assert "'transformer.wte.weight'" in diag.hint


# --- 2. /i: ignore case -----------------------------------------------------------------------

def test_ignore_case_on_names_matches_every_spelling():
    lr = values("group *norm*/i lr=0.5", MixedNorms(), "lr")
    assert {n for n, v in lr.items() if v == 0.5} == {
        "LayerNorm.weight", "LayerNorm.bias", "layernorm.weight", "layernorm.bias", "layer_norm.weight",
        "norm.weight"}
    assert {n for n, v in values("group *layer{,_}norm*/i lr=0.5", MixedNorms(), "lr").items()
            if v == 0.5} >= {"LayerNorm.weight", "layernorm.weight", "layer_norm.weight"}


def test_case_matters_without_the_flag():
    lr = values("group layernorm lr=0.5", MixedNorms(), "lr")
    assert {n for n, v in lr.items() if v == 0.5} == {"layernorm.weight", "layernorm.bias"}


def test_an_anchored_selector_that_matches_only_below_the_root_says_so_ignoring_case():
    diag = only_error("freeze ^NORM/i", ConvNeXtLike())
    assert diag.code == "E301"
    assert diag.hint == "'NORM' matches below the root: drop the '^', or spell the path from the root"


def test_ignore_case_on_classes():
    lr = values("group @@*norm*/i lr=0.5", MixedNorms(), "lr")
    assert {n for n, v in lr.items() if v != 0.5} == {"dense.weight", "dense.bias"}
    lr = values("group @*RMSNORM/i lr=0.5", MixedNorms(), "lr")
    assert {n for n, v in lr.items() if v == 0.5} == {"norm.weight"}


# --- 3. /first: a tied tensor's first name only ------------------------------------------------

def test_a_tied_tensor_is_selected_through_its_alias():
    lr = values("optimizer adamw lr=1e-3\ngroup lm_head lr=x0.1", GPT2Like(), "lr")
    assert lr["transformer.wte.weight"] == 1e-4
    assert "lm_head.weight" not in lr  # listed once, under its first name


def test_first_flag_ignores_aliases_and_the_hint_names_the_alias():
    diag = only_error("group lm_head/first lr=x0.1", GPT2Like())
    assert diag.code == "E301"
    assert "lm_head/first" in diag.message
    assert "'lm_head.weight'" in diag.hint and "'transformer.wte.weight'" in diag.hint
    assert "drop '/first'" in diag.hint


def test_first_flag_selects_through_the_first_name():
    lr = values("group wte/first lr=0.5", GPT2Like(), "lr")
    assert lr["transformer.wte.weight"] == 0.5


def test_first_flag_on_class_atoms_follows_the_first_name():
    lr = values("group @@Linear & ndim>=2 lr=0.5", GPT2Like(), "lr")
    assert lr["transformer.wte.weight"] == 0.5  # its alias lm_head.weight is owned by a Linear
    lr = values("group @@Linear/first & ndim>=2 lr=0.5", GPT2Like(), "lr")
    assert lr["transformer.wte.weight"] == 0.001
    assert lr["transformer.h.0.c_fc.weight"] == 0.5


# --- 4. & and ! on tied tensors -----------------------------------------------------------------

def test_an_intersection_must_hold_on_one_name():
    diag = only_error("group lm_head & wte lr=0.5", GPT2Like())
    assert diag.code == "E302"
    assert "different names of a tied tensor" in diag.hint
    diag = only_error("group @@Embedding & lm_head lr=0.5", GPT2Like())
    assert diag.code == "E302"


def test_a_rank_test_holds_on_every_name():
    assert values("group lm_head & ndim==2 lr=0.5", GPT2Like(), "lr")["transformer.wte.weight"] == 0.5


def test_a_complement_excludes_a_tensor_that_any_name_matches():
    lr = values("group transformer & !lm_head lr=0.5", GPT2Like(), "lr")
    assert lr["transformer.wte.weight"] == 0.001
    assert lr["transformer.wpe.weight"] == 0.5
    lr = values("group !lm_head lr=0.5", GPT2Like(), "lr")
    assert lr["transformer.wte.weight"] == 0.001


def test_a_complement_with_first_looks_at_the_first_name_only():
    lr = values("group transformer & !~lm_head/first lr=0.5", GPT2Like(), "lr")
    assert lr["transformer.wte.weight"] == 0.5
    lr = values("group * & !wte/first lr=0.5", GPT2Like(), "lr")
    assert lr["transformer.wte.weight"] == 0.001


def test_explain_selects_as_a_spec_does():
    compiled = specopt.compile("group lm_head & ndim==2 lr=0.5", GPT2Like())
    assert select(compiled, "transformer & !lm_head", None) == tuple(
        n for n, _ in GPT2Like().named_parameters() if n != "transformer.wte.weight")
    assert select(compiled, "@@*norm*/i", None)[0] == "transformer.h.0.ln_1.weight"


# --- 5. syntax, text, data ----------------------------------------------------------------------

@pytest.mark.parametrize("text, fields", [
    ("@@*Norm*", {"kind": "class", "pattern": "*Norm*", "owner": True}),
    ("@*norm*/i", {"kind": "class", "pattern": "*norm*", "ignore_case": True}),
    ("^lm_head/first", {"kind": "name", "pattern": "lm_head", "anchored": True, "first_name": True}),
    ("!~x/first,i", {"pattern": "x", "negated": True, "optional": True, "ignore_case": True, "first_name": True}),
    ("x/i,first", {"pattern": "x", "ignore_case": True, "first_name": True}),
])
def test_atoms_parse_into_fields_and_print_back(text, fields):
    atom = specopt.parse(f"freeze {text}").plan.statements[0].selectors[0].atoms[0]
    assert {k: getattr(atom, k) for k in fields} == fields
    assert specopt.parse(f"freeze {atom.text}").plan.statements[0].selectors[0].atoms[0].text == atom.text
    assert atom.text == text.replace("first,i", "i,first")  # flags in any order; written as /i,first


def test_fmt_keeps_the_new_forms():
    text = "group  a:lm_head/first,i&@@*Norm*/i   !b/first lr=1\n"
    assert format_text(text) == "group a: lm_head/i,first & @@*Norm*/i !b/first lr=1\n"


@pytest.mark.parametrize("selector, column, width, problem, hint", [
    ("x/y", 10, 1, "unknown flag 'y'", "did you mean 'i'?"),
    ("x/fist", 10, 4, "unknown flag 'fist'", "did you mean 'first'?"),
    ("x/i,i", 12, 1, "flag 'i' given twice", None),
    ("x/i/first", 11, 1, "one '/' per selector", "combine flags with a comma: /i,first"),
    ("x/", 9, 1, "'/' without a flag", "flags: /i (ignore case), /first (a tied tensor's first name only)"),
    ("x/i,", 11, 1, "empty flag", "flags: /i (ignore case), /first (a tied tensor's first name only)"),
])
def test_a_bad_flag_is_a_positioned_E209(selector, column, width, problem, hint):
    text = f"freeze {selector}"
    with pytest.raises(SpecError) as info:
        specopt.parse(text)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.message, diag.hint) == ("E209", f"bad selector '{selector}': {problem}", hint)
    assert (diag.span.start, diag.span.end) == (column - 1, column - 1 + width)


def test_flags_on_a_rank_test_are_E209():
    with pytest.raises(SpecError) as info:
        specopt.parse("freeze ndim<2/i")
    (diag,) = info.value.diagnostics
    assert diag.code == "E209" and "flags without a pattern" in diag.message


def test_plans_as_data_keep_the_new_fields_and_old_plans_still_load():
    plan = specopt.parse("group a: @@*Norm*/i lm_head/first lr=1").plan
    data = dump_plan(plan)
    atoms = [t["atoms"][0] for t in data["statements"][0]["selectors"]]
    assert (atoms[0]["owner"], atoms[0]["ignore_case"], atoms[1]["first_name"]) == (True, True, True)
    again, _ = parse_data(json.dumps(data), "json")
    assert dump_plan(again) == data
    old = {"statements": [{"kind": "freeze", "selectors": [{"atoms": [{"kind": "class", "pattern": "X"}]}]}]}
    atom = parse_data(json.dumps(old), "json")[0].statements[0].selectors[0].atoms[0]
    assert (atom.owner, atom.ignore_case, atom.first_name, atom.text) == (False, False, False, "@X")


@pytest.mark.parametrize("atom, words", [
    ({"kind": "name", "pattern": "x", "owner": True}, "'owner' (@@) applies to class selectors only"),
    ({"kind": "ndim", "pattern": "<2", "ignore_case": True}, "a rank test takes no flags"),
    ({"kind": "name", "pattern": "x/i"}, "a pattern cannot hold '/'"),
])
def test_plans_as_data_reject_forms_spec_text_cannot_write(atom, words):
    data = {"statements": [{"kind": "freeze", "selectors": [{"atoms": [atom]}]}]}
    with pytest.raises(SpecError) as info:
        parse_data(json.dumps(data), "json")
    (diag,) = info.value.diagnostics
    assert diag.code == "E108" and words in diag.message
    assert diag.path == ("statements", 0, "selectors", 0, "atoms", 0)


def test_the_schema_describes_the_new_fields():
    fields = Plan.model_json_schema()["$defs"]["Selector"]["properties"]
    assert {"owner", "ignore_case", "first_name"} <= set(fields)
    assert all(fields[k]["default"] is False for k in ("owner", "ignore_case", "first_name"))


def test_selector_text_shows_every_form():
    atom = Selector(kind="class", pattern="*Norm*", owner=True, ignore_case=True, first_name=True, negated=True)
    assert atom.text == "!@@*Norm*/i,first"


def _selector_section_examples():
    """The Python examples of docs/language.md's selector section, each with the output it shows."""
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = text[text.index("## 9. Selectors"):text.index("## 10. ")]
    return re.findall(r"```python\n(.*?)```\n\nprints:\n\n```text\n(.*?)```", section, re.S)


@pytest.mark.parametrize("code, shown", _selector_section_examples())
def test_the_selector_section_python_examples_print_what_it_shows(code, shown):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/language.md", "exec"), {"__name__": "docs_example"})
    assert out.getvalue() == shown
