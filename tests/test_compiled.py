"""Optimizer checkpoints restore state by parameter name, not by position."""

from __future__ import annotations

import io

import pytest
import torch

import specopt


def _step(model, compiled, device="cpu"):
    model(torch.randn(2, 3, 8, 8, device=device)).sum().backward()
    compiled.optimizer.step()
    compiled.optimizer.zero_grad()


def test_state_follows_names_when_the_spec_changes_grouping(seed_model):
    first = specopt.parse("group classifier lr=1e-2").compile(seed_model)
    _step(seed_model, first)
    saved = first.state_dict()
    # A new spec puts the classifier first and splits groups differently.
    second = specopt.parse("group cnn lr=1e-4; group classifier.bias lr=5e-3").compile(seed_model)
    with pytest.warns(UserWarning, match="saved under another spec"):
        second.load_state_dict(saved, strict=False)  # strict: the changed spec is an error (E505)
    for group in second.optimizer.param_groups:
        for name, p in zip(group["param_names"], group["params"]):
            assert torch.equal(second.optimizer.state[p]["exp_avg"], saved["state"][name]["exp_avg"]), name
    assert second.optimizer.param_groups[0]["lr"] == 1e-4  # hyperparameters come from the new spec


def test_strict_load_reports_mismatched_names(seed_model):
    first = specopt.parse("freeze classifier").compile(seed_model)
    _step(seed_model, first)
    saved = first.state_dict()
    second = specopt.parse("unfreeze classifier").compile(seed_model)
    with pytest.raises(ValueError, match="no saved state for: classifier.bias"):
        second.load_state_dict(saved)
    second.load_state_dict(saved, strict=False)


def test_checkpoint_includes_the_scheduler(seed_model):
    compiled = specopt.parse("step every 1 x0.5").compile(seed_model)
    _step(seed_model, compiled)
    compiled.scheduler.step()
    saved = compiled.state_dict()
    again = specopt.parse("step every 1 x0.5").compile(seed_model)
    again.load_state_dict(saved)
    assert again.scheduler.last_epoch == 1


def test_resuming_with_the_same_spec_continues_the_decayed_learning_rate(seed_model):
    text = "optimizer sgd lr=1.0; group classifier lr=x0.5; step every 2 x0.1"
    first = specopt.parse(text).compile(seed_model)
    for _ in range(5):
        _step(seed_model, first)
        first.scheduler.step()
    saved = first.state_dict()
    again = specopt.parse(text).compile(seed_model)
    again.load_state_dict(saved)
    assert [g["lr"] for g in again.optimizer.param_groups] == pytest.approx([g["lr"] for g in first.optimizer.param_groups])
    assert again.scheduler.get_last_lr() == pytest.approx([1.0 * 0.01, 0.5 * 0.01])
    _step(seed_model, again)
    again.scheduler.step()
    first.scheduler.step()
    assert again.scheduler.get_last_lr() == pytest.approx(first.scheduler.get_last_lr())


def test_a_changed_schedule_applies_from_the_restored_step(seed_model):
    first = specopt.parse("optimizer sgd lr=1.0; step every 2 x0.1").compile(seed_model)
    for _ in range(4):
        _step(seed_model, first)
        first.scheduler.step()
    again = specopt.parse("optimizer sgd lr=1.0; step every 4 x0.5").compile(seed_model)
    with pytest.warns(UserWarning, match="the schedule changed since this state was saved: continuing at epoch 4"):
        again.load_state_dict(first.state_dict(), strict=False)
    assert again.scheduler.last_epoch == 4
    assert again.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


@pytest.mark.cuda
def test_a_cpu_checkpoint_resumes_on_cuda_by_name(seed_model):
    first = specopt.parse("group classifier lr=1e-2").compile(seed_model)
    _step(seed_model, first)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    saved = torch.load(io.BytesIO(buffer.getvalue()))
    model = type(seed_model)().cuda()
    second = specopt.parse("group cnn lr=1e-4; group classifier.bias lr=5e-3").compile(model)
    assert second.implementation.name == "fused"
    second.load_state_dict(saved, strict=False)
    for group in second.optimizer.param_groups:
        for name, p in zip(group["param_names"], group["params"]):
            state = second.optimizer.state[p]
            assert state["exp_avg"].device == p.device
            assert torch.equal(state["exp_avg"].cpu(), saved["state"][name]["exp_avg"]), name
    _step(model, second, "cuda")
    assert all(int(second.optimizer.state[p]["step"]) == 2 for p in model.parameters() if p.requires_grad)
