"""specopt picks the fastest correct optimizer implementation unless the spec pins one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import specopt
from specopt.plan.extensions import info_from_class
from specopt.runtime.implementation import choose_implementation
from specopt.catalog.registry import OPTIMIZERS


def _model(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 2)).to(dtype)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad"])
def test_fused_is_chosen_on_cpu_for_float_tensors(name):
    compiled = specopt.parse(f"optimizer {name}").compile(_model())
    assert compiled.implementation.name == "fused"
    assert compiled.optimizer.defaults["fused"] is True


def test_optimizers_without_fused_keep_torchs_default():
    compiled = specopt.parse("optimizer rmsprop").compile(_model())
    assert compiled.implementation.name == "single-tensor"
    assert "no fused implementation" in compiled.implementation.reason


@pytest.mark.parametrize("flags, name", [("foreach=true", "foreach"), ("foreach=false", "single-tensor"),
                                         ("fused=true", "fused")])
def test_the_spec_pins_the_implementation(flags, name):
    compiled = specopt.parse(f"optimizer adamw {flags}").compile(_model())
    assert compiled.implementation.name == name and compiled.implementation.reason == "set by the spec"


def test_differentiable_rules_out_fused():
    compiled = specopt.parse("optimizer adam differentiable=true").compile(_model())
    assert compiled.implementation.name == "single-tensor"


CASES = [("adamw", "weight_decay=0.1"), ("adam", "amsgrad=true"), ("sgd", "lr=0.05 momentum=0.9 nesterov=true")]


@pytest.mark.parametrize("name, options", [*CASES, ("adagrad", "lr=0.05")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_results_match_the_default_within_float_tolerance(name, options, dtype):
    _assert_same_training(name, options, dtype, "cpu", ("fused", "single-tensor"))


def _assert_same_training(name, options, dtype, device, expected):
    """Twenty steps of the automatic choice and of single-tensor end within float tolerance."""
    a, b = _model(dtype).to(device), _model(dtype).to(device)
    fast = specopt.parse(f"optimizer {name} {options}").compile(a)
    slow = specopt.parse(f"optimizer {name} {options} foreach=false").compile(b)
    assert (fast.implementation.name, slow.implementation.name) == expected
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        x = torch.randn(8, 6, generator=gen, dtype=dtype).to(device)
        for model, compiled in ((a, fast), (b, slow)):
            compiled.optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            compiled.optimizer.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fused_is_chosen_on_cuda(name, dtype):
    compiled = specopt.parse(f"optimizer {name}").compile(_model(dtype).cuda())
    assert compiled.implementation.name == "fused"
    assert compiled.optimizer.defaults["fused"] is True


@pytest.mark.cuda
@pytest.mark.parametrize("name, reason", [("adagrad", "fused does not support cuda tensors"),
                                          ("rmsprop", "rmsprop has no fused implementation")])
def test_without_a_fused_kernel_on_cuda_torchs_foreach_default_stays(name, reason):
    compiled = specopt.parse(f"optimizer {name}").compile(_model().cuda())
    assert compiled.implementation.name == "foreach"
    assert compiled.implementation.reason.startswith(reason)
    assert compiled.optimizer.defaults["foreach"] is None  # torch's own default, which is foreach on CUDA


@pytest.mark.cuda
@pytest.mark.parametrize("name, options", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_results_on_cuda_match_the_single_tensor_loop(name, options, dtype):
    _assert_same_training(name, options, dtype, "cuda", ("fused", "single-tensor"))


@pytest.mark.cuda
def test_adagrad_on_cuda_trains_like_the_single_tensor_loop():
    _assert_same_training("adagrad", "lr=0.05", torch.float32, "cuda", ("foreach", "single-tensor"))


def test_fused_false_pins_torchs_default():
    compiled = specopt.parse("optimizer adam fused=false").compile(_model())
    assert compiled.implementation.name == "single-tensor"
    assert compiled.implementation.reason == "set by the spec"
    assert compiled.optimizer.defaults["fused"] is False


def _on(device_type: str):
    """A stand-in tensor: the choice of torch's default reads only the device type."""
    return SimpleNamespace(device=SimpleNamespace(type=device_type))


@pytest.mark.parametrize("device, name", [("cuda", "foreach"), ("cpu", "single-tensor")])
def test_fused_false_keeps_the_per_device_default_that_torch_skips_for_an_explicit_flag(device, name):
    # torch's builtins run single-tensor whenever fused or foreach is given, so the default is passed on
    chosen = choose_implementation(OPTIMIZERS["adam"], [_on(device)] * 2, {"fused": False})
    assert (chosen.name, chosen.reason) == (name, "set by the spec")
    assert dict(chosen.flags) == {"foreach": name == "foreach"}


def test_classes_outside_the_registry_keep_torchs_default_even_when_they_take_fused():
    compiled = specopt.parse('optimizer "torch.optim:AdamW"', allow_import=True).compile(_model())
    assert compiled.implementation.name == "single-tensor"
    assert "not a builtin optimizer" in compiled.implementation.reason
    assert compiled.implementation.reason.endswith("torch's default")
    assert compiled.optimizer.defaults["fused"] is None


def test_an_extension_entry_equal_to_a_builtin_is_still_not_chosen_fused():
    entry = info_from_class(torch.optim.Adam, "myadam", "torch.optim.Adam")
    assert entry.option("fused") is not None
    chosen = choose_implementation(entry, list(_model().parameters()), {})
    assert chosen.name == "single-tensor" and not chosen.flags


@pytest.mark.cuda
def test_a_model_split_between_cpu_and_cuda_steps_fused_like_the_single_tensor_loop():
    a, b = _model(), _model()
    for model in (a, b):
        model[2].cuda()  # offloading-style layout: one optimizer over tensors on two devices
    fast = specopt.parse("optimizer adamw weight_decay=0.1").compile(a)
    slow = specopt.parse("optimizer adamw weight_decay=0.1 foreach=false").compile(b)
    assert fast.implementation.name == "fused" and "cpu, cuda" in fast.implementation.reason
    for step in range(10):
        for model, compiled in ((a, fast), (b, slow)):
            gen = torch.Generator().manual_seed(step)
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=gen).to(p.device)
            compiled.optimizer.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.device == q.device
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
