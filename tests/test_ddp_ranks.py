"""Two ranks under DistributedDataParallel train as one process does on the same global batch.

The spec freezes, groups, clips, schedules, accumulates and unfreezes a block
part-way (a parameter DDP's reducer does not know, averaged by the driver);
every rank runs ``compiled.train_step`` on its half of each global batch. The
trained parameters must equal single-process training on the whole batches
(within float tolerance), and be equal on both ranks.
"""

from __future__ import annotations

import torch
from torch import nn

import specopt
from ranks import run_ranks

SPEC = """optimizer adamw lr=0.05 weight_decay=0.01
freeze body.0.bias
freeze body.2
unfreeze body.2 at step 2 warmup 2 steps
group head lr=x0.5
group no_decay: ndim<2 weight_decay=0
clip l2 0.5
accumulate 2
schedule warmup 2 steps then cosine 4 steps to x0.1
"""
MICRO_BATCHES, GLOBAL_BATCH = 11, 8  # an odd count: end_epoch flushes a partial accumulation


class Net(nn.Module):
    """``body`` (Linear, Tanh, Linear, LayerNorm) and ``head``; no batch statistics, so halves of a batch
    give the gradients of the whole batch when averaged."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.LayerNorm(16))
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def net() -> Net:
    torch.manual_seed(0)
    return Net()


def global_batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + k)
    return torch.randn(GLOBAL_BATCH, 4, generator=g) * 2, torch.randn(GLOBAL_BATCH, 3, generator=g)


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(model(x), y)


def train(model: nn.Module, compiled, rank: int = 0, world: int = 1) -> list[float]:
    """Every micro-batch through ``train_step`` (this rank's share of it), then ``end_epoch``; the norms."""
    norms = []
    share = GLOBAL_BATCH // world
    for k in range(MICRO_BATCHES):
        x, y = global_batch(k)
        if compiled.train_step(loss_of(model, x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share])):
            norms.append(float(compiled.clipper.last_norm))
    compiled.end_epoch()
    return norms


def ddp_rank(rank: int, world: int) -> dict:
    """One rank: compile on the bare model, wrap it, let the driver manage DDP's synchronisation."""
    model = net()
    compiled = specopt.compile(SPEC, model)
    ddp = compiled.use_ddp(nn.parallel.DistributedDataParallel(model))
    norms = train(ddp, compiled, rank, world)
    return {"params": {n: p.detach().clone() for n, p in model.named_parameters()}, "norms": norms,
            "steps": compiled.steps, "lrs": [g["lr"] for g in compiled.optimizer.param_groups],
            "names": [g["param_names"] for g in compiled.optimizer.param_groups]}


def test_two_ddp_ranks_train_as_one_process_on_the_global_batch():
    ranks = run_ranks(ddp_rank, world=2, timeout=60)
    model = net()
    compiled = specopt.compile(SPEC, model)
    norms = train(model, compiled)
    assert compiled.steps == 6 and ranks[0]["steps"] == ranks[1]["steps"] == 6
    assert model.body[2].weight.requires_grad, "the timed unfreeze happened"
    for rank in ranks:
        assert rank["names"] == [g["param_names"] for g in compiled.optimizer.param_groups]
        assert rank["lrs"] == [g["lr"] for g in compiled.optimizer.param_groups]
        torch.testing.assert_close(rank["norms"], norms, rtol=1e-5, atol=1e-6)
        for name, param in model.named_parameters():
            torch.testing.assert_close(rank["params"][name], param.detach(), rtol=1e-5, atol=1e-6, msg=name)
    for name, param in ranks[0]["params"].items():
        assert torch.equal(param, ranks[1]["params"][name]), f"{name} differs between the ranks"
    assert min(norms) > 0.5, "clipping mattered at every step"
