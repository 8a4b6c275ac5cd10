"""FSDP2 (``fully_shard``) on two CPU ranks: selection, clipping over every shard, training, DCP checkpoints.

Under ``fully_shard`` every parameter is a DTensor holding one shard per
rank. The spec must select by the original names, classes and (global)
shapes; clipping must measure the norm over all shards on every rank (the
inf norm of DTensor gradients comes back as a *partial* maximum whose
``float()`` is only this rank's: deciding on it would let the ranks disagree
and hang); training must equal unsharded training on the same global batch;
and the optimizer state saved through ``torch.distributed.checkpoint`` must
come back by name into a changed spec exactly as a single-process checkpoint
does.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import specopt
import specopt.runtime.dcp
from ranks import run_ranks
from test_ddp_ranks import SPEC, net, train

CHANGED = SPEC.replace("group head lr=x0.5", "group head lr=x0.25") + "freeze head.bias\n"


def _full(value):
    return value.full_tensor() if hasattr(value, "full_tensor") else value


def _assignment(compiled) -> list:
    return [(p.info.name, p.info.shape, p.frozen, p.group, {k: s.value for k, s in p.settings.items()})
            for p in compiled.resolution.params]


def _sharded():
    from torch.distributed.fsdp import fully_shard

    model = net()
    fully_shard(model.body)
    fully_shard(model)
    return model


def _state(compiled) -> dict:
    """Each trained parameter's optimizer state, gathered into full tensors."""
    return {n: {k: _full(v).clone() for k, v in compiled.optimizer.state[p].items()}
            for g in compiled.optimizer.param_groups for n, p in zip(g["param_names"], g["params"])
            if compiled.optimizer.state[p]}


def _count_reductions() -> list:
    """Count the gradient reductions (reduce-scatters) FSDP2 makes in this process from now on."""
    import torch.distributed as dist

    calls = []
    for name in ("reduce_scatter_tensor", "reduce_scatter_single"):  # torch 2.9 calls the first, later the second
        real = getattr(dist, name, None)
        if real is not None:
            setattr(dist, name, lambda *a, _real=real, **k: calls.append(1) or _real(*a, **k))
    return calls


def fsdp_rank(rank: int, world: int, spec: str, folder: str | None) -> dict:
    """Train under ``spec`` on this rank's half of each batch; then save, and load into CHANGED."""
    model = _sharded()
    assert isinstance(model.head.weight, torch.distributed.tensor.DTensor)
    compiled = specopt.compile(spec, model)
    out = {"assignment": _assignment(compiled), "implementation": compiled.implementation.describe()}
    reductions = _count_reductions()
    out["norms"] = train(model, compiled, rank, world)
    out["reductions"], out["steps"] = len(reductions), compiled.steps
    out["params"] = {n: _full(p).detach().clone() for n, p in model.named_parameters()}
    out["lrs"] = [g["lr"] for g in compiled.optimizer.param_groups]
    if folder is not None:
        out.update(_checkpoints(model, compiled, folder))
    return out


def _checkpoints(model, compiled, folder: str) -> dict:
    """Save through DCP, then load into CHANGED on a fresh sharded model: strictly (E505), then not."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    torch_names = set(get_optimizer_state_dict(model, compiled.optimizer)["state"])
    specopt.runtime.dcp.save(compiled, folder)
    again = specopt.compile(CHANGED, _sharded())
    with pytest.raises(specopt.SpecError) as strict:
        specopt.runtime.dcp.load(again, folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = specopt.runtime.dcp.load(again, folder, strict=False)
    return {"torch_names": torch_names, "strict_codes": [d.code for d in strict.value.diagnostics],
            "result": (result.restored, result.not_restored, result.unexpected), "warnings": len(caught),
            "restored_state": _state(again), "restored_lrs": [g["lr"] for g in again.optimizer.param_groups],
            "steps": again.steps, "unfrozen": again.resolution.model.body[2].weight.requires_grad}


def _reference(spec: str):
    model = net()
    compiled = specopt.compile(spec, model)
    return model, compiled, train(model, compiled)


@pytest.fixture(scope="module")
def l2_run(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("dcp"))
    return run_ranks(fsdp_rank, SPEC, folder, world=2, timeout=90)


def test_selectors_see_the_original_names_classes_and_shapes(l2_run):
    bare = specopt.compile(SPEC, net())
    for rank in l2_run:
        assert rank["assignment"] == _assignment(bare)
    assert l2_run[0]["implementation"].startswith("fused"), "fused AdamW has a DTensor sharding rule"


def test_sharded_training_equals_unsharded_training(l2_run):
    model, compiled, norms = _reference(SPEC)
    for rank in l2_run:
        torch.testing.assert_close(rank["norms"], norms, rtol=1e-5, atol=1e-6)
        assert rank["lrs"] == [g["lr"] for g in compiled.optimizer.param_groups]
        for name, param in model.named_parameters():
            torch.testing.assert_close(rank["params"][name], param.detach(), rtol=1e-5, atol=1e-6, msg=name)
    assert min(norms) > 0.5, "clipping mattered at every step"


def test_accumulation_reduces_the_gradients_once_per_optimizer_step(l2_run):
    """``accumulate 2`` over 11 micro-batches: 5 steps and a flushed partial one, each one reduction per
    sharded module (``body`` and the root), where reducing at every micro-batch made 11 each. The results
    equal unsharded training (test_sharded_training_equals_unsharded_training), the flushed step included."""
    for rank in l2_run:
        assert rank["steps"] == 6
        assert rank["reductions"] == 2 * rank["steps"], "one reduce-scatter per module and optimizer step"


def test_dcp_state_restores_by_name_into_a_changed_spec_like_a_single_process_checkpoint(l2_run):
    model, compiled, _ = _reference(SPEC)
    again = specopt.compile(CHANGED, net())
    with pytest.raises(specopt.SpecError) as strict:
        again.load_state_dict(compiled.state_dict())
    with pytest.warns(UserWarning) as caught:
        result = again.load_state_dict(compiled.state_dict(), strict=False)
    expected = _state(again)
    assert result.unexpected == ["head.bias"], "frozen in the new spec: skipped"
    for rank in l2_run:
        assert rank["torch_names"] == set(compiled.state_dict()["state"]), "the names DCP's own helpers use"
        assert rank["strict_codes"] == [d.code for d in strict.value.diagnostics] == ["E502", "E505"]
        assert rank["result"] == (result.restored, result.not_restored, result.unexpected)
        assert rank["warnings"] == len(caught) == 2
        assert rank["restored_lrs"] == [g["lr"] for g in again.optimizer.param_groups]
        assert rank["steps"] == again.steps == 6 and rank["unfrozen"]
        assert rank["restored_state"].keys() == expected.keys()
        for name, entry in expected.items():
            for key, value in entry.items():
                torch.testing.assert_close(rank["restored_state"][name][key], value, msg=f"{name} {key}")


def inf_norm_rank(rank: int, world: int) -> dict:
    """The inf norm of this rank's DTensor gradients as torch returns it, and as the clip hook uses it."""
    from specopt.runtime.sharded_norms import total_norm
    from test_ddp_ranks import global_batch, loss_of

    model = _sharded()
    x, y = global_batch(0)
    loss_of(model, x[rank * 4:(rank + 1) * 4], y[rank * 4:(rank + 1) * 4]).backward()
    grads = [p.grad for p in model.parameters()]
    raw = torch.nn.utils.get_total_norm(grads, math.inf)
    placement = raw.placements[0]  # Partial, or in torch 2.9 its subclass _NormPartial
    return {"placement": (placement.is_partial(), placement.reduce_op), "local": float(raw.to_local()),
            "total": total_norm(grads, math.inf), "l2": total_norm(grads, 2.0)}


