"""``specopt.runtime.dcp`` in one process: torch.distributed.checkpoint round trips, resumes, and the E5xx checks.

The two-rank FSDP2 case is in ``test_fsdp2.py``; here the state is plain
tensors, which DCP saves and loads the same way without a process group.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import specopt
import specopt.runtime.dcp
from loops import assert_same, loss_of, make_net, params_of
from specopt.runtime.compiled import CheckpointError

SPEC = ("optimizer adamw lr=1e-2\nfreeze backbone.block0\nunfreeze backbone.block0 at step 3 warmup 2 steps\n"
        "group head lr=x0.5\nclip l2 0.5\nschedule warmup 2 steps then cosine 8 steps to x0.1\n")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        warnings.filterwarnings("ignore", message=".*process group.*")
        yield


def _run(compiled, model, start: int, stop: int) -> None:
    for k in range(start, stop):
        compiled.train_step(loss_of(model, k))


def test_a_run_resumed_from_dcp_continues_as_the_uninterrupted_run(tmp_path):
    straight = make_net()
    compiled = specopt.compile(SPEC, straight)
    _run(compiled, straight, 0, 10)
    model = make_net()
    first = specopt.compile(SPEC, model)
    _run(first, model, 0, 5)
    specopt.runtime.dcp.save(first, tmp_path / "ckpt")
    resumed_model = make_net()
    resumed_model.load_state_dict(model.state_dict())
    resumed = specopt.compile(SPEC, resumed_model)
    result = specopt.runtime.dcp.load(resumed, tmp_path / "ckpt")
    assert result.complete and result.schedule_restored and resumed.steps == 5
    assert resumed_model.backbone.block0[0].weight.requires_grad, "the fired unfreeze is restored"
    _run(resumed, resumed_model, 5, 10)
    assert_same(params_of(resumed_model), params_of(straight))


def test_the_layout_is_torchs_optimizer_state_dict_keyed_by_name():
    model = make_net()
    compiled = specopt.compile(SPEC, model)
    _run(compiled, model, 0, 4)
    state = specopt.runtime.dcp.state_dict(compiled)
    assert set(state) == {"state", "param_groups", "specopt"} and isinstance(state["specopt"], bytes)
    assert set(state["state"]) == set(compiled.state_dict()["state"])
    assert [g["params"] for g in state["param_groups"]] == [g["param_names"] for g in compiled.optimizer.param_groups]


def test_a_changed_spec_is_e505_strictly_and_restores_by_name_otherwise(tmp_path):
    model = make_net()
    compiled = specopt.compile(SPEC, model)
    _run(compiled, model, 0, 5)
    specopt.runtime.dcp.save(compiled, tmp_path, key="opt")
    changed = specopt.compile(SPEC.replace("lr=x0.5", "lr=x0.1") + "freeze head.bias\n", make_net())
    with pytest.raises(CheckpointError) as exc:
        specopt.runtime.dcp.load(changed, tmp_path, key="opt")
    assert [d.code for d in exc.value.diagnostics] == ["E502", "E505"]
    with pytest.warns(UserWarning, match="saved under another spec"):
        result = specopt.runtime.dcp.load(changed, tmp_path, key="opt", strict=False)
    assert result.unexpected == ["head.bias"] and not result.not_restored
    assert changed.optimizer.param_groups[-1]["lr"] == pytest.approx(compiled.optimizer.param_groups[-1]["lr"] / 5)


def test_a_checkpoint_without_specopts_record_is_e501(tmp_path):
    import torch.distributed.checkpoint as dcp

    dcp.save({"optimizer": {"state": {}, "x": torch.zeros(2)}}, checkpoint_id=tmp_path)
    with pytest.raises(CheckpointError, match=r"has no 'optimizer.specopt' record \[E501\]"):
        specopt.runtime.dcp.load(specopt.compile(SPEC, make_net()), tmp_path)


def test_a_resized_layer_is_e503_and_another_optimizer_e504(tmp_path):
    from seed_model import Network

    model = Network()
    compiled = specopt.compile("optimizer adam", model)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    compiled.optimizer.step()
    specopt.runtime.dcp.save(compiled, tmp_path)
    with pytest.raises(CheckpointError, match=r"'classifier.weight' had shape \[10, 16\].*\[E503\]"):
        specopt.runtime.dcp.load(specopt.compile("optimizer adam", Network(classes=20)), tmp_path)
    with pytest.raises(CheckpointError, match=r"holds adam state, but this spec builds sgd \[E504\]"):
        specopt.runtime.dcp.load(specopt.compile("optimizer sgd momentum=0.9", Network()), tmp_path, strict=False)


def test_an_ema_or_an_unfinished_accumulation_is_refused_with_a_reason():
    model = make_net()
    with pytest.raises(ValueError, match="cannot save the EMA"):
        specopt.runtime.dcp.state_dict(specopt.compile("ema 0.9", model))
    compiled = specopt.compile("accumulate 2", model)
    compiled.train_step(loss_of(model, 0))
    with pytest.raises(ValueError, match="in the middle of an accumulation"):
        specopt.runtime.dcp.state_dict(compiled)


def test_torchs_own_distributed_state_dict_functions_read_the_checkpoint(tmp_path):
    """A plain-torch reader: get_optimizer_state_dict makes the target, DCP fills it, set_optimizer_state_dict loads.

    torch's target holds state for the parameters trainable now (it makes it by
    stepping with zero gradients), so the block an ``unfreeze ... at`` has not
    yet made trainable in the fresh reader is not read: specopt.runtime.dcp.load reads it.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    model = make_net()
    compiled = specopt.compile(SPEC, model)
    _run(compiled, model, 0, 5)
    specopt.runtime.dcp.save(compiled, tmp_path)
    reader_model = make_net()
    optimizer = specopt.compile(SPEC, reader_model).optimizer
    target = {"optimizer": get_optimizer_state_dict(reader_model, optimizer)}
    dcp.load(target, checkpoint_id=tmp_path)
    set_optimizer_state_dict(reader_model, optimizer, target["optimizer"])
    saved = compiled.state_dict()["state"]
    assert set(target["optimizer"]["state"]) == set(saved) - {n for n in saved if n.startswith("backbone.block0.")}
    for group in optimizer.param_groups:
        for name, param in zip(group["param_names"], group["params"]):
            for key, value in saved.get(name, {}).items() if name in target["optimizer"]["state"] else ():
                torch.testing.assert_close(optimizer.state[param][key], value, msg=f"{name} {key}")
    assert [g["lr"] for g in optimizer.param_groups] == [g["lr"] for g in compiled.optimizer.param_groups]
