"""The recipe book: every recipe compiles against a model shaped like its own, and agrees with the peer
library's own grouping where there is one (timm's layer decay, transformers' Trainer, torchvision's freezing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import specopt
import recipe_models
from peers import peer
from specopt.language.fmt import format_text

RECIPES = Path(__file__).resolve().parent.parent / "examples" / "recipes"
MODELS = {"mae_vit_finetune.opt": recipe_models.mae_vit, "convnext_finetune.opt": recipe_models.convnext,
          "llama_pretrain.opt": recipe_models.llama, "faster_rcnn.opt": recipe_models.faster_rcnn,
          "bert_finetune.opt": recipe_models.bert, "ulmfit.opt": recipe_models.ulmfit}


def load(name: str) -> specopt.Spec:
    return specopt.load(RECIPES / name)


def test_every_recipe_has_a_model_and_the_index_lists_it():
    assert sorted(p.name for p in RECIPES.glob("*.opt")) == sorted(MODELS)
    index = (RECIPES / "README.md").read_text(encoding="utf-8")
    assert all(f"({name})" in index for name in MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_recipe_names_its_source_and_says_what_each_line_does(name):
    text = (RECIPES / name).read_text(encoding="utf-8")
    header, *paragraphs = text.split("\n\n")
    assert header.startswith("# ") and "recipe_models.py:" in header
    for paragraph in paragraphs:
        assert paragraph.startswith("# ") or paragraph.startswith("clip "), f"{name}: no comment on {paragraph!r}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_recipe_is_in_canonical_form(name):
    text = (RECIPES / name).read_text(encoding="utf-8")
    assert format_text(text) == text


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_recipe_compiles_without_warnings(name):
    compiled = load(name).compile(MODELS[name](), steps_per_epoch=100)
    assert compiled.resolution.warnings == ()


@pytest.mark.parametrize("factory, shape", [(recipe_models.mae_vit, (2, 3, 32, 32)), (recipe_models.llama, 64),
                                            (recipe_models.bert, 100), (recipe_models.ulmfit, 100)])
def test_the_recipe_models_run_forward(factory, shape):
    x = torch.randn(shape) if isinstance(shape, tuple) else torch.randint(0, shape, (2, 8))
    assert factory()(x).shape[0] == 2


# --- layer decay against timm -------------------------------------------------------------------------

def timm_groups(model, layer_decay: float) -> dict[int, tuple[float, float]]:
    from timm.optim._param_groups import param_groups_layer_decay

    nwd = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    groups = param_groups_layer_decay(model, weight_decay=0.05, no_weight_decay_list=nwd, layer_decay=layer_decay)
    return {id(p): (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}


def agrees_with_timm(resolution, model, layer_decay: float) -> None:
    theirs, base = timm_groups(model, layer_decay), resolution.base["lr"].value
    for p in resolution.params:
        scale, decay = theirs[id(resolution.tensors[p.info.name])]
        assert p.settings["lr"].value / base == pytest.approx(scale, rel=1e-12), p.info.name
        assert p.settings["weight_decay"].value == decay, p.info.name


@pytest.mark.parametrize("name, timm_name, options, decay", [
    ("mae_vit_finetune.opt", "vit_base_patch16_224", {"global_pool": "avg"}, 0.65),
    ("convnext_finetune.opt", "convnext_tiny", {}, 0.8),
])
def test_layer_decay_recipes_match_timm(name, timm_name, options, decay):
    timm = peer("timm")
    with torch.device("meta"):
        model = timm.create_model(timm_name, **options)
    agrees_with_timm(load(name).resolve(model), model, decay)


def test_the_recipe_models_are_numbered_as_timm_numbers_the_real_ones():
    timm = peer("timm")
    for name, timm_name, options in [("mae_vit_finetune.opt", "vit_base_patch16_224", {"global_pool": "avg"}),
                                     ("convnext_finetune.opt", "convnext_tiny", {})]:
        with torch.device("meta"):
            real = timm.create_model(timm_name, **options)
        ours, theirs = load(name).resolve(MODELS[name]()), load(name).resolve(real)
        assert [(p.info.name, p.settings["lr"].value) for p in ours.params] == \
            [(p.info.name, p.settings["lr"].value) for p in theirs.params]


def test_convnext_keeps_decay_on_the_head_classifier_only():
    resolution = load("convnext_finetune.opt").resolve(recipe_models.convnext())
    decay = {p.info.name: p.settings["weight_decay"].value for p in resolution.params}
    assert decay["head.fc.weight"] == 0.05 and decay["head.norm.weight"] == 0 and decay["stem.1.weight"] == 0


# --- no-decay rules against transformers ---------------------------------------------------------------

def decayed(resolution) -> set[str]:
    return {p.info.name for p in resolution.params if p.settings["weight_decay"].value > 0}


def test_bert_decays_what_transformers_trainer_decays():
    transformers = peer("transformers")
    with torch.device("meta"):
        real = transformers.BertForSequenceClassification(transformers.BertConfig())
    small = recipe_models.bert()
    assert [n for n, _ in small.named_parameters()] == [n for n, _ in real.named_parameters()]
    for model in (real, small):
        theirs = set(transformers.Trainer.get_decay_parameter_names(None, model))
        assert decayed(load("bert_finetune.opt").resolve(model)) == theirs


def test_llama_decays_the_matrices_only_as_transformers_trainer_does():
    transformers = peer("transformers")
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
    with torch.device("meta"):
        real = transformers.LlamaForCausalLM(config)
    small = recipe_models.llama()
    assert [n for n, _ in small.named_parameters()] == [n for n, _ in real.named_parameters()]
    for model in (real, small):
        ours = decayed(load("llama_pretrain.opt").resolve(model))
        assert ours == {n for n, p in model.named_parameters() if p.ndim >= 2}
        assert ours == set(transformers.Trainer.get_decay_parameter_names(None, model))


def test_llama_warms_up_then_decays_to_a_tenth():
    values = load("llama_pretrain.opt").compile(recipe_models.llama()).scheduler.values_at
    assert values(0)["lr"] == [0.0, 0.0] and values(2000)["lr"] == pytest.approx([3e-4, 3e-4])
    assert values(500_000)["lr"] == pytest.approx([3e-5, 3e-5])


# --- Faster R-CNN against torchvision ---------------------------------------------------------------------

def test_faster_rcnn_freezes_what_torchvision_freezes_and_every_backbone_norm():
    peer("torchvision")
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

    with torch.device("meta"):
        real = FasterRCNN(_resnet_fpn_extractor(resnet50(), trainable_layers=3), num_classes=91)
    theirs = {n for n, p in real.named_parameters() if not p.requires_grad}
    norms = {f"{path}.{n}" for path, m in real.named_modules() if path.startswith("backbone.body")
             and isinstance(m, torch.nn.BatchNorm2d) for n, _ in m.named_parameters()}
    real.requires_grad_(True)
    small = recipe_models.faster_rcnn()
    assert [n for n, _ in small.named_parameters()] == [n for n, _ in real.named_parameters()]
    for model in (real, small):
        frozen = {p.info.name for p in load("faster_rcnn.opt").resolve(model).params if p.frozen}
        assert frozen == theirs | norms


def test_faster_rcnn_backbone_norms_stay_in_eval_mode_and_the_lr_steps_down():
    model = recipe_models.faster_rcnn()
    compiled = load("faster_rcnn.opt").compile(model)
    model.train()
    modes = {path: m.training for path, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert modes and not any(modes.values())
    values = compiled.scheduler.values_at
    assert [values(t)["lr"][0] for t in (0, 1000, 59_999, 60_000, 80_000)] == pytest.approx(
        [2e-5, 0.02, 0.02, 0.002, 0.0002])


# --- ULMFiT -------------------------------------------------------------------------------------------

def test_ulmfit_unfreezes_one_layer_per_epoch_from_the_top_with_lrs_2_6_apart():
    torch.manual_seed(0)
    model = recipe_models.ulmfit()
    compiled = load("ulmfit.opt").compile(model)
    encoder = model[0]
    parts = [encoder.encoder, encoder.rnns[0], encoder.rnns[1], encoder.rnns[2], model[1]]
    trainable = []
    for epoch in range(5):
        trainable.append([all(p.requires_grad for p in part.parameters()) for part in parts])
        x, y = torch.randint(0, 100, (4, 8)), torch.randint(0, 2, (4,))
        compiled.train_step(torch.nn.functional.cross_entropy(model(x), y))  # one step of the epoch's 391
        compiled.end_epoch()
    assert trainable == [[False, False, False, False, True], [False, False, False, True, True],
                         [False, False, True, True, True], [True, True, True, True, True],
                         [True, True, True, True, True]]
    lrs = [g["lr"] for g in compiled.optimizer.param_groups]
    assert [b / a for a, b in zip(lrs, lrs[1:])] == pytest.approx([1 / 0.385] * 4)
