"""Wrapped models mean the same as bare ones: DDP, DataParallel, torch.compile, FSDP1, activation checkpointing.

Each wrapper puts a segment before the names of the model it holds
(``module.``, ``_orig_mod.``, ``_fsdp_wrapped_module.``,
``_checkpoint_wrapped_module.``). One spec must give the same assignment on
the bare and on the wrapped model: the same names in the resolution, in the
param groups and in checkpoints, which load across the two.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import specopt
from specopt.diagnostics import SpecError
from specopt.report.diff import diff_resolutions, render_text

SPEC = """optimizer adamw lr=1e-2 weight_decay=0.1
freeze body.0
group no_decay: ndim<2 @@LayerNorm weight_decay=0
group head lr=x0.1
clip l2 1.0
"""


class Model(nn.Module):
    """A body of Linear, LayerNorm and Linear, a head, and a user's own submodule called ``module``."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 8))
        self.module = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.module(self.body(x)))


def make() -> Model:
    torch.manual_seed(0)
    return Model()


@pytest.fixture(scope="module")
def gloo(tmp_path_factory):
    """A one-process gloo group, enough for DistributedDataParallel and FSDP1 to name their parameters."""
    import torch.distributed as dist

    path = tmp_path_factory.mktemp("gloo") / "rendezvous"
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=0, world_size=1)
    yield dist
    dist.destroy_process_group()


def _ddp(model):
    model.body[0].requires_grad_(False)  # as SPEC does: DDP fixes the trainable parameters when it wraps
    return nn.parallel.DistributedDataParallel(model)


def _data_parallel(model):
    return nn.DataParallel(model)


def _compiled(model):
    return torch.compile(model)  # never run: compiling the graph is not what is tested


def _fsdp1(model):
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel(model, device_id=torch.device("cpu"), use_orig_params=True)


def _checkpointed(model):
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

    apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, (nn.Linear, nn.LayerNorm)))
    return model


def _compiled_ddp(model):
    return torch.compile(_ddp(model))


WRAPPERS = {"ddp": (_ddp, "module."), "data_parallel": (_data_parallel, "module."),
            "torch.compile": (_compiled, "_orig_mod."), "fsdp1": (_fsdp1, "_fsdp_wrapped_module."),
            "checkpoint_wrapper": (_checkpointed, "_checkpoint_wrapped_module."),
            "compile(ddp)": (_compiled_ddp, "_orig_mod.module.")}


@pytest.fixture(params=list(WRAPPERS))
def wrapped(request, gloo):
    """A freshly built model, and the same model built again and wrapped; the raw names carry the segment."""
    wrap, segment = WRAPPERS[request.param]
    model, bare = wrap(make()), make()
    assert any(segment in name for name, _ in model.named_parameters())
    if "ddp" in request.param:
        bare.body[0].requires_grad_(False)
    return bare, model


def _assignment(compiled) -> list:
    return [(p.info.name, p.frozen, p.group, dict((k, s.value) for k, s in p.settings.items()))
            for p in compiled.resolution.params]


def _step(compiled, model) -> None:
    torch.manual_seed(1)
    model = getattr(model, "_orig_mod", model)  # the same parameters, without compiling a graph
    model(torch.randn(5, 4)).pow(2).sum().backward()
    compiled.optimizer.step()
    compiled.optimizer.zero_grad()


def test_one_spec_gives_the_same_assignment_on_the_wrapped_model(wrapped):
    bare, model = wrapped
    ours, theirs = specopt.compile(SPEC, bare), specopt.compile(SPEC, model)
    assert _assignment(theirs) == _assignment(ours)
    assert [g["param_names"] for g in theirs.optimizer.param_groups] == \
        [g["param_names"] for g in ours.optimizer.param_groups]
    assert "module.weight" in theirs.resolution.tensors, "a user's module called 'module' keeps its name"
    assert theirs.explain() == ours.explain()


def test_checkpoints_load_across_the_bare_and_the_wrapped_model(wrapped):
    bare, model = wrapped
    ours, theirs = specopt.compile(SPEC, bare), specopt.compile(SPEC, model)
    _step(ours, bare)
    _step(theirs, model)
    saved, other = ours.state_dict(), theirs.state_dict()
    assert list(saved["state"]) == list(other["state"]) and saved["params"] == other["params"]
    assert specopt.compile(SPEC, make()).load_state_dict(other).complete
    again = specopt.compile(SPEC, model)
    assert again.load_state_dict(saved).complete


def test_diff_compares_a_bare_and_a_wrapped_resolution(wrapped):
    bare, model = wrapped
    before = specopt.parse(SPEC).resolve(bare)
    after = specopt.parse(SPEC.replace("freeze body.0", "freeze body")).resolve(model)
    text = render_text(diff_resolutions(before, after, "a", "b"), "Model")
    assert "  body.1.weight\n  body.1.bias\n" in text and "frozen        no -> yes" in text


def test_a_selector_that_selects_nothing_suggests_names_without_the_segment(wrapped):
    _, model = wrapped
    with pytest.raises(SpecError) as exc:
        specopt.compile("freeze bdy", model)
    assert exc.value.diagnostics[0].hint == "closest real names: body"


def test_class_selectors_see_through_the_wrapper(wrapped):
    bare, model = wrapped
    for text in ("group @LayerNorm lr=2", "group @@Linear lr=1", "group @Sequential lr=1"):
        assert _assignment(specopt.compile(text, model)) == _assignment(specopt.compile(text, bare)), text


def test_module_classes_are_keyed_by_the_path_without_the_segment(wrapped):
    from specopt.resolve.resolution import index_model

    bare, model = wrapped
    classes = index_model(model).module_classes
    assert set(classes) == set(index_model(bare).module_classes)
    assert "LayerNorm" in classes["body.1"]


def test_freezing_inside_ddp_is_still_refused_and_a_spec_that_freezes_nothing_compiles(gloo):
    model = _ddp(make())
    with pytest.raises(SpecError, match=r"\[E408\]"):
        specopt.compile("freeze body", model)
    with pytest.raises(SpecError, match=r"\[E408\]"):
        specopt.compile("unfreeze body", model)
    compiled = specopt.compile("group head lr=1; clip l2 1", model)
    assert compiled.frozen == ["body.0.weight", "body.0.bias"] and "head.weight" in compiled.resolution.tensors


def test_a_wrapper_is_recognised_by_class_not_by_the_segment_name():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self._orig_mod = nn.Linear(2, 2)

    names = [p.info.name for p in specopt.parse("").resolve(Holder()).params]
    assert names == ["_orig_mod.weight", "_orig_mod.bias"]


def test_norm_layers_are_found_by_their_path_without_the_segment():
    model = torch.compile(nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4)))
    compiled = specopt.compile("freeze 1 norms=eval", model)
    assert [layer.path for layer in compiled.driver.norms] == ["1"]
    model.train()
    assert not model._orig_mod[1].training
