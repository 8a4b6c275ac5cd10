"""Resume with several optimizers (AdamW + Muon) is bit for bit the uninterrupted run.

Through ``compiled.load_state_dict``, ``specopt.runtime.dcp`` and a Lightning
``ckpt_path`` resume, at several cut points (around an ``unfreeze ... at ...
warmup``, during and after the cosine), in this process and in a fresh one.
Each resumed run is compared with the uninterrupted one with ``torch.equal``
on the weights, on every optimizer state tensor and on every group's lr.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn

import specopt
import specopt.runtime.dcp
from conftest import ROOT
from peers import peer

SPEC = """optimizer adamw lr=0.01
optimizer muon for ndim==2 & !0.* lr=0.02
schedule cosine 10 steps
freeze 2
unfreeze 2.weight at step 3 warmup 3 steps
unfreeze 2.bias at epoch 1 warmup 2 steps
"""
UNSCHEDULED = SPEC.replace("schedule cosine 10 steps\n", "")  # the ramps restore the spec's lr themselves
PER_EPOCH = 4  # optimizer steps per epoch
EPOCHS = 3
TOTAL = PER_EPOCH * EPOCHS


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


def batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(500 + k)
    return torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)


def loss_of(model: nn.Module, data) -> torch.Tensor:
    x, y = data
    return nn.functional.cross_entropy(model(x), y)


def compile_fresh(seed: int = 0, spec: str = SPEC):
    model = make_model(seed)
    return model, specopt.compile(spec, model, steps_per_epoch=PER_EPOCH, epochs=EPOCHS)


def run(model, compiled, start: int, stop: int) -> None:
    """Steps ``start`` to ``stop`` (exclusive) through the step driver, closing an epoch every PER_EPOCH."""
    for k in range(start, stop):
        compiled.train_step(loss_of(model, batch(k)))
        if (k + 1) % PER_EPOCH == 0:
            compiled.end_epoch()


def snapshot(model, compiled) -> dict:
    """Everything that must be equal: weights, optimizer state, each group's lr (combined and per part), flags."""
    return {"params": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": compiled.optimizer.state_dict()["state"],
            "lr": [g["lr"] for g in compiled.optimizer.param_groups],
            "part_lr": [g["lr"] for part in compiled.optimizers for g in part.param_groups],
            "requires_grad": [p.requires_grad for p in model.parameters()],
            "counts": (compiled.steps, compiled.epochs, getattr(compiled.scheduler, "last_epoch", None))}


def assert_identical(a: dict, b: dict) -> None:
    assert a["params"].keys() == b["params"].keys()
    for key in a["params"]:
        assert torch.equal(a["params"][key], b["params"][key]), key
    assert a["optimizer"].keys() == b["optimizer"].keys()
    for index, state in a["optimizer"].items():
        assert state.keys() == b["optimizer"][index].keys(), index
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"][index][name]), (index, name)
    assert (a["lr"], a["part_lr"], a["requires_grad"], a["counts"]) == \
        (b["lr"], b["part_lr"], b["requires_grad"], b["counts"])


@pytest.fixture(scope="module")
def uninterrupted() -> dict:
    model, compiled = compile_fresh()
    run(model, compiled, 0, TOTAL)
    return snapshot(model, compiled)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.distributed is disabled.*")
        warnings.filterwarnings("ignore", message=".*process group.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        yield


# --- compiled.load_state_dict ---------------------------------------------------------------------

def checkpoint(model, compiled) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "compiled": compiled.state_dict()}, buffer)
    return buffer.getvalue()


def resume(data: bytes, spec: str = SPEC):
    saved = torch.load(io.BytesIO(data))
    model, compiled = compile_fresh(seed=1, spec=spec)
    model.load_state_dict(saved["model"])
    compiled.load_state_dict(saved["compiled"])
    return model, compiled


