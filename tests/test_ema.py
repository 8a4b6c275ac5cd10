"""The ema statement against timm's ModelEmaV3 and torch's AveragedModel with its EMA average function."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import specopt
from loops import assert_same, loss_of, make_net, params_of


def _timm_ema_class():
    """timm's ModelEmaV3, loaded from its file (it needs only torch; timm's package imports more)."""
    spec = importlib.util.find_spec("timm")
    if spec is None:
        pytest.skip("timm is not installed")
    path = Path(spec.origin).parent / "utils" / "model_ema.py"
    module_spec = importlib.util.spec_from_file_location("timm_model_ema", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ModelEmaV3


def _train(spec: str, steps: int, hook=None):
    model = make_net()
    compiled = specopt.compile(spec, model)
    for step in range(steps):
        compiled.train_step(loss_of(model, step))
        if hook is not None:
            hook(model, compiled.steps)
    return model, compiled


def test_warmed_up_decay_equals_timms_model_ema_v3():
    ModelEmaV3 = _timm_ema_class()
    reference = {}

    def follow(model, step):
        if "ema" not in reference:
            reference["ema"] = ModelEmaV3(model, decay=0.99, use_warmup=True, warmup_power=0.75)
        reference["ema"].update(model, step=step)

    model, compiled = _train("optimizer sgd lr=0.1; ema 0.99 warmup=true power=0.75", 12, follow)
    ours, theirs = params_of(compiled.ema.module), params_of(reference["ema"].module)
    assert_same(ours, theirs)
    assert [compiled.driver.ema.decay_at(t) for t in (1, 2)] == [0.0, reference["ema"].get_decay(2)]


def test_constant_decay_equals_averaged_model_with_torchs_ema_function():
    reference = {}

    def follow(model, step):
        if "ema" not in reference:
            reference["ema"] = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
        reference["ema"].update_parameters(model)

    model, compiled = _train("freeze backbone.block0; ema 0.9", 8, follow)
    floats = {k: v for k, v in params_of(reference["ema"]).items() if v.is_floating_point()}
    assert_same({k: v for k, v in params_of(compiled.ema).items() if k in floats}, floats)
    assert int(compiled.ema.n_averaged) == 8
    assert torch.equal(compiled.ema.module.backbone.block1[1].num_batches_tracked,
                       model.backbone.block1[1].num_batches_tracked)


def test_every_n_steps_and_buffers_copied():
    reference = {}

    def follow(model, step):
        if "ema" not in reference:
            reference["ema"] = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=False)
        if step % 3 == 0:
            reference["ema"].update_parameters(model)

    model, compiled = _train("ema 0.5 every=3 buffers=false", 10, follow)
    assert int(compiled.ema.n_averaged) == 3
    assert_same(params_of(compiled.ema), params_of(reference["ema"]))


def test_the_average_is_for_evaluation():
    model, compiled = _train("ema 0.9", 2)
    assert not compiled.ema.training
    assert not any(p.requires_grad for p in compiled.ema.parameters())
    assert compiled.ema(torch.randn(2, 4)).shape == (2, 3)


def test_update_parameters_uses_the_current_decay():
    model, compiled = _train("ema 0.5", 1)
    before = {k: v.clone() for k, v in compiled.ema.module.state_dict().items()}
    with torch.no_grad():
        model.head.weight.add_(1.0)
    compiled.ema.update_parameters(model)
    expected = before["head.weight"].lerp(model.head.weight, 0.5)
    assert torch.equal(compiled.ema.module.head.weight, expected)


def test_no_ema_without_the_statement():
    assert specopt.compile("", make_net()).ema is None
