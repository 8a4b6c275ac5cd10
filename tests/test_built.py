"""A compile starts from the model as its code built it, not from what an earlier compile did."""

from __future__ import annotations

import torch

import specopt


def model():
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))


def flags(m):
    return {n: p.requires_grad for n, p in m.named_parameters()}


def test_a_second_spec_without_the_freeze_trains_the_layer_again():
    m = model()
    specopt.compile("freeze 0", m)
    assert not m[0].weight.requires_grad
    compiled = specopt.compile("group 1 lr=x2", m)
    assert all(flags(m).values())
    assert compiled.frozen == []
    assert len([p for g in compiled.optimizer.param_groups for p in g["params"]]) == 4


def test_a_second_spec_on_an_all_frozen_first_compile_is_not_every_parameter_is_frozen():
    m = model()
    specopt.compile("freeze 0 1.weight", m)
    compiled = specopt.compile("freeze 1", m)
    assert flags(m) == {"0.weight": True, "0.bias": True, "1.weight": False, "1.bias": False}
    assert compiled.frozen == ["1.weight", "1.bias"]


def test_parameters_the_model_froze_itself_stay_frozen_by_model():
    m = model()
    m[1].bias.requires_grad_(False)
    specopt.compile("freeze 0", m)
    compiled = specopt.compile("group 1 lr=x2", m)
    assert flags(m) == {"0.weight": True, "0.bias": True, "1.weight": True, "1.bias": False}
    assert compiled.resolution.param("1.bias").frozen_by.kind == "model"


def test_a_flag_the_user_changed_after_a_compile_counts_as_built():
    m = model()
    specopt.compile("freeze 0", m)
    m[0].weight.requires_grad_(True)       # the user's own code trains it again
    m[1].weight.requires_grad_(False)      # and freezes another one
    compiled = specopt.compile("group 1 lr=x2", m)
    assert flags(m) == {"0.weight": True, "0.bias": True, "1.weight": False, "1.bias": True}
    assert compiled.resolution.param("1.weight").frozen_by.kind == "model"


def test_a_failed_compile_leaves_the_flags_and_the_record_as_they_were():
    m = model()
    specopt.compile("freeze 0", m)
    try:
        specopt.compile("freeze 0 1", m)   # every parameter frozen: E402
    except specopt.SpecError as exc:
        assert [d.code for d in exc.diagnostics] == ["E402"]
    assert flags(m) == {"0.weight": False, "0.bias": False, "1.weight": True, "1.bias": True}
    assert all(flags(specopt.compile("group 1 lr=x2", m).resolution.model).values())


def test_resolve_sees_the_built_flags_too():
    m = model()
    specopt.compile("freeze 0", m)
    resolution = specopt.parse("group 1 lr=x2").resolve(m)
    assert not any(p.frozen for p in resolution.params)
