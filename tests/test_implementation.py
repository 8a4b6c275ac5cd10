"""specopt picks the fastest correct optimizer implementation unless the spec pins one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import specopt


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


@pytest.mark.parametrize("name, options", [("adamw", "weight_decay=0.1"), ("adam", "amsgrad=true"),
                                           ("sgd", "lr=0.05 momentum=0.9 nesterov=true"), ("adagrad", "lr=0.05")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_results_match_the_default_within_float_tolerance(name, options, dtype):
    a, b = _model(dtype), _model(dtype)
    fast = specopt.parse(f"optimizer {name} {options}").compile(a)
    slow = specopt.parse(f"optimizer {name} {options} foreach=false").compile(b)
    assert (fast.implementation.name, slow.implementation.name) == ("fused", "single-tensor")
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        x = torch.randn(8, 6, generator=gen, dtype=dtype)
        for model, compiled in ((a, fast), (b, slow)):
            compiled.optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            compiled.optimizer.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
