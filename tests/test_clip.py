"""The clipper gives exactly what torch.nn.utils.clip_grad_norm_ gives, above and below the maximum."""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext

import pytest
import torch
from torch import nn

import specopt
from specopt.runtime.clip_hook import Clipper


def _grads(scale: float, seed: int = 0, device: str = "cpu") -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.zeros(n, device=device)) for n in (7, 3, 11)]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * scale).to(device)
    params.append(nn.Parameter(torch.zeros(2, device=device)))  # no gradient: ignored, as torch does
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, 1.5])
@pytest.mark.parametrize("scale", [100.0, 1e-3])  # clipping engages / norm already below the maximum
def test_matches_clip_grad_norm(norm_type, scale):
    ours, theirs = _grads(scale), _grads(scale)
    clipper = Clipper(ours, f"l{norm_type}", 1.0, norm_type)
    got = clipper()
    expected = nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    assert torch.equal(got, expected) and torch.equal(clipper.last_norm, expected)
    for a, b in zip(ours, theirs):
        assert (a.grad is None and b.grad is None) or torch.equal(a.grad, b.grad)


def test_below_the_maximum_leaves_gradients_untouched():
    params = _grads(1e-3)
    before = [p.grad.clone() for p in params if p.grad is not None]
    Clipper(params, "l2", 1.0, 2.0)()
    assert all(torch.equal(a, p.grad) for a, p in zip(before, params))


def test_value_clipping():
    params = _grads(100.0)
    assert Clipper(params, "value", 0.25, None)() is None
    assert all(p.grad.abs().max() <= 0.25 for p in params if p.grad is not None)


def test_attach_and_detach():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    clipper = Clipper(list(model.parameters()), "l2", 1e-3, 2.0).attach(opt)
    (model(torch.ones(1, 3)).sum() * 1000).backward()
    opt.step()
    assert clipper.attached and float(clipper.last_norm) > 1e-3
    clipper.detach()
    clipper.last_norm = None
    opt.step()
    assert not clipper.attached and clipper.last_norm is None


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_no_gradients_yet_gives_torchs_zero_norm(norm_type):
    ours, theirs = [nn.Parameter(torch.ones(3))], [nn.Parameter(torch.ones(3))]
    clipper = Clipper(ours, f"l{norm_type}", 1.0, norm_type)
    got = clipper()
    expected = nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    assert torch.equal(got, expected) and torch.equal(clipper.last_norm, torch.tensor(0.0))
    assert ours[0].grad is None


def test_value_clipping_without_gradients_does_nothing():
    params = [nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))]
    assert Clipper(params, "value", 0.5, None)() is None
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("clip", ["value 0.5", "l2 1"])
def test_a_step_before_any_backward_runs(clip):
    model = nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    compiled = specopt.compile(f"optimizer sgd lr=0.1; clip {clip}", model)
    compiled.optimizer.step()
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


@contextmanager
def _no_host_sync():
    """Raise on any operation that makes the host wait for the CUDA device."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


@pytest.mark.cuda
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("scale", [100.0, 1e-3])
def test_matches_clip_grad_norm_on_cuda(norm_type, scale):
    ours, theirs = _grads(scale, device="cuda"), _grads(scale, device="cuda")
    got = Clipper(ours, f"l{norm_type}", 1.0, norm_type)()
    expected = nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    assert got.device.type == "cuda" and torch.equal(got, expected)
    for a, b in zip(ours, theirs):
        assert (a.grad is None and b.grad is None) or torch.equal(a.grad, b.grad)


@pytest.mark.cuda
def test_the_sync_check_catches_a_host_sync():
    with pytest.raises(RuntimeError), _no_host_sync():
        float(torch.ones((), device="cuda"))


@pytest.mark.cuda
@pytest.mark.parametrize("scale", [100.0, 1e-3])  # clipping engages / norm already below the maximum
def test_the_hook_never_makes_the_host_wait_for_cuda(scale):
    params = _grads(scale, device="cuda")
    clipper = Clipper(params, "l2", 1.0, 2.0)
    with _no_host_sync():
        clipper()
    assert clipper.last_norm.device.type == "cuda"


@pytest.mark.cuda
@pytest.mark.parametrize("clip", ["l2 1", "value 0.5"])
def test_a_clipped_fused_step_on_cuda_never_makes_the_host_wait(clip):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).cuda()
    compiled = specopt.compile(f"optimizer adamw; clip {clip}", model)
    assert compiled.implementation.name == "fused"
    x = torch.randn(4, 8).cuda() * 100
    for step in range(3):
        compiled.optimizer.zero_grad()
        model(x).pow(2).sum().backward()
        # the first step creates the optimizer state, with host-to-device copies
        with _no_host_sync() if step else nullcontext():
            compiled.optimizer.step()
