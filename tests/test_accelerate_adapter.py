"""``specopt.integrations.accelerate`` after ``accelerator.prepare``: one schedule step per optimizer step on one and on two
processes, clipping once per step, and the loop equal to the step driver's on the same global batches."""

from __future__ import annotations

import math
import os

import pytest
import torch

import specopt
from peers import peer
from ranks import run_ranks
from test_ddp_ranks import loss_of, net

accelerate = peer("accelerate")
adapter = peer("specopt.integrations.accelerate")

SPEC = """optimizer adamw lr=0.05 weight_decay=0.01
freeze body.2
unfreeze body.2 at step 2 warmup 2 steps
group head lr=x0.5
clip l2 0.5
accumulate 2
schedule warmup 2 steps then cosine 1 epochs to x0.1
"""
BATCHES = 12  # of 4 samples; two processes take every other one


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(11)
    return [(torch.randn(4, 4, generator=g) * 2, torch.randn(4, 3, generator=g)) for _ in range(BATCHES)]


@pytest.fixture(autouse=True)
def _fresh_state():
    """Accelerate keeps its state process-wide; each test starts from none."""
    from accelerate.state import AcceleratorState, GradientState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def accelerate_loop(world: int = 1) -> dict:
    """The Accelerate loop of the module docstring; ``world`` processes, each with its share of the batches."""
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = net()
    data = batches()
    samples = torch.utils.data.TensorDataset(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))
    loader = torch.utils.data.DataLoader(samples, batch_size=4)
    compiled = specopt.compile(SPEC, model, steps_per_epoch=math.ceil(BATCHES / world / 2))
    wrapped, loader = accelerator.prepare(model, loader)
    optimizer, stepper = adapter.prepare(accelerator, compiled, wrapped)
    for x, y in loader:
        with accelerator.accumulate(wrapped):
            accelerator.backward(loss_of(wrapped, x, y))
            optimizer.step()
            stepper.step()
            optimizer.zero_grad()
    stepper.end_epoch()
    return {"params": {n: p.detach().clone() for n, p in model.named_parameters()}, "steps": compiled.steps,
            "position": compiled.scheduler.last_epoch, "lrs": [g["lr"] for g in compiled.optimizer.param_groups]}


def driver_loop(world: int = 1) -> dict:
    """The same run through compiled.train_step, one process, on global batches of ``world`` batches each."""
    model = net()
    compiled = specopt.compile(SPEC, model, steps_per_epoch=math.ceil(BATCHES / world / 2))
    data = batches()
    for k in range(0, BATCHES, world):
        compiled.train_step(loss_of(model, torch.cat([x for x, _ in data[k:k + world]]),
                                    torch.cat([y for _, y in data[k:k + world]])))
    compiled.end_epoch()
    return {"params": {n: p.detach().clone() for n, p in model.named_parameters()}, "steps": compiled.steps,
            "position": compiled.scheduler.last_epoch, "lrs": [g["lr"] for g in compiled.optimizer.param_groups]}


def _same(ours: dict, theirs: dict) -> None:
    assert ours["steps"] == theirs["steps"] and ours["position"] == theirs["position"] == ours["steps"]
    assert ours["lrs"] == pytest.approx(theirs["lrs"])
    for name, param in theirs["params"].items():
        torch.testing.assert_close(ours["params"][name], param, rtol=1e-5, atol=1e-6, msg=name)


def test_one_process_equals_the_step_driver():
    _same(accelerate_loop(), driver_loop())


def accelerate_rank(rank: int, world: int) -> dict:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    return accelerate_loop(world)


def test_two_processes_step_the_schedule_once_per_optimizer_step():
    ranks = run_ranks(accelerate_rank, world=2, timeout=60)
    reference = driver_loop(world=2)
    assert reference["steps"] == 3
    for rank in ranks:
        _same(rank, reference)


def test_clipping_in_the_loop_as_well_is_e601():
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = net()
    optimizer, _ = adapter.prepare(accelerator, specopt.compile(SPEC, model, steps_per_epoch=6), model)
    with pytest.raises(specopt.SpecError, match=r"the loop clips too \(accelerator.clip_grad_norm_=1\).*\[E601\]"):
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
    other = torch.nn.Linear(2, 2)
    other(torch.ones(1, 2)).sum().backward()
    assert float(accelerator.clip_grad_norm_(other.parameters(), 1.0)) > 0, "other parameters still clip"


def test_a_prepared_scheduler_is_e603_and_another_accumulation_e602():
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    compiled = specopt.compile(SPEC, net(), steps_per_epoch=6)
    accelerator.prepare(compiled.scheduler)
    with pytest.raises(specopt.SpecError, match=r"steps it once per process \(1 times\).*\[E603\]"):
        adapter.prepare(accelerator, compiled, compiled.resolution.model)
    with pytest.raises(specopt.SpecError, match=r"gradient_accumulation_steps=2.*\[E602\]"):
        model = net()
        adapter.prepare(accelerator, specopt.compile("accumulate 3", model), model)


def test_the_scheduler_prepared_after_specopt_is_e603_too():
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = net()
    compiled = specopt.compile(SPEC, model, steps_per_epoch=6)
    adapter.prepare(accelerator, compiled, model)
    with pytest.raises(specopt.SpecError, match=r"steps it once per process \(1 times\).*\[E603\]"):
        accelerator.prepare(compiled.scheduler)
    with pytest.raises(specopt.SpecError, match=r"\[E603\]"):
        accelerator.prepare_scheduler(compiled.scheduler)
    assert not accelerator._schedulers, "nothing was wrapped"
    other = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1), 1)
    assert accelerator.prepare(other).scheduler is other, "other schedulers still prepare"


def test_a_prepared_scheduler_and_another_accumulation_come_in_one_round():
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=4)
    model = net()
    compiled = specopt.compile(SPEC, model, steps_per_epoch=6)
    accelerator.prepare(compiled.scheduler)
    with pytest.raises(specopt.SpecError) as caught:
        adapter.prepare(accelerator, compiled, model)
    assert [d.code for d in caught.value.diagnostics] == ["E602", "E603"]
