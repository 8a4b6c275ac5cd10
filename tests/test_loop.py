"""compiled.evaluating(): eval mode under inference_mode, every submodule's mode restored, the EMA copy."""

from __future__ import annotations

import pytest
import torch

import specopt
from loops import loss_of, make_net
from specopt.runtime import devices
def test_evaluating_switches_to_eval_under_inference_mode_and_restores_every_mode():
    model = make_net()
    compiled = specopt.compile("freeze backbone.block0 norms=eval", model)
    model.train()
    model.backbone.block1.eval()           # a submodule the user left in eval mode
    before = [m.training for m in model.modules()]
    with compiled.evaluating() as evaluated:
        assert evaluated is model
        assert not any(m.training for m in model.modules())
        assert torch.is_inference_mode_enabled()
        assert not model(torch.randn(2, 4)).requires_grad
    assert [m.training for m in model.modules()] == before
    model.train()
    assert not model.backbone.block0[1].training   # still locked


def test_evaluating_the_ema_copy():
    model = make_net()
    compiled = specopt.compile("ema 0.9", model)
    compiled.train_step(loss_of(model, 0))
    with compiled.evaluating(ema=True) as averaged:
        assert averaged is compiled.ema
        averaged(torch.randn(2, 4))
    with pytest.raises(ValueError, match="ema"):
        with specopt.compile("", make_net()).evaluating(ema=True):
            pass


def test_evaluating_can_release_cached_memory(monkeypatch):
    calls = []
    monkeypatch.setattr("specopt.runtime.loop_methods.release_cached_memory", lambda: calls.append(1))
    compiled = specopt.compile("", make_net())
    with compiled.evaluating(release_memory=True):
        assert calls == []
    assert calls == [1]
    devices.release_cached_memory()   # a no-op without an accelerator, never an error


def test_modes_are_restored_when_evaluation_raises():
    model = make_net()
    compiled = specopt.compile("", model)
    model.train()
    with pytest.raises(RuntimeError):
        with compiled.evaluating():
            raise RuntimeError("boom")
    assert model.training
