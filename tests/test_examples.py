"""Every example spec compiles against the model it is written for, and says what its comments say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import specopt
from models import gpt, vit
from seed_model import Network

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODELS = {"seed.opt": Network, "seed_v2.opt": Network, "vit_finetune.opt": vit, "llm_pretrain.opt": gpt,
          "dino_wd_ramp.opt": vit}


def test_every_example_has_a_model():
    assert sorted(p.name for p in EXAMPLES.glob("*.opt")) == sorted(MODELS)


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