@pytest.mark.parametrize("stop", range(1, TOTAL))
def test_resuming_through_load_state_dict_is_bitwise(stop, uninterrupted):
    model, compiled = compile_fresh()
    run(model, compiled, 0, stop)
    model, compiled = resume(checkpoint(model, compiled))
    run(model, compiled, stop, TOTAL)
    assert_identical(snapshot(model, compiled), uninterrupted)


@pytest.mark.parametrize("stop", [3, 4, 5])
def test_resuming_a_ramp_without_a_schedule_is_bitwise(stop):
    model, compiled = compile_fresh(spec=UNSCHEDULED)
    run(model, compiled, 0, TOTAL)
    expected = snapshot(model, compiled)
    model, compiled = compile_fresh(spec=UNSCHEDULED)
    run(model, compiled, 0, stop)
    model, compiled = resume(checkpoint(model, compiled), UNSCHEDULED)
    run(model, compiled, stop, TOTAL)
    assert_identical(snapshot(model, compiled), expected)


def test_the_scheduler_writes_into_the_groups_the_parts_step_with_after_loading():
    model, compiled = compile_fresh()
    run(model, compiled, 0, 4)
    model, resumed = resume(checkpoint(model, compiled))
    for mine, part in zip(resumed.optimizer.param_groups, [g for p in resumed.optimizers for g in p.param_groups]):
        assert mine is part
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [g["lr"] for g in compiled.optimizer.param_groups]


def test_a_ramp_warms_up_the_group_of_the_parameter_it_unfreezes():
    """2.weight is Muon's, 2.bias AdamW's: each unfreeze ramps its own group, wherever the parts put it."""
    model, compiled = compile_fresh()
    group_of = {n: g for g in compiled.optimizer.param_groups for n in g["param_names"]}
    run(model, compiled, 0, 3)      # step 3: 2.weight joins with lr 0, then 1/3, 2/3 of its scheduled lr
    assert group_of["2.weight"]["lr"] == 0.0 and group_of["2.bias"]["lr"] > 0
    run(model, compiled, 3, 4)      # epoch 1 (step 4): 2.bias joins with lr 0
    assert group_of["2.bias"]["lr"] == 0.0
    assert group_of["2.weight"]["lr"] == pytest.approx(_scheduled(compiled, "2.weight") / 3)


def _scheduled(compiled, name: str) -> float:
    """The lr the schedule gives ``name``'s group now (without a ramp)."""
    groups = compiled.optimizer.param_groups
    k = next(i for i, g in enumerate(groups) if name in g["param_names"])
    return compiled.scheduler.values_at(compiled.scheduler.last_epoch)["lr"][compiled.scheduler.members["lr"].index(k)]


# --- specopt.runtime.dcp ----------------------------------------------------------------------------------

def dcp_save(model, compiled, folder) -> None:
    specopt.runtime.dcp.save(compiled, folder / "optimizer")
    torch.save(model.state_dict(), folder / "model.pt")


def dcp_resume(folder):
    model, compiled = compile_fresh(seed=1)
    model.load_state_dict(torch.load(folder / "model.pt"))
    result = specopt.runtime.dcp.load(compiled, folder / "optimizer")
    assert result.complete and result.schedule_restored
    return model, compiled


@pytest.mark.parametrize("stop", [2, 3, 5, 9, 11])
def test_resuming_through_dcp_is_bitwise(stop, uninterrupted, tmp_path):
    model, compiled = compile_fresh()
    run(model, compiled, 0, stop)
    dcp_save(model, compiled, tmp_path)
    model, compiled = dcp_resume(tmp_path)
    run(model, compiled, stop, TOTAL)
    assert_identical(snapshot(model, compiled), uninterrupted)


# --- Lightning ------------------------------------------------------------------------------------

def lightning_module():
    """A LightningModule over ``make_model()`` whose optimizers come from the run's SpecCallback."""
    pl, adapter = peer("lightning.pytorch"), peer("specopt.integrations.lightning")

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = make_model()

        def training_step(self, data, batch_idx):
            return loss_of(self.model, data)

        def configure_optimizers(self):
            return adapter.configure_optimizers(self)

    return Classifier()


