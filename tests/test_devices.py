"""The device statement: where the model lives, E410 for a device that is not here, and nothing moved on failure."""

from __future__ import annotations

import pytest
import torch

import specopt
from loops import make_net
from specopt.runtime import devices
def test_cpu_and_auto_without_an_accelerator():
    model = make_net()
    compiled = specopt.compile("device cpu", model)
    assert compiled.device == torch.device("cpu")
    if not torch.accelerator.is_available():
        assert specopt.compile("device auto", make_net()).device == torch.device("cpu")


def test_a_device_that_is_not_here_is_a_positioned_error_naming_those_that_are():
    missing = f"cuda:{torch.cuda.device_count() + 3}"
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile(f"clip l2 1\ndevice {missing}", make_net())
    [diag] = info.value.diagnostics
    assert diag.code == "E410" and missing in diag.message
    assert diag.hint == "devices here: " + ", ".join(devices.available())
    assert "2:1" in info.value.render()


def test_the_ema_device_must_be_here_too():
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile("ema 0.9 device=cuda:9", make_net())
    assert [d.code for d in info.value.diagnostics] == ["E410"]


def test_a_failed_compile_moves_the_model_back(monkeypatch):
    """The model is moved, then building the optimizer fails: the move is undone."""
    undone = []
    original = devices.move

    def move(model, device, span=None, source=None):
        undo = original(model, device, span, source)
        return lambda: (undone.append(device), undo())

    monkeypatch.setattr(devices, "move", move)
    with pytest.raises(specopt.SpecError) as info:
        specopt.compile("device cpu; freeze **", make_net())
    assert [d.code for d in info.value.diagnostics] == ["E402"] and undone == [torch.device("cpu")]


def test_a_move_that_would_replace_the_parameters_is_undone_and_reported():
    """Parameters cannot go to the meta device in place: E410, and the model is as it was."""
    model = make_net()
    params = [(name, p, p.data) for name, p in model.named_parameters()]
    buffers = dict(model.named_buffers())
    with pytest.raises(specopt.SpecError) as info:
        devices.move(model, torch.device("meta"))
    assert [d.code for d in info.value.diagnostics] == ["E410"]
    assert all(model.get_parameter(name) is p and p.data.data_ptr() == data.data_ptr() for name, p, data in params)
    assert all(model.get_buffer(name) is b for name, b in buffers.items())


def test_the_model_moves_before_the_optimizer_is_built(monkeypatch):
    model = make_net()
    seen = []
    original = devices.move

    def move(model, device, span=None, source=None):
        seen.append(device)
        return original(model, device, span, source)

    monkeypatch.setattr(devices, "move", move)
    compiled = specopt.compile("device cpu", model)
    assert seen == [torch.device("cpu")]
    assert all(p.device.type == "cpu" for g in compiled.optimizer.param_groups for p in g["params"])


@pytest.mark.cuda
def test_the_model_and_its_optimizer_end_up_on_the_accelerator():
    model = make_net()
    compiled = specopt.compile("device cuda; ema 0.9 device=cpu", model)
    assert all(p.is_cuda for p in model.parameters())
    assert compiled.implementation.flags.get("fused") or compiled.implementation.flags.get("foreach") is not None
    assert all(p.device.type == "cpu" for p in compiled.ema.parameters())
    x = torch.randn(4, 4, device="cuda")
    compiled.train_step(model(x).sum())
    assert compiled.steps == 1


@pytest.mark.cuda
def test_moving_to_the_accelerator_and_back_keeps_every_tensor():
    model = make_net()
    params = list(model.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    undo = devices.move(model, torch.device("cuda"))
    assert all(p.is_cuda for p in model.parameters()) and list(model.parameters())[0] is params[0]
    undo()
    after = model.state_dict()
    assert all(after[k].device.type == "cpu" and torch.equal(after[k], v) for k, v in before.items())
