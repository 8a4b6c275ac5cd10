"""A checkpoint loaded with ``strict=False`` under a changed spec: the new spec's trainability and moments
apply from the saved position on (a moment in the past at once, one in the future when it comes), and the
warning says what that changed about trainability."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

import specopt
import specopt.runtime.dcp
from specopt.runtime.compiled import CheckpointWarning

PER_EPOCH = 3  # optimizer steps per epoch


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def make_net() -> Net:
    torch.manual_seed(0)
    return Net()


def loss_of(model: nn.Module, k: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(300 + k)
    x, y = torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)
    return nn.functional.cross_entropy(model(x), y)


def compile_(spec: str, model: nn.Module):
    return specopt.compile(spec, model, steps_per_epoch=PER_EPOCH, epochs=8)


def run_epochs(model, compiled, first: int, last: int) -> None:
    """Epochs ``first`` to ``last`` (exclusive) through the step driver."""
    for epoch in range(first, last):
        for k in range(PER_EPOCH):
            compiled.train_step(loss_of(model, epoch * PER_EPOCH + k))
        compiled.end_epoch()


def saved_after(spec: str, epochs: int) -> tuple[dict, dict]:
    """The model's and the compiled spec's state after ``epochs`` epochs under ``spec``, through torch.save."""
    model = make_net()
    compiled = compile_(spec, model)
    run_epochs(model, compiled, 0, epochs)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "compiled": compiled.state_dict()}, buffer)
    saved = torch.load(io.BytesIO(buffer.getvalue()))
    return saved["model"], saved["compiled"]


def load_under(spec: str, saved: tuple[dict, dict]):
    """A fresh model and ``spec`` compiled on it, the checkpoint loaded with strict=False; and the warning."""
    model = make_net()
    model.load_state_dict(saved[0])
    compiled = compile_(spec, model)
    with pytest.warns(CheckpointWarning) as caught:
        result = compiled.load_state_dict(saved[1], strict=False)
    return model, compiled, result, "\n".join(str(w.message) for w in caught)


def body_trainable(model) -> list[bool]:
    return [p.requires_grad for p in model.body.parameters()]


def test_a_freeze_the_new_spec_drops_no_longer_holds_after_loading():
    saved = saved_after("optimizer adamw lr=0.01\nfreeze body\nunfreeze body at step 100", 1)
    assert not any(saved[1]["training"]["requires_grad"][n] for n in ("body.0.weight", "body.2.bias"))
    model, compiled, result, warning = load_under("optimizer adamw lr=0.01", saved)
    assert all(body_trainable(model)), "this spec freezes nothing"
    assert result.trainability == {n: True for n in ("body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias")}
    assert ("body.0.weight, body.0.bias, body.2.weight, body.2.bias: frozen in the checkpoint, trainable from "
            "now on (as the model's code built it)") in warning
    before = model.body[0].weight.detach().clone()
    run_epochs(model, compiled, 1, 2)
    assert not torch.equal(model.body[0].weight, before), "and it trains"


def test_a_moment_of_the_new_spec_in_the_future_waits():
    saved = saved_after("optimizer adamw lr=0.01\nfreeze body\nunfreeze body at epoch 1", 2)
    assert all(saved[1]["training"]["requires_grad"][n] for n in ("body.0.weight", "body.2.bias"))
    model, compiled, result, warning = load_under("optimizer adamw lr=0.01\nfreeze body\nunfreeze body at epoch 6",
                                                  saved)
    assert not any(body_trainable(model)) and compiled.driver.board.fired == frozenset()
    assert ("trainable in the checkpoint, frozen from now on (by freeze@2:1); still to come: unfreeze@3:1 at "
            "epoch 6") in warning
    assert set(result.trainability) == {"body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"}
    before = model.body[0].weight.detach().clone()
    run_epochs(model, compiled, 2, 6)
    assert torch.equal(model.body[0].weight, before), "frozen through epoch 5"
    assert all(body_trainable(model)), "unfrozen when epoch 6 ends"
    run_epochs(model, compiled, 6, 7)
    assert not torch.equal(model.body[0].weight, before)


def test_a_moment_of_the_new_spec_in_the_past_applies_at_once():
    saved = saved_after("optimizer adamw lr=0.01\nfreeze body\nunfreeze body at epoch 6", 2)
    model, compiled, result, warning = load_under("optimizer adamw lr=0.01\nfreeze body\nunfreeze body at epoch 1",
                                                  saved)
    assert all(body_trainable(model)) and compiled.driver.board.fired == {2}
    assert "frozen in the checkpoint, trainable from now on (by unfreeze@3:1 at epoch 1, which has come)" in warning
    assert all(result.trainability.values())


def test_a_warmup_of_the_new_spec_whose_moment_has_come_starts_when_the_parameters_join():
    saved = saved_after("optimizer adamw lr=0.01\nfreeze body\nunfreeze body at epoch 6", 2)
    model, compiled, _, _ = load_under("optimizer adamw lr=0.01\nfreeze body\n"
                                       "unfreeze body at epoch 1 warmup 4 steps", saved)
    group = next(g for g in compiled.optimizer.param_groups if "body.0.weight" in g["param_names"])
    lrs = [group["lr"]]
    for k in range(4):
        compiled.train_step(loss_of(model, 100 + k))
        lrs.append(group["lr"])
    assert lrs == pytest.approx([0.0, 0.0025, 0.005, 0.0075, 0.01])


@pytest.mark.parametrize("recorded", [True, False])
def test_a_warmup_in_progress_goes_on_when_the_spec_changed_elsewhere(recorded):
    """Saved in the middle of body's warmup; the new spec halves the head's lr: body's warmup continues.
    A checkpoint from before warmups recorded their parameters names them by the group's position."""
    old = "optimizer adamw lr=0.01\nfreeze body\nunfreeze body at step 2 warmup 6 steps\n"
    model = make_net()
    compiled = compile_(old, model)
    group = next(g for g in compiled.optimizer.param_groups if "body.0.weight" in g["param_names"])
    straight = []
    for k in range(8):
        compiled.train_step(loss_of(model, k))
        straight.append(group["lr"])
    model = make_net()
    first = compile_(old, model)
    for k in range(4):
        first.train_step(loss_of(model, k))
    state = first.state_dict()
    (ramp,) = state["training"]["ramps"].values()
    assert ramp["params"] == ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]
    if not recorded:
        del ramp["params"]
    model, resumed, _, _ = load_under(old + "group head lr=x0.5", (model.state_dict(), state))
    group = next(g for g in resumed.optimizer.param_groups if "body.0.weight" in g["param_names"])
    lrs = [group["lr"]]
    for k in range(4, 8):
        resumed.train_step(loss_of(model, k))
        lrs.append(group["lr"])
    assert lrs == straight[3:], "the warmup from step 2 goes on at step 4, where it was"