def test_the_inf_norm_is_reduced_over_every_shard_before_the_host_reads_it():
    ranks = run_ranks(inf_norm_rank, world=2, timeout=60)
    from test_ddp_ranks import global_batch, loss_of

    model = net()
    x, y = global_batch(0)
    loss_of(model, x, y).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(r["placement"] == (True, "max") for r in ranks), "a partial maximum"
    assert ranks[0]["local"] != ranks[1]["local"], "each rank alone sees another maximum"
    for rank in ranks:
        assert type(rank["total"]) is torch.Tensor
        torch.testing.assert_close(rank["total"], torch.nn.utils.get_total_norm(grads, math.inf))
        torch.testing.assert_close(rank["l2"], torch.nn.utils.get_total_norm(grads, 2.0))


def test_inf_clipping_trains_like_unsharded_training():
    """The maximum, 0.6, lies between the two ranks' local maxima of the first gradients (0.50 and 0.71).

    A clip hook deciding on torch's partial norm skips the scaling on one rank
    only, and scaling communicates: with torch's own ``get_total_norm`` and
    ``clip_grads_with_norm_`` in the hook this run ends in gloo's timeout.
    """
    spec = SPEC.replace("clip l2 0.5", "clip inf 0.6")
    ranks = run_ranks(fsdp_rank, spec, None, world=2, timeout=90)
    model, _, norms = _reference(spec)
    assert min(norms) < 0.6 < max(norms), "some steps clip, others do not"
    for rank in ranks:
        torch.testing.assert_close(rank["norms"], norms, rtol=1e-5, atol=1e-6)
        for name, param in model.named_parameters():
            torch.testing.assert_close(rank["params"][name], param.detach(), rtol=1e-5, atol=1e-6, msg=name)


MUON = SPEC.replace("optimizer adamw lr=0.05 weight_decay=0.01",
                    "optimizer adamw lr=0.05 weight_decay=0.01\noptimizer muon for ndim==2 & !head.* lr=0.05")


def test_muon_trains_like_one_process():
    """Muon orthogonalises each whole matrix (gathered from the ranks), as one process does.

    torch's Muon on the shards gave body.0.weight (16 x 4, orthogonalised as its
    transpose, so a product sums over the sharded dimension) updates that
    differed by up to a fifth of their largest element: the ranks' partial
    products are rounded to bfloat16 before they are added, and Newton-Schulz
    amplifies the difference (docs/distributed.md).
    """
    ranks = run_ranks(fsdp_rank, MUON, None, world=2, timeout=90)
    model, compiled, norms = _reference(MUON)
    assert [type(p).__name__ for p in compiled.optimizer.parts] == ["AdamW", "Muon"]
    assert compiled.resolution.model.body[0].weight.shape == (16, 4)
    for rank in ranks:
        assert rank["steps"] == compiled.steps == 6
        torch.testing.assert_close(rank["norms"], norms, rtol=1e-5, atol=1e-6)
        for name, param in model.named_parameters():
            torch.testing.assert_close(rank["params"][name], param.detach(), rtol=1e-5, atol=1e-6, msg=name)


def test_the_driver_looks_for_sharded_modules_once(monkeypatch):
    """Without ``fully_shard`` nothing changes, and the module tree is walked at the first micro-batch only."""
    from specopt.runtime import driver
    from test_ddp_ranks import global_batch, loss_of

    looked = []
    real = driver.DeferredSync.of
    monkeypatch.setattr(driver.DeferredSync, "of", lambda model: looked.append(model) or real(model))
    model = net()
    compiled = specopt.compile(SPEC, model)
    for k in range(5):
        compiled.train_step(loss_of(model, *global_batch(k)))
    assert looked == [model] and compiled.driver._sharded is False and compiled.steps == 2