def lightning_fit(epochs: int, ckpt_path=None, save=None, spec: str = SPEC):
    """Fit ``epochs`` epochs (resuming from ``ckpt_path``), save a checkpoint to ``save``: the model and compiled."""
    pl, adapter = peer("lightning.pytorch"), peer("specopt.integrations.lightning")
    callback = adapter.SpecCallback(specopt.parse(spec), module="model", epochs=EPOCHS)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
                         max_epochs=epochs)
    module = lightning_module()
    loader = torch.utils.data.DataLoader([batch(k) for k in range(PER_EPOCH)], batch_size=None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, loader, ckpt_path=ckpt_path)
    if save is not None:
        trainer.save_checkpoint(save)
    return module.model, callback.compiled


@pytest.fixture(scope="module")
def lightning_uninterrupted() -> dict:
    return snapshot(*lightning_fit(EPOCHS))


@pytest.mark.parametrize("epochs", [1, 2])
def test_resuming_a_lightning_run_from_ckpt_path_is_bitwise(epochs, lightning_uninterrupted, tmp_path):
    lightning_fit(epochs, save=tmp_path / "cut.ckpt")
    resumed = snapshot(*lightning_fit(EPOCHS, ckpt_path=tmp_path / "cut.ckpt"))
    assert_identical(resumed, lightning_uninterrupted)


def test_resuming_a_lightning_run_with_a_ramp_and_no_schedule_is_bitwise(tmp_path):
    expected = snapshot(*lightning_fit(EPOCHS, spec=UNSCHEDULED))
    lightning_fit(1, save=tmp_path / "cut.ckpt", spec=UNSCHEDULED)    # saved while 2.weight warms up
    resumed = snapshot(*lightning_fit(EPOCHS, ckpt_path=tmp_path / "cut.ckpt", spec=UNSCHEDULED))
    assert_identical(resumed, expected)


# --- a fresh process ------------------------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import pathlib, sys, torch
    sys.path[:0] = [{root!r}, {tests!r}]
    import peers
    peers.repair_torchvision()
    from test_resume_several import *
    folder, phase = pathlib.Path(sys.argv[1]), sys.argv[2]
    if phase == "start":
        model, compiled = compile_fresh()
        run(model, compiled, 0, PER_EPOCH + 1)
        (folder / "plain.pt").write_bytes(checkpoint(model, compiled))
        dcp_save(model, compiled, folder)
        lightning_fit(1, save=folder / "lightning.ckpt")
    else:
        model, compiled = resume((folder / "plain.pt").read_bytes())
        run(model, compiled, PER_EPOCH + 1, TOTAL)
        torch.save(snapshot(model, compiled), folder / "plain.final")
        model, compiled = dcp_resume(folder)
        run(model, compiled, PER_EPOCH + 1, TOTAL)
        torch.save(snapshot(model, compiled), folder / "dcp.final")
        torch.save(snapshot(*lightning_fit(EPOCHS, ckpt_path=folder / "lightning.ckpt")), folder / "lightning.final")
""")


def test_a_run_resumed_in_a_fresh_process_is_bitwise_through_each_path(tmp_path, uninterrupted,
                                                                         lightning_uninterrupted):
    script = tmp_path / "resume_several.py"
    script.write_text(SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "PYTHONWARNINGS": "ignore"}
    for phase in ("start", "finish"):
        subprocess.run([sys.executable, str(script), str(tmp_path), phase], check=True, env=env, cwd=tmp_path)
    assert_identical(torch.load(tmp_path / "plain.final"), uninterrupted)
    assert_identical(torch.load(tmp_path / "dcp.final"), uninterrupted)
    assert_identical(torch.load(tmp_path / "lightning.final"), lightning_uninterrupted)