def test_gradients_of_an_unfinished_accumulation_stay_off_what_the_new_spec_freezes():
    model = make_net()
    compiled = compile_("optimizer sgd lr=0.1\naccumulate 2", model)
    compiled.train_step(loss_of(model, 0))
    state = compiled.state_dict()
    assert "body.0.weight" in state["training"]["grads"]
    fresh = make_net()
    fresh.load_state_dict(model.state_dict())
    other = compile_("optimizer sgd lr=0.1\naccumulate 2\nfreeze body\nunfreeze body at epoch 6", fresh)
    with pytest.warns(CheckpointWarning, match="trainable in the checkpoint, frozen from now on"):
        other.load_state_dict(state, strict=False)
    assert all(p.grad is None for p in fresh.body.parameters())
    before = fresh.body[0].weight.detach().clone()
    other.train_step(loss_of(fresh, 1))
    assert torch.equal(fresh.body[0].weight, before)


def test_through_dcp_a_future_moment_of_the_new_spec_waits(tmp_path):
    model = make_net()
    compiled = compile_("optimizer adamw lr=0.01\nfreeze body\nunfreeze body at epoch 1", model)
    run_epochs(model, compiled, 0, 2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        specopt.runtime.dcp.save(compiled, tmp_path / "ckpt")
        fresh = make_net()
        other = compile_("optimizer adamw lr=0.01\nfreeze body\nunfreeze body at epoch 6", fresh)
        with pytest.warns(CheckpointWarning, match="still to come: unfreeze@3:1 at epoch 6"):
            result = specopt.runtime.dcp.load(other, tmp_path / "ckpt", strict=False)
    assert not any(body_trainable(fresh)) and result.trainability["body.2.weight"] is False
