"""The Lightning and Hugging Face Trainer adapters under their frameworks' own DistributedDataParallel.

Two gloo processes, started as torchrun would start them (``RANK``,
``WORLD_SIZE``, ... in the environment, so that each framework finds itself
launched): Lightning with ``strategy="ddp"`` (accelerator cpu, devices 2), the
Trainer with the process group Accelerate finds. Each rank trains on its half
of every global batch, with a block unfrozen part-way (a parameter DDP's
reducer does not know). The run equals one process on the whole batches, the
ranks agree bit for bit, and a run resumed from the framework's checkpoint in
fresh processes continues bit for bit.
"""

from __future__ import annotations

import os
import socket

import peers

peers.repair_torchvision()  # before the frameworks import: the ranks import this module first

import pytest  # noqa: E402
import torch  # noqa: E402

import specopt  # noqa: E402
from ranks import run_ranks  # noqa: E402
from test_hf_adapter import RESUME_SPEC, _resumable  # noqa: E402
from test_ddp_ranks import net  # noqa: E402
from test_lightning_adapter import SPEC, Regressor, _data, _loss, adapter, pl  # noqa: E402

TIMEOUT = 180  # seconds for each group of ranks, imports included, on a busy machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launched(rank: int, world: int, port: int) -> None:
    """The environment torchrun gives a rank (the process group itself is already up, see ``ranks.py``)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      NODE_RANK="0", GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _same(ours: dict, theirs: dict, exact: bool) -> None:
    for name, param in theirs["params"].items():
        if exact:
            assert torch.equal(ours["params"][name], param), name
        else:
            torch.testing.assert_close(ours["params"][name], param, rtol=1e-5, atol=1e-6, msg=name)
    for mine, reference in zip(ours["ema"], theirs["ema"]):
        assert torch.equal(mine, reference) if exact else torch.allclose(mine, reference, rtol=1e-5, atol=1e-6)
    assert (ours["steps"], ours["epochs"]) == (theirs["steps"], theirs["epochs"])


def _result(model, compiled, seen) -> dict:
    return {"params": {n: p.detach().clone() for n, p in model.named_parameters()}, "seen": seen,
            "ema": [p.detach().clone() for p in compiled.ema.parameters()], "steps": compiled.steps,
            "epochs": compiled.epochs, "lrs": [g["lr"] for g in compiled.optimizer.param_groups]}


# --- Lightning, strategy="ddp" -------------------------------------------------------------------------------


class Watch(pl.Callback):
    """Records, at each batch, whether the block unfrozen at step 2 trains."""

    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(pl_module.model.body[2].weight.requires_grad)


def _samples() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[j], y[j]) for x, y in _data() for j in range(len(x))]


def _lightning_fit(folder: str, epochs: int, resume: str | None = None) -> tuple:
    """Each rank's half of the samples, 2 a batch: Lightning gives the loader a DistributedSampler."""
    callback, watch, module = adapter.SpecCallback(specopt.parse(SPEC), module="model"), Watch(), Regressor()
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=epochs, accumulate_grad_batches=2,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback, watch], default_root_dir=folder)
    trainer.fit(module, torch.utils.data.DataLoader(_samples(), batch_size=2), ckpt_path=resume)
    return trainer, module, callback.compiled, watch.seen


def _one_process(epochs: int = 2) -> dict:
    """The step driver on the global batches: Lightning's DistributedSampler shuffles (seeded by the epoch) and
    deals the samples out in turn, so the ranks' k-th batches together hold samples 4k to 4k+3 of the order."""
    model = net()
    compiled = specopt.compile(SPEC, model, steps_per_epoch=3, epochs=epochs)
    samples = _samples()
    for epoch in range(epochs):
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(epoch)).tolist()
        for k in range(0, len(order), 4):
            batch = [samples[i] for i in order[k:k + 4]]
            compiled.train_step(_loss(model, (torch.stack([x for x, _ in batch]), torch.stack([y for _, y in batch]))))
        compiled.end_epoch()
    return _result(model, compiled, [])


def lightning_rank(rank: int, world: int, port: int, folder: str, resume: bool) -> dict:
    """Resumed from ``epoch1.ckpt``, or: one epoch saved there, then an uninterrupted run of two."""
    _launched(rank, world, port)
    if resume:
        _, module, compiled, seen = _lightning_fit(folder, 2, os.path.join(folder, "epoch1.ckpt"))
        return _result(module.model, compiled, seen)
    trainer, *_ = _lightning_fit(folder, 1)
    trainer.save_checkpoint(os.path.join(folder, "epoch1.ckpt"))
    _, module, compiled, seen = _lightning_fit(folder, 2)
    return _result(module.model, compiled, seen)


def test_lightning_ddp_on_two_processes_equals_one_and_resumes_exactly(tmp_path):
    ranks = run_ranks(lightning_rank, _free_port(), str(tmp_path), False, world=2, timeout=TIMEOUT)
    one = _one_process()
    for rank in ranks:
        assert rank["seen"] == [False] * 4 + [True] * 6, "unfrozen at step 2, after batch 4 of each rank's 10"
        assert rank["lrs"] == pytest.approx(one["lrs"])
        _same(rank, one, exact=False)
        _same(rank, ranks[0], exact=True)
    resumed = run_ranks(lightning_rank, _free_port(), str(tmp_path), True, world=2, timeout=TIMEOUT)
    for rank in resumed:
        assert rank["seen"] == [True] * 5, "trainable from the first batch after resuming"
        _same(rank, ranks[0], exact=True)


# --- the Hugging Face Trainer under torch.distributed --------------------------------------------------------


def hf_rank(rank: int, world: int, port: int, folder: str, cuts: tuple[int, ...]) -> dict | list[dict]:
    """The Trainer's run on this rank (2 samples a batch: 4 in a global batch), saving after every step;
    or, given ``cuts``, that run resumed from each of those steps' checkpoints."""
    _launched(rank, world, port)
    if not cuts:
        return _result(*_resumable(os.path.join(folder, "run"), per_device_train_batch_size=2))
    return [_result(*_resumable(os.path.join(folder, f"from{cut}"), per_device_train_batch_size=2,
                                resume=os.path.join(folder, "run", f"checkpoint-{cut}"))) for cut in cuts]


def test_the_hf_trainer_on_two_processes_equals_one_and_resumes_exactly(tmp_path):
    ranks = run_ranks(hf_rank, _free_port(), str(tmp_path), (), world=2, timeout=TIMEOUT)
    one = _result(*_resumable(tmp_path / "one"))
    for rank in ranks:
        assert [s[:3] for s in rank["seen"]] == [s[:3] for s in one["seen"]], "steps and trainability"
        assert rank["lrs"] == pytest.approx(one["lrs"])
        _same(rank, one, exact=False)
        _same(rank, ranks[0], exact=True)
    cuts = (3, 4)  # the end of the first epoch, and the middle of the second
    resumed = run_ranks(hf_rank, _free_port(), str(tmp_path), cuts, world=2, timeout=TIMEOUT)
    for rank in resumed:
        for cut, run in zip(cuts, rank):
            assert run["seen"] == ranks[0]["seen"][cut:], f"cut at step {cut}"
            _same(run, ranks[0], exact=True)
