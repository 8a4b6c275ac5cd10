"""Building: the optimizer, scheduler and clipper, transactional freezing, tied parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import specopt
from conftest import SEED_SPEC
from specopt.diagnostics import SpecError


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.body = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 5, bias=False)
        self.head.weight = self.embed.weight


def test_groups_are_fewest_named_and_ordered(seed_model):
    compiled = specopt.load(SEED_SPEC).compile(seed_model)
    groups = compiled.optimizer.param_groups
    assert [g["name"] for g in groups] == ["group@6:35", "default"]
    assert groups[0]["param_names"][0] == "cnn.VGG_16.convolution2_1.weight"
    assert [g["lr"] for g in groups] == [1e-3, 1e-2]
    assert all(g["weight_decay"] == 1e-3 for g in groups)


def test_real_torch_objects(seed_model):
    compiled = specopt.load(SEED_SPEC).compile(seed_model)
    assert isinstance(compiled.optimizer, torch.optim.Adam)
    assert isinstance(compiled.scheduler, torch.optim.lr_scheduler.LRScheduler)
    assert compiled.schedule_unit == "epoch"
    assert compiled.lightning()["lr_scheduler"]["interval"] == "epoch"


def test_tied_parameter_appears_once_and_either_name_selects_it():
    model = Tied()
    compiled = specopt.parse("group head.weight lr=0.5; group ndim<2 @LayerNorm weight_decay=0").compile(model)
    names = [n for g in compiled.optimizer.param_groups for n in g["param_names"]]
    assert names.count("embed.weight") == 1 and "head.weight" not in names
    tied = compiled.resolution.param("head.weight")
    assert tied.info.name == "embed.weight" and tied.info.aliases == ("head.weight",)
    assert tied.settings["lr"].value == 0.5
    assert sum(len(g["params"]) for g in compiled.optimizer.param_groups) == 5


def test_class_selector_covers_subclasses_and_subtrees():
    class RMSNorm(nn.LayerNorm):
        pass

    model = nn.Sequential(nn.Linear(2, 2), RMSNorm(2))
    compiled = specopt.parse("group @LayerNorm weight_decay=0\noptimizer adamw").compile(model)
    decay = {n: compiled.resolution.param(n).settings["weight_decay"].value for n in ("0.weight", "1.weight")}
    assert decay == {"0.weight": 0.01, "1.weight": 0}


def test_failed_compile_leaves_the_model_untouched(seed_model):
    flags = [p.requires_grad for p in seed_model.parameters()]
    with pytest.raises(SpecError):
        specopt.parse("freeze cnn; optimizer muon").compile(seed_model)  # torch rejects 4-D weights
    with pytest.raises(SpecError):
        specopt.parse("freeze cnn; group nothing_like_this lr=1").compile(seed_model)
    assert [p.requires_grad for p in seed_model.parameters()] == flags


def test_unfreeze_after_freeze_wins(seed_model):
    compiled = specopt.parse("freeze cnn; unfreeze convolution2_2").compile(seed_model)
    frozen = set(compiled.frozen)
    assert "cnn.VGG_16.convolution2_2.weight" not in frozen
    assert "cnn.VGG_16.convolution2_1.weight" in frozen
    assert seed_model.cnn.VGG_16.convolution2_2.weight.requires_grad


def test_model_frozen_parameters_start_frozen(seed_model):
    seed_model.classifier.weight.requires_grad_(False)
    compiled = specopt.parse("clip l2 1").compile(seed_model)
    assert compiled.frozen == ["classifier.weight"]
    assert compiled.resolution.param("classifier.weight").frozen_by.kind == "model"


def test_clip_hook_clips_on_plain_step_and_keeps_the_norm():
    model = nn.Linear(3, 1)
    compiled = specopt.parse("optimizer sgd lr=0; clip l2 0.5").compile(model)
    (model(torch.ones(2, 3)).sum() * 100).backward()
    compiled.optimizer.step()
    total = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert float(compiled.clipper.last_norm) > 0.5
    assert float(total) == pytest.approx(0.5, rel=1e-4)


def test_clip_value_and_manual_call():
    model = nn.Linear(3, 1)
    compiled = specopt.parse("clip value 0.1").compile(model)
    compiled.clipper.detach()
    (model(torch.ones(2, 3)).sum() * 100).backward()
    assert compiled.clipper() is None
    assert all(p.grad.abs().max() <= 0.1 for p in model.parameters())


def test_clip_only_touches_the_optimizers_parameters(seed_model):
    compiled = specopt.parse("freeze classifier; clip l2 1e-6").compile(seed_model)
    seed_model.classifier.weight.requires_grad_(True)
    out = seed_model(torch.randn(2, 3, 8, 8)).sum()
    out.backward()
    grad = seed_model.classifier.weight.grad.clone()
    compiled.optimizer.step()
    assert torch.equal(seed_model.classifier.weight.grad, grad)


def test_relative_values_scale_the_base(seed_model):
    compiled = specopt.parse("optimizer adamw lr=2e-3 weight_decay=0.1\ngroup classifier lr=x10 weight_decay=x0"
                             ).compile(seed_model)
    head = compiled.resolution.param("classifier.bias").settings
    assert head["lr"].value == pytest.approx(2e-2) and head["weight_decay"].value == 0


def test_step_unit_steps(seed_model):
    compiled = specopt.parse("step every 100 steps x0.5").compile(seed_model)
    assert compiled.schedule_unit == "step"
    assert compiled.scheduler.values_at(99)["lr"] == [1e-3] and compiled.scheduler.values_at(100)["lr"] == [5e-4]


def test_implementation_flags_reach_torch(seed_model):
    compiled = specopt.parse("optimizer adamw foreach=false").compile(seed_model)
    assert compiled.optimizer.defaults["foreach"] is False


def test_resolve_on_the_meta_device_changes_nothing():
    from seed_model import Network

    with torch.device("meta"):
        model = Network()
    resolution = specopt.load(SEED_SPEC).resolve(model)
    assert [g.name for g in resolution.groups] == ["group@6:35", "default"]
    assert all(p.requires_grad for p in model.parameters())
    assert resolution.model is model


def test_lbfgs_gets_its_derived_max_eval_and_steps():
    model = torch.nn.Linear(3, 1)
    compiled = specopt.compile("optimizer lbfgs max_iter=8", model)
    assert compiled.optimizer.param_groups[0]["max_eval"] == 10  # torch's max_iter * 5 // 4
    x, y = torch.randn(8, 3), torch.randn(8, 1)

    def closure():
        compiled.optimizer.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        return loss

    compiled.optimizer.step(closure)
