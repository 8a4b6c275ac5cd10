"""Every example spec compiles against the model it is written for, and says what its comments say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import specopt
from encoder_model import Encoder
from models import gpt, vit
from recipe_models import llama
from resnet_model import Classifier
from seed_model import Network
from specopt.language.fmt import format_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODELS = {"seed.opt": Network, "seed_v2.opt": Network, "vit_finetune.opt": vit, "llm_pretrain.opt": gpt,
          "dino_wd_ramp.opt": vit, "lpft.opt": Classifier, "amp_ema.opt": Encoder, "muon_adamw.opt": llama}


def test_every_example_has_a_model():
    assert sorted(p.name for p in EXAMPLES.glob("*.opt")) == sorted(MODELS)


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"seed.opt"}))  # seed.opt: the design card, verbatim
def test_example_is_in_canonical_form(name):
    text = (EXAMPLES / name).read_text()
    assert format_text(text) == text


@pytest.mark.parametrize("name", sorted(MODELS))
def test_example_compiles_without_warnings(name):
    compiled = specopt.load(EXAMPLES / name).compile(MODELS[name](), steps_per_epoch=100)
    assert compiled.resolution.warnings == ()


def test_vit_finetune_warms_up_then_decays_to_the_floor():
    compiled = specopt.load(EXAMPLES / "vit_finetune.opt").compile(vit())
    assert compiled.schedule_unit == "epoch"
    values = compiled.scheduler.values_at
    assert values(0)["lr"] == [0.0, 0.0] and values(5)["lr"] == pytest.approx([5e-4, 5e-4])
    assert values(100)["lr"] == pytest.approx([1e-6, 1e-6])
    no_decay = compiled.resolution.param("blocks.0.norm1.weight").settings["weight_decay"].value
    assert no_decay == 0 and compiled.resolution.param("cls_token").settings["weight_decay"].value == 0


def test_llm_pretrain_is_warmup_stable_decay_with_decay_on_matrices_only():
    compiled = specopt.load(EXAMPLES / "llm_pretrain.opt").compile(gpt())
    assert list(compiled.scheduler.curves[0].lengths) == [2000, 80000, 18000]
    assert compiled.resolution.param("transformer.h.0.attn.qkv.weight").settings["weight_decay"].value == 0.1
    assert compiled.resolution.param("transformer.ln_f.bias").settings["weight_decay"].value == 0


def test_dino_ramps_weight_decay_tenfold_and_keeps_no_decay_at_zero():
    compiled = specopt.load(EXAMPLES / "dino_wd_ramp.opt").compile(vit())
    assert compiled.scheduler.values_at(0)["weight_decay"] == pytest.approx([0.04, 0.0])
    assert compiled.scheduler.values_at(100)["weight_decay"] == pytest.approx([0.4, 0.0])
    assert compiled.scheduler.values_at(50)["weight_decay"] == pytest.approx([0.22, 0.0])


@pytest.mark.parametrize("factory, shape", [(vit, (2, 3, 32, 32)), (gpt, None)])
def test_example_models_run_forward(factory, shape):
    model = factory()
    x = torch.randn(shape) if shape else torch.randint(0, 64, (2, 16))
    assert model(x).shape[0] == 2


def test_lpft_probes_linearly_then_unfreezes_the_backbone_from_the_top():
    torch.manual_seed(0)
    model = Classifier()
    compiled = specopt.load(EXAMPLES / "lpft.opt").compile(model)
    model.train()
    stats = model.backbone.layer1[0].bn1.running_mean
    trainable = []
    for epoch in range(7):
        before = stats.clone()
        for k in range(2):
            x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
            compiled.train_step(torch.nn.functional.cross_entropy(model(x), y))
        trainable.append((model.backbone.layer4[0].conv1.weight.requires_grad,
                          model.backbone.layer3[0].conv1.weight.requires_grad,
                          model.backbone.conv1.weight.requires_grad, not torch.equal(stats, before)))
        compiled.end_epoch()
    assert trainable == [(False, False, False, False)] * 3 + [(True, False, False, False)] * 2 + \
        [(True, True, False, False)] + [(True, True, True, True)]
    head = next(g for g in compiled.optimizer.param_groups if "head.weight" in g["param_names"])
    layer4 = next(g for g in compiled.optimizer.param_groups if "backbone.layer4.0.conv1.weight" in g["param_names"])
    assert head["lr"] == 1e-3 * 0.5                                   # halved after 4 epochs
    assert layer4["lr"] == pytest.approx(1e-4 * 0.5 * 8 / 100)        # x0.1, 8 steps into its 100-step warmup


def test_amp_ema_accumulates_under_a_scaler_and_keeps_an_average():
    torch.manual_seed(0)
    model = Encoder()
    compiled = specopt.load(EXAMPLES / "amp_ema.opt").compile(model, scaler=torch.amp.GradScaler("cpu"))
    assert compiled.device == next(model.parameters()).device
    assert not model.encoder.layer[11].output.weight.requires_grad and model.head.weight.requires_grad
    for k in range(16):
        tokens = torch.randint(0, 100, (4, 6), device=compiled.device)
        compiled.train_step(torch.nn.functional.cross_entropy(model(tokens), torch.zeros(4, dtype=torch.long)))
    assert compiled.steps == 2 and int(compiled.ema.n_averaged) == 2
    compiled.driver.steps = 1999                        # fast-forward to the unfreeze at step 2000
    for k in range(8):
        tokens = torch.randint(0, 100, (4, 6))
        compiled.train_step(torch.nn.functional.cross_entropy(model(tokens), torch.zeros(4, dtype=torch.long)))
    assert model.encoder.layer[11].output.weight.requires_grad and not model.encoder.layer[9].output.weight.requires_grad
    with compiled.evaluating(ema=True) as averaged:
        assert averaged(torch.randint(0, 100, (2, 6))).shape == (2, 2)
