"""The clip hook in real training loops: under a GradScaler and with ``optimizer.step(closure)``.

Each test trains two identical models for a few steps: one with a spec that
clips, one with the same spec minus the clip statement and clipping written
by hand (``scaler.unscale_`` + ``clip_grad_norm_``, or a closure that clips
after ``backward()``). Both must apply the same updates, for every builtin
optimizer and every implementation it has.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import specopt
from specopt.catalog.registry import OPTIMIZERS
from test_clip import _no_host_sync

MAX_NORM = 0.05
SCALE = 1024.0
STEPS = 3
IMPL_FLAGS = {"fused": "fused=true", "foreach": "foreach=true", "single-tensor": "foreach=false", "default": ""}
# a few L-BFGS iterations per step keep the test fast; max_eval comes from torch's own default
EXTRA_OPTIONS = {"lbfgs": "max_iter=5"}
NO_SPARSE_CLIP = "torch cannot clip sparse gradients, and sparse_adam takes only those (a spec says so: E218)"


def _implementations(name: str) -> list[str]:
    info = OPTIMIZERS[name]
    found = [impl for impl, flag in (("fused", "fused"), ("foreach", "foreach"), ("single-tensor", "foreach"))
             if info.option(flag) is not None]
    return found or ["default"]


def _combos(skips: dict[str, str]) -> list:
    """Every builtin optimizer with every implementation it has; ``skips`` maps names to reasons."""
    return [pytest.param(name, impl, id=f"{name}-{impl}",
                         marks=[pytest.mark.skip(reason=skips[name])] if name in skips else [])
            for name in OPTIMIZERS for impl in _implementations(name)]


AMP_COMBOS = _combos({"lbfgs": "lbfgs needs a closure, and GradScaler.step does not support closures",
                      "sparse_adam": NO_SPARSE_CLIP})
CLOSURE_COMBOS = _combos({"sparse_adam": NO_SPARSE_CLIP})


def _model(name: str) -> nn.Module:
    """A tiny seeded MLP; without biases for muon, which takes only 2-D parameters."""
    torch.manual_seed(0)
    bias = name != "muon"
    return nn.Sequential(nn.Linear(6, 5, bias=bias), nn.Tanh(), nn.Linear(5, 3, bias=bias))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(8, 6, generator=gen) * 3, torch.randn(8, 3, generator=gen)


def _loss(model: nn.Module, step: int) -> torch.Tensor:
    x, y = _batch(step)
    return nn.functional.mse_loss(model(x), y) * 10


def _pair(name: str, impl: str):
    """(model, compiled with clip) and (model, compiled without clip), on the same implementation."""
    spec = f"optimizer {name} {IMPL_FLAGS[impl]} {EXTRA_OPTIONS.get(name, '')}"
    ours_model, hand_model = _model(name), _model(name)
    ours = specopt.compile(f"{spec}; clip l2 {MAX_NORM}", ours_model)
    hand = specopt.compile(spec, hand_model)
    assert ours.implementation.name == hand.implementation.name
    if impl != "default":
        assert ours.implementation.name == impl
    return (ours_model, ours), (hand_model, hand)


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _assert_same_state(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].keys() == sb[key].keys()
        for field, value in sa[key].items():
            _assert_equal(value, sb[key][field], f"state {key}.{field}")


def _assert_equal(a, b, what: str) -> None:
    """Exact equality of state values: tensors, numbers, None, and lists of them (as L-BFGS keeps)."""
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=what)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), what
        for x, y in zip(a, b):
            _assert_equal(x, y, what)
    else:
        assert a == b, what


def _poison(model: nn.Module) -> None:
    """Make one gradient inf, as an fp16 overflow would."""
    next(model.parameters()).grad[0, 0] = float("inf")


# --- mixed precision ----------------------------------------------------------------------------

def _amp_ours(model, compiled, scaler, step, explicit_unscale, inf_at):
    compiled.optimizer.zero_grad()
    scaler.scale(_loss(model, step)).backward()
    if step == inf_at:
        _poison(model)
    if explicit_unscale:
        scaler.unscale_(compiled.optimizer)
    scaler.step(compiled.optimizer)
    scaler.update()
    return compiled.clipper.last_norm


def _amp_hand(model, compiled, scaler, step, inf_at):
    compiled.optimizer.zero_grad()
    scaler.scale(_loss(model, step)).backward()
    if step == inf_at:
        _poison(model)
    scaler.unscale_(compiled.optimizer)
    norm = nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    scaler.step(compiled.optimizer)
    scaler.update()
    return norm


@pytest.mark.parametrize("explicit_unscale", [False, True], ids=["scaler-step", "explicit-unscale"])
@pytest.mark.parametrize("inf_at", [None, 1], ids=["finite", "inf-at-step-1"])
@pytest.mark.parametrize("name, impl", AMP_COMBOS)
def test_amp_clipping_equals_the_hand_written_loop(name, impl, inf_at, explicit_unscale):
    (ours_model, ours), (hand_model, hand) = _pair(name, impl)
    ours_scaler, hand_scaler = (torch.amp.GradScaler("cpu", init_scale=SCALE) for _ in range(2))
    for step in range(STEPS):
        before_ours, before_hand = _flat(ours_model), _flat(hand_model)
        norm = _amp_ours(ours_model, ours, ours_scaler, step, explicit_unscale, inf_at)
        expected = _amp_hand(hand_model, hand, hand_scaler, step, inf_at)
        update, expected_update = _flat(ours_model) - before_ours, _flat(hand_model) - before_hand
        torch.testing.assert_close(update, expected_update, rtol=0, atol=0, msg=f"update at step {step}")
        if step == inf_at:
            assert not expected_update.any(), "the hand-written loop skips a step with inf gradients"
        else:
            assert norm is not None and torch.equal(norm, expected), f"last_norm at step {step}"
        assert ours_scaler.get_scale() == hand_scaler.get_scale()
    torch.testing.assert_close(_flat(ours_model), _flat(hand_model), rtol=0, atol=0)
    _assert_same_state(ours.optimizer, hand.optimizer)


def test_amp_fused_sgd_applies_the_clipped_update():
    """The issue's case: fused SGD, lr 1, clip 0.05, scale 1024; the update had norm 0.000049."""
    model = _model("sgd")
    compiled = specopt.compile("optimizer sgd lr=1; clip l2 0.05", model)
    assert compiled.implementation.name == "fused"
    scaler = torch.amp.GradScaler("cpu", init_scale=SCALE)
    before = _flat(model)
    scaler.scale(_loss(model, 0)).backward()
    scaler.step(compiled.optimizer)
    scaler.update()
    assert float((_flat(model) - before).norm()) == pytest.approx(0.05, rel=1e-4)
    plain = _model("sgd")
    _loss(plain, 0).backward()
    unscaled = nn.utils.get_total_norm([p.grad for p in plain.parameters()])
    assert float(unscaled) > 0.05 and torch.equal(compiled.clipper.last_norm, unscaled)


