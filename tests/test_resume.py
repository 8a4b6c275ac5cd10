"""A run stopped anywhere and resumed on a freshly built model continues bit for bit as the uninterrupted run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import specopt
from conftest import ROOT
from loops import assert_same, loss_of, make_net, params_of

SPEC = """
optimizer adamw lr=1e-2 fused=true
freeze backbone norms=eval
unfreeze backbone.block1 at step 4 warmup 3 steps norms=train
unfreeze backbone at epoch 2
freeze head at 75%
accumulate 2
clip l2 1
step every 3 steps x0.5
ema 0.8 warmup=true
"""
PER_EPOCH = 8   # micro-batches per epoch: 4 optimizer steps
TOTAL = 24      # three epochs
POISON = {9}    # an inf loss: the GradScaler skips the step of micro-batches 8 and 9


def compile_fresh(seed: int = 0):
    model = make_net(seed)
    model.train()
    return model, specopt.compile(SPEC, model, scaler=torch.amp.GradScaler("cpu"), steps=12)


def run(model, compiled, start: int, stop: int) -> None:
    """Micro-batches ``start`` to ``stop`` (exclusive), closing an epoch every PER_EPOCH of them."""
    for k in range(start, stop):
        compiled.train_step(loss_of(model, k, POISON))
        if (k + 1) % PER_EPOCH == 0:
            compiled.end_epoch()


def snapshot(model, compiled) -> dict:
    return {"params": params_of(model), "ema": params_of(compiled.ema),
            "lr": [g["lr"] for g in compiled.optimizer.param_groups],
            "requires_grad": [p.requires_grad for p in model.parameters()],
            "modes": [m.training for m in model.modules()],
            "optimizer": compiled.optimizer.state_dict()["state"],
            "counts": (compiled.steps, compiled.epochs, compiled.driver.micro)}


def assert_identical(a: dict, b: dict) -> None:
    assert_same(a["params"], b["params"])
    assert_same(a["ema"], b["ema"])
    assert (a["lr"], a["requires_grad"], a["modes"], a["counts"]) == (b["lr"], b["requires_grad"], b["modes"],
                                                                      b["counts"])
    assert a["optimizer"].keys() == b["optimizer"].keys()
    for key, state in a["optimizer"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"][key][name]), (key, name)


@pytest.fixture(scope="module")
def uninterrupted() -> dict:
    model, compiled = compile_fresh()
    run(model, compiled, 0, TOTAL)
    return snapshot(model, compiled)


def checkpoint(model, compiled) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "compiled": compiled.state_dict()}, buffer)
    return buffer.getvalue()


def resume(data: bytes):
    saved = torch.load(io.BytesIO(data))
    model, compiled = compile_fresh(seed=1)
    model.load_state_dict(saved["model"])
    compiled.load_state_dict(saved["compiled"])
    return model, compiled


@pytest.mark.parametrize("stop", range(1, TOTAL))
def test_resuming_at_any_micro_batch_is_bitwise_identical(stop, uninterrupted):
    """Every stop: mid-accumulation, around the unfreeze at step 4, the skipped step, lr halvings, epochs."""
    model, compiled = compile_fresh()
    run(model, compiled, 0, stop)
    model, compiled = resume(checkpoint(model, compiled))
    run(model, compiled, stop, TOTAL)
    assert_identical(snapshot(model, compiled), uninterrupted)


def test_the_checkpoint_restores_what_the_events_set():
    model, compiled = compile_fresh()
    run(model, compiled, 0, 10)
    fresh, resumed = resume(checkpoint(model, compiled))
    block1 = fresh.backbone.block1
    assert all(p.requires_grad for p in block1.parameters())          # unfrozen at step 4
    assert block1[1].training and not fresh.backbone.block0[1].training   # norms=train there, eval in block0
    fresh.train()
    assert not fresh.backbone.block0[1].training
    assert resumed.driver.board.fired == compiled.driver.board.fired
    assert resumed.driver.ramps.active.keys() == compiled.driver.ramps.active.keys()


def test_a_checkpoint_from_another_spec_is_refused():
    model, compiled = compile_fresh()
    run(model, compiled, 0, 10)
    state = compiled.state_dict()
    fresh = make_net()
    other = specopt.compile("optimizer adamw lr=1e-2 fused=true\naccumulate 2", fresh)
    with pytest.raises(specopt.SpecError, match=r"saved under another spec .*\[E505\]"):
        other.load_state_dict(state)
    with pytest.warns(UserWarning, match=r"(?s)saved under another spec.*backbone.block0.0.weight.*: frozen in "
                                         r"the checkpoint, trainable from now on"):
        result = other.load_state_dict(state, strict=False)   # this spec's trainability applies from now on
    assert all(p.requires_grad for p in fresh.parameters()) and other.steps == compiled.steps
    block0 = [n for n, _ in fresh.named_parameters() if n.startswith("backbone.block0.")]
    assert sorted(result.trainability) == sorted(block0) and all(result.trainability.values())


SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path[:0] = [{root!r}, {tests!r}]
    from test_resume import checkpoint, compile_fresh, resume, run, TOTAL
    stop, path = int(sys.argv[1]), sys.argv[2]
    if sys.argv[3] == "start":
        model, compiled = compile_fresh()
        run(model, compiled, 0, stop)
        open(path, "wb").write(checkpoint(model, compiled))
    else:
        model, compiled = resume(open(path, "rb").read())
        run(model, compiled, stop, TOTAL)
        torch.save({{k: v for k, v in model.state_dict().items()}}, path + ".final")
""")


def test_a_run_resumed_in_a_fresh_process_is_bitwise_identical(tmp_path, uninterrupted):
    script = tmp_path / "resume_run.py"
    script.write_text(SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    path = str(tmp_path / "checkpoint.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    for phase in ("start", "finish"):
        subprocess.run([sys.executable, str(script), "9", path, phase], check=True, env=env, cwd=tmp_path)
    final = torch.load(path + ".final")
    assert_same({k: v for k, v in final.items()}, uninterrupted["params"])
