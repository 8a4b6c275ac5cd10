"""The example specs compile against models shaped like the ones they are for, and behave as they say."""

from __future__ import annotations

import pytest
import torch

import specopt
from conftest import ROOT
from encoder_model import Encoder
from resnet_model import Classifier
from specopt.fmt import format_text

EXAMPLES = ROOT / "examples"


def test_the_examples_are_in_canonical_form():
    for name in ("lpft.opt", "amp_ema.opt"):
        text = (EXAMPLES / name).read_text()
        assert format_text(text) == text


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
