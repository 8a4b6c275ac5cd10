"""norms=eval: the norm layers of a selection keep their running statistics, across model.train() calls."""

from __future__ import annotations

import copy

import torch
from torch import nn

import specopt
from loops import loss_of, make_net
from specopt.resolve.norm_layers import locked


def test_running_statistics_stay_fixed_while_the_model_trains():
    model = make_net()
    compiled = specopt.compile("freeze backbone.block0 norms=eval", model)
    model.train()
    fixed, moving = model.backbone.block0[1], model.backbone.block1[1]
    before = (fixed.running_mean.clone(), fixed.running_var.clone(), moving.running_mean.clone())
    for k in range(4):
        compiled.train_step(loss_of(model, k))
        model.train()
    assert torch.equal(fixed.running_mean, before[0]) and torch.equal(fixed.running_var, before[1])
    assert int(fixed.num_batches_tracked) == 0
    assert not torch.equal(moving.running_mean, before[2])
    assert model.training and not fixed.training and moving.training


def test_a_locked_layer_normalises_with_its_running_statistics():
    model = make_net()
    specopt.compile("freeze @BatchNorm1d norms=eval", model)
    model.train()
    x = torch.randn(6, 4)
    layer = model.backbone.block0[1]
    expected = nn.functional.batch_norm(model.backbone.block0[0](x), layer.running_mean, layer.running_var,
                                        layer.weight, layer.bias, training=False, eps=layer.eps)
    assert torch.equal(layer(model.backbone.block0[0](x)), expected)


def test_the_lock_is_an_instance_attribute_that_survives_deepcopy():
    model = make_net()
    specopt.compile("freeze backbone norms=eval", model)
    layer = model.backbone.block0[1]
    assert "train" in vars(layer) and "train" not in vars(model.backbone.block0[0])
    clone = copy.deepcopy(model)
    clone.train()
    assert locked(clone.backbone.block0[1]) and not clone.backbone.block0[1].training
    assert vars(clone.backbone.block0[1])["train"].module is clone.backbone.block0[1]


def test_norms_is_its_own_key_and_can_change_at_a_point_of_the_run():
    model = make_net()
    compiled = specopt.compile("freeze backbone norms=eval; unfreeze backbone.block1 at step 2 norms=train", model)
    model.train()
    modes = []
    for k in range(3):
        modes.append((model.backbone.block0[1].training, model.backbone.block1[1].training))
        compiled.train_step(loss_of(model, k))
    assert modes == [(False, False), (False, False), (False, True)]


def test_a_recompile_starts_from_unlocked_layers():
    model = make_net()
    specopt.compile("freeze backbone norms=eval", model)
    specopt.compile("freeze backbone", model)
    model.train()
    assert not any(locked(m) for m in model.modules()) and model.backbone.block0[1].training


def test_norms_that_reach_no_norm_layer_warn():
    compiled = specopt.compile("freeze head norms=eval", make_net())
    assert [w.code for w in compiled.resolution.warnings] == ["W303"]


def test_a_norms_statement_is_not_reported_as_changing_nothing():
    compiled = specopt.compile("freeze backbone; freeze backbone norms=eval", make_net())
    assert [w.code for w in compiled.resolution.warnings] == ["W301"]


def test_instance_norm_with_running_stats_is_a_norm_layer_and_without_is_not():
    model = nn.Sequential(nn.InstanceNorm1d(4, track_running_stats=True), nn.InstanceNorm1d(4, affine=True),
                          nn.Linear(4, 2))
    specopt.compile("freeze @InstanceNorm1d norms=eval", model)   # selects 1's parameters; 0 has none
    model.train()
    assert not model[0].training and model[1].training