def test_a_plain_step_leaves_unscaled_gradients_alone():
    """Without a GradScaler (no grad_scale attribute) the hook clips the gradients as they are."""
    (ours_model, ours), (hand_model, hand) = _pair("adam", "fused")
    _loss(ours_model, 0).backward()
    _loss(hand_model, 0).backward()
    ours.optimizer.step()
    nn.utils.clip_grad_norm_(hand_model.parameters(), MAX_NORM)
    hand.optimizer.step()
    torch.testing.assert_close(_flat(ours_model), _flat(hand_model), rtol=0, atol=0)
    assert not hasattr(ours.optimizer, "grad_scale")


# --- closures -----------------------------------------------------------------------------------

def _closure(model, optimizer, step, clip_by_hand=False):
    def closure():
        optimizer.zero_grad()
        loss = _loss(model, step)
        loss.backward()
        if clip_by_hand:
            nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        return loss
    return closure


@pytest.mark.parametrize("how", ["positional", "keyword"])
@pytest.mark.parametrize("name, impl", CLOSURE_COMBOS)
def test_closure_clipping_equals_a_closure_that_clips_after_backward(name, impl, how):
    (ours_model, ours), (hand_model, hand) = _pair(name, impl)
    for step in range(STEPS):
        before_ours, before_hand = _flat(ours_model), _flat(hand_model)
        closure = _closure(ours_model, ours.optimizer, step)
        loss = ours.optimizer.step(closure) if how == "positional" else ours.optimizer.step(closure=closure)
        expected_loss = hand.optimizer.step(_closure(hand_model, hand.optimizer, step, clip_by_hand=True))
        assert torch.equal(loss, expected_loss), "the step returns the closure's loss"
        torch.testing.assert_close(_flat(ours_model) - before_ours, _flat(hand_model) - before_hand,
                                   rtol=0, atol=0, msg=f"update at step {step}")
        assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours_model.parameters(), hand_model.parameters()))
    _assert_same_state(ours.optimizer, hand.optimizer)


def test_sgd_closure_updates_are_clipped_at_every_step():
    """The issue's case: SGD lr 1 with clip 0.001 moved by 0.41, 0.25, 0.22 under step(closure)."""
    model = _model("sgd")
    compiled = specopt.compile("optimizer sgd lr=1; clip l2 0.001", model)
    for step in range(STEPS):
        before = _flat(model)
        compiled.optimizer.step(_closure(model, compiled.optimizer, step))
        assert float((_flat(model) - before).norm()) == pytest.approx(0.001, rel=1e-4)
        assert float(compiled.clipper.last_norm) > 0.001


def test_lbfgs_clips_after_every_evaluation():
    model = _model("lbfgs")
    compiled = specopt.compile(f"optimizer lbfgs {EXTRA_OPTIONS['lbfgs']}; clip l2 0.001", model)
    norms = []
    closure = _closure(model, compiled.optimizer, 0)

    def recording_closure():
        loss = closure()
        norms.append(nn.utils.get_total_norm([p.grad for p in model.parameters()]))
        return loss

    compiled.optimizer.step(recording_closure)
    clipped = torch.stack([p.grad.norm() for p in model.parameters()]).norm()
    assert len(norms) > 1 and float(clipped) == pytest.approx(0.001, rel=1e-4)


# --- on a GPU -----------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("explicit_unscale", [False, True], ids=["scaler-step", "explicit-unscale"])
def test_amp_clipping_on_cuda_never_makes_the_host_wait(explicit_unscale):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).cuda()
    compiled = specopt.compile("optimizer adamw; clip l2 1", model)
    assert compiled.implementation.name == "fused"
    scaler = torch.amp.GradScaler("cuda", init_scale=SCALE)
    x = torch.randn(4, 8).cuda() * 100
    for step in range(3):
        compiled.optimizer.zero_grad()
        scaler.scale(model(x).pow(2).sum()).backward()
        if explicit_unscale:
            scaler.unscale_(compiled.optimizer)
        if step:  # the first step creates the optimizer state, with host-to-device copies
            with _no_host_sync():
                scaler.step(compiled.optimizer)
        else:
            scaler.step(compiled.optimizer)
        scaler.update()
    assert compiled.clipper.last_norm.device.type == "cuda"
