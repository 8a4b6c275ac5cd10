"""The step driver against hand-written loops doing the same work: accumulation, GradScaler, clip, schedule, EMA."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import specopt
from loops import assert_same, loss_of, make_net, params_of


def _float_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in params_of(module).items() if v.is_floating_point()}


def _hand_amp_loop(micro_batches: int, poison: set[int], accumulate: int = 3):
    """The loop people write: scale, backward, unscale, clip, step, update, schedule and EMA if it stepped."""
    model = make_net()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu")
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    stepped = []
    for k in range(micro_batches):
        scaler.scale(loss_of(model, k, poison) / accumulate).backward()
        if (k + 1) % accumulate:
            continue
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        scaler.step(optimizer)
        before = scaler.get_scale()
        scaler.update()
        stepped.append(scaler.get_scale() >= before)
        if stepped[-1]:
            scheduler.step()
            ema.update_parameters(model)
        optimizer.zero_grad(set_to_none=True)
    return model, optimizer, ema, stepped


AMP_SPEC = "optimizer adamw lr=1e-2 fused=true; accumulate 3; clip l2 0.5; step every 2 steps x0.5; ema 0.9"


@pytest.mark.parametrize("poison", [set(), {4}, {0, 1, 2}], ids=["clean", "inf mid-accumulation", "first step inf"])
def test_train_step_equals_the_hand_written_mixed_precision_loop(poison):
    hand, hand_opt, hand_ema, hand_stepped = _hand_amp_loop(18, poison)
    model = make_net()
    compiled = specopt.compile(AMP_SPEC, model, scaler=torch.amp.GradScaler("cpu"))
    stepped = [s for k in range(18) if (s := compiled.train_step(loss_of(model, k, poison))) or (k + 1) % 3 == 0]
    assert stepped == hand_stepped
    assert compiled.steps == sum(hand_stepped)
    assert_same(params_of(model), params_of(hand))
    assert compiled.optimizer.param_groups[0]["lr"] == hand_opt.param_groups[0]["lr"]
    assert_same(_float_state(compiled.ema.module), _float_state(hand_ema.module))


def test_a_skipped_first_step_does_not_advance_the_schedule_or_warn():
    model = make_net()
    compiled = specopt.compile("accumulate 2; step every 1 steps x0.5", model, scaler=torch.amp.GradScaler("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = [compiled.train_step(loss_of(model, k, poison={0})) for k in range(6)]
    assert results == [False, False, False, True, False, True]
    assert compiled.steps == 2 and compiled.scheduler.last_epoch == 2


def test_the_loss_is_divided_by_the_accumulation_count():
    model, reference = make_net(), make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1; accumulate 4", model)
    for k in range(3):
        compiled.train_step(loss_of(model, k))
        (loss_of(reference, k) / 4).backward()
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.equal(p.grad, q.grad)


def _hand_epoch_loop(epochs: int, per_epoch: int, accumulate: int):
    """Epoch-unit StepLR and a partial accumulation stepped at the end of each epoch."""
    model = make_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    k = 0
    for _ in range(epochs):
        for i in range(per_epoch):
            (loss_of(model, k) / accumulate).backward()
            k += 1
            if (i + 1) % accumulate == 0 or i + 1 == per_epoch:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        scheduler.step()
    return model


def test_end_epoch_steps_on_a_partial_accumulation_and_advances_epoch_schedules():
    model = make_net()
    compiled = specopt.compile("optimizer sgd lr=0.1 momentum=0.9 foreach=false; accumulate 3; step every 1 x0.5",
                               model)
    k = 0
    for _ in range(2):
        for _ in range(7):
            compiled.train_step(loss_of(model, k))
            k += 1
        compiled.end_epoch()
    assert (compiled.steps, compiled.epochs) == (6, 2)
    assert compiled.optimizer.param_groups[0]["lr"] == 0.025
    assert_same(params_of(model), params_of(_hand_epoch_loop(2, 7, 3)), exact=False)


def _hand_unfreeze_loop(steps: int):
    """Block1 frozen until step 3, then trained with its lr ramped from 0 over 4 steps; lr x0.5 every 5 steps."""
    model = make_net()
    block1, head = list(model.backbone.block1.parameters()), list(model.head.parameters())
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.SGD([{"params": block1}, {"params": head}], lr=0.1, momentum=0.9, foreach=False)
    for step in range(steps):
        if step == 3:
            for p in block1:
                p.requires_grad_(True)
        scheduled = 0.1 * 0.5 ** (step // 5)
        optimizer.param_groups[0]["lr"] = scheduled * min(1.0, max(0, step - 3) / 4)
        optimizer.param_groups[1]["lr"] = scheduled
        loss_of(model, step).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model, optimizer


UNFREEZE_SPEC = ("optimizer sgd lr=0.1 momentum=0.9 foreach=false\nfreeze backbone\n"
                 "unfreeze backbone.block1 at step 3 warmup 4 steps\nstep every 5 steps x0.5")


def test_an_unfreeze_with_warmup_equals_the_hand_written_gradual_unfreezing():
    model = make_net()
    compiled = specopt.compile(UNFREEZE_SPEC, model)
    block1 = list(model.backbone.block1.parameters())
    assert [g["param_names"][0] for g in compiled.optimizer.param_groups] == ["backbone.block1.0.weight",
                                                                              "head.weight"]
    for step in range(12):
        if step < 3:
            assert not any(p.requires_grad for p in block1)
        compiled.train_step(loss_of(model, step))
        if step < 3:
            assert all(p.grad is None and not compiled.optimizer.state[p] for p in block1)
    hand, hand_optimizer = _hand_unfreeze_loop(12)
    assert all(p.requires_grad for p in block1)
    assert_same(params_of(model), params_of(hand), exact=False)
    assert [g["lr"] for g in compiled.optimizer.param_groups] == [g["lr"] for g in hand_optimizer.param_groups]


def test_a_loop_of_its_own_with_after_step_equals_train_step():
    model, other = make_net(), make_net()
    driven = specopt.compile(UNFREEZE_SPEC + "\nema 0.5", model)
    own = specopt.compile(UNFREEZE_SPEC + "\nema 0.5", other)
    for step in range(10):
        driven.train_step(loss_of(model, step))
        own.optimizer.zero_grad()
        loss_of(other, step).backward()
        own.optimizer.step()
        own.after_step()
    assert_same(params_of(model), params_of(other))
    assert_same(params_of(driven.ema.module), params_of(own.ema.module))


def test_an_epoch_event_fires_at_end_epoch():
    model = make_net()
    compiled = specopt.compile("freeze backbone; unfreeze backbone at epoch 2; freeze head at epoch 3", model)
    flags = []
    for _ in range(4):
        compiled.train_step(loss_of(model, 0))
        compiled.end_epoch()
        flags.append((model.backbone.block0[0].weight.requires_grad, model.head.weight.requires_grad))
    assert flags == [(False, True), (True, True), (True, False), (True, False)]
    assert model.head.weight.grad is None


def test_a_moment_in_percent_waits_on_the_runs_clock():
    model = make_net()
    compiled = specopt.compile("freeze head at 50%", model, steps=8)
    for step in range(5):
        assert model.head.weight.requires_grad == (step < 4)
        compiled.train_step(loss_of(model, step))


def test_the_scaler_is_checked():
    with pytest.raises(TypeError, match="GradScaler"):
        specopt.compile("", make_net(), scaler=object())


# --- DistributedDataParallel ------------------------------------------------------------------

@pytest.fixture
def gloo(tmp_path):
    """A one-process gloo group."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield dist
    dist.destroy_process_group()


def test_micro_batches_before_the_boundary_skip_ddp_synchronisation(gloo):
    from torch.nn.parallel import DistributedDataParallel

    model, reference = make_net(), make_net()
    compiled = specopt.compile(UNFREEZE_SPEC + "\naccumulate 3", model)
    wrapped = compiled.use_ddp(DistributedDataParallel(model))
    plain = specopt.compile(UNFREEZE_SPEC + "\naccumulate 3", reference)
    syncing = []
    for k in range(20):
        syncing.append(wrapped.require_backward_grad_sync)
        compiled.train_step(loss_of(wrapped, k))
        plain.train_step(loss_of(reference, k))
    compiled.end_epoch()
    plain.end_epoch()
    assert syncing == [(k + 1) % 3 == 0 for k in range(20)]
    assert model.backbone.block1[0].weight.requires_grad
    assert_same(params_of(model), params_of(reference), exact=False)


def test_use_ddp_needs_a_wrapper_with_no_sync():
    with pytest.raises(TypeError, match="no_sync"):
        specopt.compile("", make_net()).use_ddp(make_net())
